"""The virtual two-GPU runtime behaves as two real CUDA GPUs would, and leaves no trace outside."""
import gc
import pathlib
import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn

from grader.patching import Patcher
from grader.trace import Trace
from grader.virtual import VirtualGPUs, virtual_gpus

ROOT = pathlib.Path(__file__).resolve().parent.parent
D0, D1 = torch.device("cuda:0"), torch.device("cuda:1")


@pytest.fixture
def no_collection():
    """No garbage collection during a timing: a collection of this big test process is host time
    (as it would be on real GPUs), and would blur what the test compares."""
    gc.disable()
    yield
    gc.enable()


def test_handout_parts_1_to_4_run_verbatim():
    run = subprocess.run([sys.executable, "-m", "grader.virtual", "tests/handout/parts_1_to_4.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:3] == ["Before move: cuda:0", "After move: cuda:1", "cuda:1"]
    assert sum(line.startswith("Step ") for line in lines) == 5
    assert lines[-1].startswith("Forward time: ") and float(lines[-1].split(": ")[1]) > 0
    assert "virtual GPUs" in run.stderr


def test_device_spellings(virtual_gpus):
    x = torch.ones(2, 3)
    assert x.to("cuda:1").device == D1
    assert x.to(1).device == D1
    assert x.to(torch.device("cuda", 1)).device == D1
    assert x.cuda(1).device == D1 and x.cuda().device == D0
    assert x.to("cuda").device == D0  # "cuda" is the current device
    torch.cuda.set_device(1)
    assert x.cuda().device == D1 and torch.cuda.current_device() == 1
    with torch.cuda.device(0):
        assert x.to("cuda").device == D0
    assert x.to(D1, torch.float64).dtype == torch.float64
    assert x.to(D1).to(torch.zeros(1, device=D0)).device == D0
    y = x.to(D1)
    assert y.is_cuda and y.get_device() == 1 and not y.is_cpu
    assert y.cpu().device.type == "cpu" and y.cpu().get_device() == -1
    assert "device='cuda:1'" in repr(y)


def test_factories_modules_and_parameters(virtual_gpus):
    assert torch.randn(2, 2, device=D1).device == D1
    assert torch.zeros_like(torch.ones(2, device=D1)).device == D1
    assert torch.ones(2, device=D0).new_zeros(3).device == D0
    assert torch.tensor([1.0], device="cuda:1").device == D1
    layer = nn.Linear(2000, 1000, device=D1)
    assert layer.weight.device == D1 and isinstance(layer.weight, nn.Parameter)
    moved = nn.Linear(3, 3).to(D1)
    assert isinstance(moved.weight, nn.Parameter) and moved.bias.device == D1
    assert nn.Linear(3, 3).cuda(1).weight.device == D1


def test_training_puts_each_gradient_on_its_parameters_gpu(virtual_gpus):
    first, second = nn.Linear(4, 8).to(D0), nn.Linear(8, 2).to(D1)
    params = list(first.parameters()) + list(second.parameters())
    for optimizer in (torch.optim.SGD(params, lr=0.1), torch.optim.Adam(params)):
        loss = ((second(torch.relu(first(torch.randn(5, 4, device=D0))).to(D1)) - 1) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert [p.grad.device for p in params] == [D0, D0, D1, D1]
        assert [p.device for p in params] == [D0, D0, D1, D1]
        assert isinstance(loss.item(), float) and isinstance(float(loss.detach()), float)
    optimizer.zero_grad()
    torch.autograd.backward(tensors=second(first(torch.randn(5, 4, device=D0)).to(D1)).sum())  # keywords only
    assert [p.grad.device for p in params] == [D0, D0, D1, D1]


def test_mixing_devices_fails_with_pytorchs_words(virtual_gpus):
    a, b = torch.ones(2, device=D0), torch.ones(2, device=D1)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found at "
                                           "least two devices, cuda:0 and cuda:1!"):
        a + b
    layer = nn.Linear(2, 2).to(D1)
    for mixed in (lambda: b + torch.ones(2), lambda: torch.ones(2) + b, lambda: layer(torch.ones(1, 2))):
        with pytest.raises(RuntimeError, match="found at least two devices, cuda:1 and cpu!"):  # the GPU first
            mixed()
    assert (a * torch.tensor(2.0)).device == D0  # a 0-dim CPU scalar may join, as on GPUs


def test_a_third_gpu_does_not_exist(virtual_gpus):
    for make in (lambda: torch.ones(1, device="cuda:2"), lambda: torch.ones(1).to("cuda:2"),
                 lambda: torch.cuda.set_device(2)):
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            make()


def test_numpy_of_a_gpu_tensor_is_refused(virtual_gpus):
    with pytest.raises(TypeError, match="can't convert cuda:1 device type tensor to numpy"):
        torch.ones(1, device=D1).numpy()


def test_cuda_stand_ins(virtual_gpus):
    assert torch.cuda.is_available() and torch.cuda.device_count() == 2
    assert "virtual" in torch.cuda.get_device_name(1).lower()
    before = torch.cuda.memory_allocated(1)
    kept = nn.Linear(1000, 2000).to(D1)
    assert torch.cuda.memory_allocated(1) - before == 2000 * 1000 * 4 + 8192  # the bias's 8,000 bytes: 16 blocks of 512
    assert torch.cuda.memory_allocated(0) == 0
    del kept


def test_synchronize_waits_for_the_current_gpu_only(virtual_gpus):
    torch.cuda.synchronize()
    torch.cuda.synchronize(D1)
    with torch.cuda.device(1):
        torch.cuda.synchronize()
    assert [e.device for e in virtual_gpus.trace.of("sync")] == ["cuda:0", "cuda:1", "cuda:1"]


def test_events_time_one_gpu_and_refuse_two(virtual_gpus):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.ones(100, device=D0).sum()
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) >= 0 and end.query()
    other = torch.cuda.Event(enable_timing=True)
    with torch.cuda.device(1):
        other.record()
    with pytest.raises(RuntimeError, match="cuda:0 and cuda:1"):
        start.elapsed_time(other)


def test_trace_records_ops_transfers_and_clocks_with_lines():
    from time import perf_counter  # a name bound before the runtime starts: rebound through namespaces

    trace = Trace(sources=[__file__])
    with virtual_gpus(2, trace, namespaces=[globals(), locals()]):
        x = torch.ones(4, 2000).to(D0)
        line = sys._getframe().f_lineno + 1
        y = torch.relu(x).to(D1)
        time.perf_counter()
        time.time_ns()
    ops = trace.of("op")
    assert [(o.name, o.device) for o in ops] == [("ones", "cpu"), ("relu", "cuda:0")]
    moves = trace.of("transfer")
    assert [(m.source, m.device) for m in moves] == [("cpu", "cuda:0"), ("cuda:0", "cuda:1")]
    assert moves[1].nbytes == 4 * 2000 * 4 and moves[1].line == line
    assert [c.name for c in trace.of("clock")] == ["perf_counter", "time_ns"]
    assert y.device.type == "cpu"  # outside the runtime the data is plain CPU again
    assert perf_counter is time.perf_counter


def test_nothing_survives_the_runtime():
    saved = {name: getattr(torch.cuda, name) for name in dir(torch.cuda)}
    clocks = (time.time, time.perf_counter, time.monotonic, time.perf_counter_ns)
    with virtual_gpus(2):
        assert torch.cuda.device_count() == 2
        assert time.perf_counter not in clocks
    assert {name: getattr(torch.cuda, name) for name in dir(torch.cuda)} == saved
    assert (time.time, time.perf_counter, time.monotonic, time.perf_counter_ns) == clocks
    assert torch._C._len_torch_function_stack() == 0
    assert torch.ones(2).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises((AssertionError, RuntimeError)):
            torch.ones(1, device="cuda:0")


OPTIMIZERS = sorted(name for name in torch.optim.__all__ if name != "Optimizer"
                    and isinstance(getattr(torch.optim, name), type)
                    and issubclass(getattr(torch.optim, name), torch.optim.Optimizer))


def test_torch_accelerator_answers_for_the_virtual_gpus(virtual_gpus):
    """What optimizers (and careful students) ask: on a CPU build unpatched this says None and 0, on a
    CUDA build without a driver it raises."""
    assert torch.accelerator.current_accelerator(check_available=True) == torch.device("cuda")
    assert torch.accelerator.is_available() and torch.accelerator.device_count() == 2
    torch.accelerator.set_device_index(1)
    assert torch.accelerator.current_device_index() == 1 and torch.cuda.current_device() == 1
    with torch.accelerator.device_index(0):
        assert torch.ones(1, device="cuda").device == D0
    assert torch.accelerator.current_stream().device == D1 and not torch.accelerator.current_stream().is_capturing()
    torch.accelerator.synchronize(1)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps_on_two_virtual_gpus(virtual_gpus, name):
    """Each optimizer of torch.optim trains two layers, one per GPU, and leaves each parameter
    on its GPU. LBFGS flattens all parameters into one tensor, so it needs them on one GPU (as
    on real ones); SparseAdam takes only sparse gradients; Muon takes only matrices."""
    sparse, one_gpu = name == "SparseAdam", name == "LBFGS"
    first = nn.Embedding(10, 8, sparse=True) if sparse else nn.Linear(8, 8, bias=name != "Muon")
    first, second = first.to(D1 if one_gpu else D0), nn.Linear(8, 4, bias=name != "Muon").to(D1)
    params = [*first.parameters(), *([] if sparse else second.parameters())]
    devices, before = [p.device for p in params], [p.detach().cpu() for p in params]
    optimizer = getattr(torch.optim, name)(params, lr=0.01, **({"max_iter": 2} if one_gpu else {}))
    x = (torch.arange(4) if sparse else torch.randn(4, 8)).to(devices[0])

    def closure():
        optimizer.zero_grad()
        loss = second(first(x).to(D1)).square().mean()
        loss.backward()
        return loss

    for _ in range(2):
        optimizer.step(closure)
    assert [p.device for p in params] == devices
    assert any(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, params)), f"{name} changed nothing"


@pytest.mark.parametrize("name, args, kwargs, expected", [
    ("to", ("cuda:1",), {}, (D1, None, False, False, None)),
    ("to", (1, torch.float64), {}, (D1, torch.float64, False, False, None)),
    ("to", (torch.float16,), {}, (None, torch.float16, False, False, None)),
    ("to", (), {"device": "cuda", "non_blocking": True}, (D0, None, True, False, None)),
    ("to", ("cpu", torch.float32, True, True), {}, (torch.device("cpu"), torch.float32, True, True, None)),
    ("cuda", (), {}, (D0, None, False, False, None)),
    ("cuda", (1, True), {}, (D1, None, True, False, None)),
    ("cpu", (), {"memory_format": torch.contiguous_format}, (torch.device("cpu"), None, False, False,
                                                            torch.contiguous_format)),
])
def test_move_arguments_are_read_as_torch_reads_them(name, args, kwargs, expected):
    """`.to()`, `.cuda()` and `.cpu()` spellings, parsed without running anything."""
    gpus = VirtualGPUs(2, Trace())
    assert gpus._parse_move(name, args, kwargs) == expected


def test_the_patcher_puts_back_exactly_what_it_replaced():
    class Owner:
        kept = 1

    namespace = {"clock": time.perf_counter, "other": 3}
    patcher = Patcher()
    patcher.setattr(Owner, "kept", 2)
    patcher.setattr(Owner, "added", 3)
    patcher.rebind(namespace, {time.perf_counter: "virtual clock"})
    assert (Owner.kept, Owner.added, namespace["clock"]) == (2, 3, "virtual clock")
    patcher.restore()
    assert Owner.kept == 1 and not hasattr(Owner, "added") and namespace == {"clock": time.perf_counter, "other": 3}


def test_every_way_of_printing_shows_the_gpu(virtual_gpus):
    x, w = torch.ones(2, 3, device=D1), nn.Parameter(torch.ones(2, device=D0))
    for text in (f"{x}", "{}".format(x), str(x), repr(x), str([x]), format(x)):  # noqa: UP032 - each path
        assert "device='cuda:1'" in text, text
    for text in (f"{w}", repr(w), str(w), str([w])):
        assert text.count("Parameter containing:") == 1 and "device='cuda:0'" in text, text
    assert f"{x.sum():.1f}" == "6.0"  # a scalar formats as its value
    with pytest.raises(TypeError):
        format(x, ".2f")  # as real tensors: a format spec needs a scalar


def test_memory_statistics_per_gpu(virtual_gpus):
    layer = nn.Linear(1000, 2000).to(D1)
    weights = 2000 * 1000 * 4 + 8192  # the bias's 8,000 bytes: a block of 8,192
    assert torch.cuda.memory_allocated(1) == torch.cuda.memory.memory_allocated(1) == weights
    assert torch.cuda.memory_reserved(1) >= torch.cuda.memory_allocated(1) and torch.cuda.memory_allocated(0) == 0
    layer(torch.ones(8, 1000, device=D1)).sum().backward()  # gradients count when autograd makes them
    assert torch.cuda.memory_allocated(1) >= 2 * weights and torch.cuda.max_memory_allocated(1) >= 2 * weights
    del layer
    assert torch.cuda.memory_allocated(1) < weights
    torch.cuda.reset_peak_memory_stats(1)
    assert torch.cuda.max_memory_allocated(1) == torch.cuda.memory_allocated(1)
    free, total = torch.cuda.mem_get_info(1)
    assert total == torch.cuda.get_device_properties(1).total_memory > 0 and free <= total
    assert "PyTorch CUDA memory summary, device ID 1" in torch.cuda.memory_summary(1)


def test_an_event_records_on_one_gpu_only(virtual_gpus):
    event = torch.cuda.Event()
    event.record()
    with pytest.raises(RuntimeError, match="Event device 0 does not match recording stream's device 1"):
        event.record(torch.cuda.current_stream(1))


def test_the_current_gpu_is_per_thread(virtual_gpus):
    import threading

    seen = []
    thread = threading.Thread(target=lambda: (torch.cuda.set_device(1), seen.append(torch.cuda.current_device())))
    thread.start()
    thread.join()
    assert seen == [1] and torch.cuda.current_device() == 0


def test_the_cpu_profiler_still_works(virtual_gpus):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        torch.ones(2, device=D0).sum()
    assert any(event.key == "aten::sum" for event in profile.key_averages())


def test_streams_are_the_natural_tools_for_part_6(virtual_gpus):
    """Stream objects, the stream context, default streams, waits between streams, query, a
    stream's event and record_stream, as real CUDA offers them; their work runs in order."""
    side = torch.cuda.Stream(device=1)
    assert side.device == D1 and torch.cuda.current_stream(1) is torch.cuda.default_stream(1) is not side
    with torch.cuda.stream(side):
        assert torch.cuda.current_device() == 1 and torch.cuda.current_stream() is side
        out = torch.ones(4, device="cuda") * 2
    assert torch.cuda.current_device() == 0 and torch.cuda.current_stream(1) is torch.cuda.default_stream(1)
    side.wait_stream(torch.cuda.current_stream(0))
    side.wait_event(torch.cuda.Event())
    out.record_stream(side)
    done = side.record_event()
    done.synchronize()
    assert side.query() and done.device == D1 and out.device == D1
    with pytest.raises(RuntimeError, match="expected a CUDA tensor"):
        torch.ones(2).record_stream(side)


def test_an_event_times_its_own_gpus_work(virtual_gpus, no_collection):
    """Events on cuda:0 around work queued on cuda:1 see almost none of it (cuda:0 was idle), unless
    the host waited for cuda:1 in between; events on cuda:1 see all of it."""
    def on(device, wait=False):
        start, end, a = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True), weights
        start.record(torch.cuda.current_stream(device))
        for _ in range(4):
            a = torch.relu(a @ weights)
        if wait:
            a.sum().item()  # the host waits for cuda:1
        end.record(torch.cuda.current_stream(device))
        end.synchronize()
        return start.elapsed_time(end)

    weights = torch.randn(800, 800, device=D1) / 30
    own, other, waited = on(1), on(0), on(0, wait=True)
    assert other < 0.3 * own and waited > 0.7 * own, (own, other, waited)


def test_gradients_are_on_their_gpus_inside_backward(virtual_gpus):
    """Tensor, module and post-accumulate hooks, and a custom Function's backward, see each
    gradient on the GPU of its tensor; memory counts the gradients before any `.grad` is read."""
    class Doubled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            seen.append(("custom", grad.device))
            return grad * 2

    first, second, seen = nn.Linear(8, 16).to(D0), nn.Linear(16, 4).to(D1), []
    second.register_full_backward_pre_hook(lambda m, grad_out: seen.append(("pre", grad_out[0].device)))
    second.register_full_backward_hook(lambda m, grad_in, grad_out: seen.append(("module", grad_in[0].device)))
    first.weight.register_post_accumulate_grad_hook(lambda p: seen.append(("accumulated", p.grad.device)))
    hidden = torch.relu(first(torch.randn(4, 8, device=D0)))
    hidden.register_hook(lambda grad: seen.append(("tensor", grad.device)))
    Doubled.apply(second(hidden.to(D1))).sum().backward()
    assert seen == [("custom", D1), ("pre", D1), ("module", D1), ("tensor", D0), ("accumulated", D0)]
    assert torch.cuda.memory_allocated(0) == 5 * 512  # weights, biases, their gradients, hidden: a 512-byte block each
    assert first.weight.grad.device == D0 and second.weight.grad.device == D1
    moved = hidden.to(D1)
    moved.register_hook(lambda grad: seen.append(("grad()", grad.device)))
    (grad,) = torch.autograd.grad(second(moved).sum(), hidden)
    assert grad.device == D0 and seen[-2:] == [("grad()", D1), ("tensor", D0)]


def test_torch_load_puts_tensors_back_on_their_gpus(virtual_gpus):
    import io

    buffer = io.BytesIO()
    torch.save(nn.Linear(4, 2).to(D1).state_dict(), buffer)

    def load(**kwargs):
        buffer.seek(0)
        return torch.load(buffer, **kwargs)["weight"].device

    assert load() == D1
    assert load(map_location="cuda:0") == load(map_location=torch.device("cuda:0")) == D0
    assert load(map_location={"cuda:1": "cuda:0"}) == D0 and load(map_location="cpu").type == "cpu"
    assert torch.cuda.memory_allocated(1) == 0  # what was loaded is freed again
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on CUDA device 2"):
        load(map_location="cuda:2")


def test_a_bare_ordinal_names_a_gpu(virtual_gpus):
    assert torch.device(1) == D1 and isinstance(torch.device(1), torch.device)
    assert nn.Linear(2, 2).to(1).weight.device == D1 and nn.Linear(2, 2).to(device=0).weight.device == D0
    assert nn.Linear(2, 2).to(device="cuda:1").weight.device == D1
    assert torch.ones(2).to(1).device == D1 and torch.device("cuda", 1) == D1


def test_the_default_device_can_be_a_gpu():
    with virtual_gpus(2):
        torch.set_default_device("cuda:1")
        assert torch.ones(2).device == D1 and nn.Linear(2, 2).weight.device == D1
        assert torch.get_default_device() == D1
        with torch.device("cuda:0"):
            assert torch.zeros(1).device == D0
        assert torch.ones(2, device="cpu").device.type == "cpu"
    assert torch.ones(2).device.type == "cpu"  # a default left set does not outlive the runtime


def test_indexing_assignment_copies_across_gpus(virtual_gpus):
    """`out[i:j] = t` copies t from any device, as real CUDA does; tensor indices do not."""
    out, part = torch.zeros(4, 3, device=D1), torch.ones(2, 3, device=D0, requires_grad=True)
    out[0:2] = part
    out[2:] = torch.full((2, 3), 2.0)
    assert out.device == D1 and out.sum().item() == 18
    assert [(t.source, t.device) for t in virtual_gpus.trace.of("transfer")] == [("cuda:0", "cuda:1"),
                                                                              ("cpu", "cuda:1")]
    out.sum().backward()
    assert part.grad.device == D0
    out[torch.tensor([0, 1])] = torch.zeros(2, 3, device=D1)  # indices on the CPU: allowed
    with pytest.raises(IndexError, match="indices should be either on cpu or on the same device"):
        out[torch.tensor([0], device=D0)] = 1.0
    with pytest.raises(RuntimeError, match="expected device cuda:1 but got device cuda:0 for value tensor"):
        out[torch.tensor([0, 1])] = torch.zeros(2, 3, device=D0)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_fused_optimizers_step_on_two_gpus(virtual_gpus, name):
    first, second = nn.Linear(8, 8).to(D0), nn.Linear(8, 4).to(D1)
    params = [*first.parameters(), *second.parameters()]
    before = [p.detach().cpu() for p in params]
    optimizer = getattr(torch.optim, name)(params, lr=0.01, fused=True)
    second(first(torch.randn(4, 8, device=D0)).to(D1)).square().mean().backward()
    optimizer.step()
    assert [p.device for p in params] == [D0, D0, D1, D1]
    assert all(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, params))


def test_tensors_made_in_other_threads_are_on_their_gpus(virtual_gpus):
    import concurrent.futures
    import threading

    def work():
        made = torch.ones(2, device=D1)
        try:
            made + torch.ones(2, device=D0)
        except RuntimeError as error:
            return made.device, (made * 2).device, torch.cuda.current_device(), str(error)

    seen = []
    thread = threading.Thread(target=lambda: seen.append(work()))
    thread.start()
    thread.join()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        seen.append(pool.submit(work).result())
    for device, product, current, error in seen:
        assert (device, product, current) == (D1, D1, 0) and "cuda:1 and cuda:0" in error


def test_a_script_may_import_cuda_names_before_the_runtime_starts(tmp_path):
    """`python model.py` whose module-level imports ran before unless_two_gpus() started."""
    script = tmp_path / "model.py"
    script.write_text(
        "import torch\nfrom torch import device\nfrom torch.cuda import Event, synchronize\n"
        "from grader.virtual import unless_two_gpus\n\n"
        "def main():\n"
        "    start, end = Event(enable_timing=True), Event(enable_timing=True)\n"
        "    start.record()\n"
        "    x = torch.ones(2, device=device(1)) * 2\n"
        "    end.record()\n"
        "    synchronize()\n"
        "    print(x.device, start.elapsed_time(end) >= 0)\n\n"
        "if __name__ == '__main__':\n"
        "    with unless_two_gpus():\n"
        "        main()\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["cuda:1", "True"]


def test_stream_waits_order_work_across_gpus(virtual_gpus):
    """A stream that waits for another GPU's event starts its later work after that event, and
    the trace says so (the timeline's model reads it)."""
    side = torch.cuda.Stream(device=1)
    start, ready, done = (torch.cuda.Event(enable_timing=True) for _ in range(3))
    start.record(side)
    with torch.cuda.stream(torch.cuda.Stream(device=0)):
        a = torch.randn(500, 500, device=D0)
        for _ in range(4):
            a = a @ a / 500
        ready.record()
    side.wait_event(ready)
    done.record(side)
    done.synchronize()
    side.wait_stream(torch.cuda.current_stream(0))
    events = virtual_gpus.trace.of("cuda_event")
    (start_at, _), (ready_at, ready_number) = [(e.value, e.ids[0]) for e in events if e.name == "record"][:2]
    assert start.elapsed_time(done) >= (ready_at - start_at) * 1000 > 0
    waits = [(e.name, e.device, e.ids, e.source) for e in events if "wait" in e.name]
    assert waits == [("wait", "cuda:1", [ready_number], None), ("wait_stream", "cuda:1", None, "cuda:0")]


def test_data_parallel_replicates_over_both_gpus(virtual_gpus):
    """nn.DataParallel's balance check, scatter, replicas (one thread each), gather and backward."""
    layer = nn.Linear(8, 4).to(D0)
    out = nn.DataParallel(layer, device_ids=[0, 1])(torch.randn(6, 8))
    assert out.device == D0 and out.shape == (6, 4)
    out.sum().backward()
    assert layer.weight.grad.device == D0
    ops = {e.device for e in virtual_gpus.trace.of("op") if e.name == "linear"}
    assert ops == {"cuda:0", "cuda:1"}


@pytest.mark.parametrize("call", [
    lambda: torch.cuda.nvtx.range_push("stage 0"),
    lambda: torch.cuda.profiler.start(),
    lambda: torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]),
    lambda: torch.autograd.profiler.profile(use_device="cuda"),
    lambda: torch.cuda.CUDAGraph(),
    lambda: torch.cuda.utilization(1),
    lambda: torch.autocast("cuda"),
    lambda: torch.cuda.amp.autocast(),
    lambda: torch.compile(nn.Linear(2, 2)),
    lambda: torch.jit.script(nn.Linear(2, 2)),
    lambda: torch.Generator(device="cuda:1"),
], ids=["nvtx", "cuda_profiler", "torch_profiler", "autograd_profiler", "cuda_graph", "nvml", "autocast", "cuda_amp",
        "compile", "torchscript", "generator"])
@pytest.mark.filterwarnings("ignore:`torch.cuda.amp.autocast:FutureWarning")
def test_each_refusal_is_one_documented_line(virtual_gpus, call):
    """Every refusal begins with the same words and names its subject as the README lists it."""
    with pytest.raises(RuntimeError, match="^virtual GPUs do not model [^\\n]+$") as refused:
        call()
    subject = str(refused.value).removeprefix("virtual GPUs do not model ").split(" (")[0].split(":")[0]
    assert subject in " ".join((ROOT / "README.md").read_text().split()), subject


def test_each_gpu_has_its_own_random_generator(virtual_gpus):
    torch.cuda.manual_seed(3)
    first = torch.randn(3, device=D0)
    torch.cuda.manual_seed(3)
    assert torch.equal(first, torch.randn(3, device=D0)) and torch.cuda.initial_seed() == 3
    state = torch.cuda.get_rng_state(1)
    drawn = torch.rand(2, device=D1)
    torch.cuda.set_rng_state(state, 1)
    assert torch.equal(drawn, torch.rand(2, device=D1))
    torch.manual_seed(0)  # seeds every GPU, as on real ones
    layer = nn.Linear(4, 4, device=D1).weight.detach().cpu()
    torch.manual_seed(0)
    torch.randn(100)  # the CPU's draws do not move a GPU's generator
    assert torch.equal(layer, nn.Linear(4, 4, device=D1).weight.detach().cpu())
    with torch.random.fork_rng(devices=[0, 1]):
        torch.randn(2, device=D0)
    assert nn.functional.dropout(torch.ones(4, device=D1), 0.5).device == D1


def test_a_memory_fraction_makes_a_layer_too_big_for_one_gpu(virtual_gpus):
    """The lab's point, shown on virtual GPUs: two layers overflow one GPU limited to 24 MiB, and
    fit once split (set_per_process_memory_fraction, CUDA's out-of-memory error). Each 16 MB weight
    takes a 16 MiB segment (the lab's own 8 MB weights would share one 20 MiB segment)."""
    for gpu in (0, 1):
        torch.cuda.set_per_process_memory_fraction(24 * 2**20 / torch.cuda.get_device_properties(gpu).total_memory, gpu)
    first = nn.Linear(2000, 2000).to(D0)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="CUDA out of memory. Tried to allocate 16.00 MiB. GPU 0"):
        nn.Linear(2000, 2000).to(D0)
    second = nn.Linear(2000, 2000).to(D1)
    assert (first.weight.device, second.weight.device) == (D0, D1)
    assert torch.cuda.get_per_process_memory_fraction(0) < 1 and not torch.cuda.is_current_stream_capturing()


def test_the_readme_lists_every_refused_name(virtual_gpus):
    import importlib
    import re

    from grader.virtual.refusals import REFUSED

    text = (ROOT / "README.md").read_text()
    section = text[text.index("What it does **not** model"):text.index("The list is `grader/virtual/refusals.py`")]
    for (module, names), _ in REFUSED.items():
        for name in names.split():
            assert re.search(rf"\b{name}\b", section), f"{module}.{name} is refused but not in the README's list"
            if hasattr(importlib.import_module(module), name):
                with pytest.raises(RuntimeError, match="^virtual GPUs do not model"):
                    getattr(importlib.import_module(module), name)()


def test_pinned_memory_types_and_device_of(virtual_gpus):
    x = torch.ones(2, 2, device=D1)
    assert torch.ones(2).pin_memory().is_pinned() and not torch.ones(2).is_pinned()
    with pytest.raises(RuntimeError, match="cannot pin 'torch.cuda.FloatTensor'"):
        x.pin_memory()
    assert (x.type(), torch.ones(1).type(), x.type(torch.float64).device) == ("torch.cuda.FloatTensor",
                                                                             "torch.FloatTensor", D1)
    with torch.cuda.device_of(x):
        assert torch.cuda.current_device() == 1
    with torch.cuda.device_of(torch.ones(1)):
        assert torch.cuda.current_device() == 0


def test_a_query_says_whether_the_gpu_has_finished(virtual_gpus, no_collection):
    """Right after heavy work is queued its event and stream are not done; the host spinning on
    query() sees them finish, as on a real GPU."""
    a = torch.randn(600, 600, device=D1)
    for _ in range(3):
        a = a @ a / 600
    done = torch.cuda.current_stream(1).record_event()
    assert not done.query() and not torch.cuda.current_stream(1).query()
    while not done.query():
        pass
    assert torch.cuda.current_stream(1).query() and torch.cuda.Event().query()


def test_a_gpu_holds_its_stated_memory_and_no_more(tmp_path):
    """`python -m grader.virtual --memory GIB` sizes each GPU: past it, CUDA's out-of-memory error.
    What the host cannot hold at all is refused, never a CPU allocator's error about a GPU tensor."""
    script = tmp_path / "big.py"
    script.write_text("import torch\nkept = torch.zeros(300, 2**20, device='cuda:0')\n"
                      "print(torch.cuda.get_device_properties(0).total_memory)\n"
                      "torch.zeros(300, 2**20, device='cuda:0')\n")
    run = subprocess.run([sys.executable, "-m", "grader.virtual", "--memory", "2", str(script)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout.split() == [str(2 * 2**30)]
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.17 GiB. GPU 0" in run.stderr
    with virtual_gpus(2, capacity=2**45):
        with pytest.raises(RuntimeError, match="^virtual GPUs do not model more GPU memory than this machine"):
            torch.empty(2**44, dtype=torch.uint8, device=D1)


def test_a_cuda_function_that_needs_a_driver_is_refused_by_name(virtual_gpus):
    with pytest.raises(RuntimeError, match=r"^virtual GPUs do not model torch\.cuda\.current_blas_handle \(it needs"):
        torch.cuda.current_blas_handle()  # on a CPU-only torch, and on a CUDA build without a driver
    assert torch.cuda.can_device_access_peer(0, 1) and not torch.cuda.can_device_access_peer(1, 1)
    with pytest.raises(ValueError):
        torch.cuda.set_per_process_memory_fraction(2.0)  # an error of the caller's stays the caller's


def test_saved_tensor_hooks_and_checkpointing_see_the_gpus(virtual_gpus):
    """Activation checkpointing and save_on_cpu, the memory lab's tools: their hooks run inside the
    op that saves a tensor, and see its GPU there."""
    first, second = nn.Linear(2, 2).to(D0), nn.Linear(2, 2).to(D1)
    x = torch.ones(3, 2, device=D0, requires_grad=True)
    second(torch.utils.checkpoint.checkpoint(first, x, use_reentrant=False).to(D1)).sum().backward()
    assert (first.weight.grad.device, x.grad.device) == (D0, D0)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (seen.append(t.device), t)[1], lambda t: t):
        out = second(first(x).to(D1))
    with torch.autograd.graph.save_on_cpu():
        out = out + second(first(x).to(D1))
    out.sum().backward()
    assert set(seen) == {D0, D1} and second.weight.grad.device == D1


def test_a_clock_read_before_waiting_sees_little_of_the_gpus_work(virtual_gpus, no_collection):
    """Part 4's lesson, visible: the host only queues work, so the clock stops early unless it
    first waits for the GPU that computes the output (synchronize() alone waits for cuda:0)."""
    weights = torch.randn(800, 800, device=D1) / 30

    def timed(wait):
        start, out = time.perf_counter(), weights
        for _ in range(4):
            out = torch.relu(out @ weights)
        wait()
        return time.perf_counter() - start

    waited = timed(lambda: torch.cuda.synchronize(D1))
    unwaited, cuda0_only = timed(lambda: None), timed(torch.cuda.synchronize)
    torch.cuda.synchronize(D1)
    assert unwaited < 0.3 * waited and cuda0_only < 0.3 * waited, (waited, unwaited, cuda0_only)


def test_each_stream_is_a_queue_of_its_own(virtual_gpus, no_collection):
    """A fresh stream's synchronize waits for none of the default stream's work, and an event
    recorded on a fresh stream is not ordered after it: the trace says which stream each op, event
    and wait was on, and the clocks run each stream's queue on its own."""
    a = torch.randn(600, 600, device=D1)
    for _ in range(3):
        a = a @ a / 600
    done = torch.cuda.current_stream(1).record_event()
    side = torch.cuda.Stream(device=1)
    side.synchronize()
    side.record_event().synchronize()
    assert not done.query()  # the host did not wait for the default stream
    side.wait_stream(torch.cuda.current_stream(1))
    side.synchronize()
    assert done.query()
    waits = [e.waits_for() for e in virtual_gpus.trace.of("sync")]
    assert waits[0] == ("stream", ("cuda:1", side.stream_id)) and waits[1][0] == "event" and side.stream_id > 0
    assert {e.stream for e in virtual_gpus.trace.of("op")} == {0}


def test_real_gpus_record_every_wait_virtual_gpus_record(monkeypatch):
    """Real mode's recorder (read here without GPUs: torch's own calls stubbed) records a stream's
    synchronize, torch.accelerator's and a stream's wait as the virtual runtime does, so that
    either trace means the same to the checks."""
    from types import SimpleNamespace

    from grader.devices import real_gpus

    for owner, name in ((torch.cuda, "synchronize"), (torch.cuda.Stream, "synchronize"),
                        (torch.cuda.Stream, "wait_stream")):
        monkeypatch.setattr(owner, name, lambda *args, **kwargs: None)
    side, default = (SimpleNamespace(device=torch.device("cuda", 1), stream_id=n) for n in (3, 0))
    trace = Trace()
    with real_gpus(trace):
        torch.cuda.Stream.synchronize(side)
        torch.accelerator.synchronize(1)
        torch.cuda.synchronize(0)
        torch.cuda.Stream.wait_stream(side, default)
    waits = [e.waits_for() for e in trace.of("sync")]
    assert waits == [("stream", ("cuda:1", 3)), ("gpu", "cuda:1"), ("gpu", "cuda:0")]
    [edge] = trace.of("cuda_event")
    assert (edge.name, edge.device, edge.stream, edge.source, edge.source_stream) == ("wait_stream", "cuda:1", 3,
                                                                                      "cuda:1", 0)

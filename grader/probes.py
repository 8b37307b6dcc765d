"""What runs student code: each probe exercises one function of the lab's contract on a fresh
model and returns plain facts (JSON-ready) for the checks to judge.

Probes run inside a sandbox child, under real or virtual GPUs, with a trace recording what the
submission did. The grader's own work (reference computations) is kept out of the trace.
"""
import contextlib
import copy
import io
import math
import sys
import time
import types
import traceback
from time import perf_counter as host_clock  # bound before any clock is patched

import torch

from grader import guard
from grader.guard import StudentError
from grader.devices import real_gpus
from grader.trace import Trace
from grader.virtual import virtual_gpus

BATCH = 32
STEPS = 6  # the contract's default is 5: a train() that ignores `steps` shows
LR = 0.02  # the contract's default is 0.01: a train() that ignores `lr` shows
LARGE_BATCH = 8192  # large enough that a forward without synchronize is visibly shorter (H100)
PROFILE_BATCHES = (32, 256)  # profile_stages' figures must grow with the batch
PIPELINE_BATCH, SPLIT = 128, 32  # four micro-batches
SHAPES = {"w1": (2000, 1000), "b1": (2000,), "w2": (1000, 2000), "b2": (1000,)}
DESCRIPTIONS = {
    "construct": "SimpleMPModel()",
    "forward": "SimpleMPModel.forward",
    "train": "train()",
    "time_forward": "time_forward()",
    "profile": "profile_stages()",
    "pipeline": "PipelinedMPModel",
}


def run(probe, path, source, mode, allowed_imports):
    """The facts of one probe of the submission `source` (read from `path`); StudentError (a
    Tampering one for abuse) when the submission fails it."""
    trace = Trace(sources=[path])
    devices = virtual_gpus(2, trace) if mode == "virtual" else real_gpus(trace)
    with devices:
        snapshot = guard.Snapshot()  # taken with the runtime's own patches in place
        try:
            facts = _PROBES[probe](load(path, source, allowed_imports), trace, mode)
        except Exception:
            snapshot.check()  # tampering explains any failure, the grader's own included, best
            raise
        snapshot.check()
        return facts


def load(path, source, allowed_imports):
    try:
        guard.check_source(source, allowed_imports)
    except SyntaxError as error:
        raise StudentError(f"your submission does not compile: {error.msg} (line {error.lineno})") from None
    module = types.ModuleType("submission")
    module.__file__ = path
    sys.modules["submission"] = module
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except BaseException as error:  # noqa: BLE001 - whatever the submission raises at import
        raise StudentError(f"importing your submission raised {_explain(error, path)}") from None
    return module


def contract(module, name):
    try:
        return getattr(module, name)
    except AttributeError:
        raise StudentError(f"your submission defines no `{name}`: keep the names of starter/model.py") from None


def call(what, func, *args, **kwargs):
    """Run student code; any exception, exit() included, becomes a StudentError naming `what`."""
    try:
        return func(*args, **kwargs)
    except BaseException as error:  # noqa: BLE001
        path = getattr(sys.modules.get("submission"), "__file__", None)
        raise StudentError(f"{what} raised {_explain(error, path)}") from None


def _explain(error, path):
    if isinstance(error, SystemExit):
        return f"SystemExit ({guard.TAMPER}: a submission must not exit the grader)"
    if isinstance(error, PermissionError):  # the lab touches no file: this is an attempt on ours
        return f"PermissionError ({guard.TAMPER}: a submission must not touch the grader's files)"
    kind = type(error).__name__
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    where = f" (line {lines[-1]})" if lines else ""
    return f"{kind}: {first_line}{where}" if first_line else f"{kind}{where}"


def build(module):
    return call("SimpleMPModel()", contract(module, "SimpleMPModel"))


def locate(model):
    """The two layers' parameters, found by shape so that any attribute names work."""
    found = {}
    for name, param in model.named_parameters():
        for role, shape in SHAPES.items():
            if role not in found and tuple(param.shape) == shape:
                found[role] = (name, param)
                break
    return found


def require_layers(model):
    found = locate(model)
    missing = [role for role in SHAPES if role not in found]
    if missing:
        raise StudentError(
            "SimpleMPModel has no parameters of shape "
            + ", ".join(str(SHAPES[r]) for r in missing)
            + ": expected Linear(1000, 2000) and Linear(2000, 1000) layers"
        )
    return {role: param for role, (name, param) in found.items()}


def probe_construct(module, trace, mode):
    model = build(module)
    return {role: {"name": name, "device": str(param.device)} for role, (name, param) in locate(model).items()}


def probe_forward(module, trace, mode):
    torch.manual_seed(0)
    model = build(module)
    params = require_layers(model)
    x = torch.randn(BATCH, 1000)
    facts = {"input_error": None}
    mark = len(trace.events)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as quiet:
            out = call("model(x) with x on the CPU", model, x)
    except StudentError as error:  # retry with x already on cuda:0: the other checks still count
        mark = len(trace.events)
        with contextlib.redirect_stdout(io.StringIO()) as quiet:
            try:
                out = call("model(x)", model, x.to(torch.device("cuda", 0)))
            except StudentError:
                raise error from None
        facts["input_error"] = str(error)
    facts.update(events=trace.to_json(mark), printed=quiet.getvalue())
    if not isinstance(out, torch.Tensor):
        raise StudentError(f"model(x) returned {type(out).__name__}, not a tensor")
    facts["output"] = {"device": str(out.device), "shape": list(out.shape)}
    with trace.paused():
        host = {role: p.detach().cpu().double() for role, p in params.items()}
        expected = torch.relu(torch.relu(x.double() @ host["w1"].T + host["b1"]) @ host["w2"].T + host["b2"])
        got = out.detach().cpu().double()
        facts["max_error"] = (got - expected).abs().max().item() if got.shape == expected.shape else None
    if facts["input_error"]:
        x = x.to(torch.device("cuda", 0))
    try:
        with contextlib.redirect_stdout(io.StringIO()) as verbose:
            call("model(x, verbose=True)", model, x, verbose=True)
        facts["verbose"] = {"printed": verbose.getvalue()}
    except StudentError as error:
        facts["verbose"] = {"error": str(error)}
    return facts


def probe_train(module, trace, mode):
    train = contract(module, "train")
    torch.manual_seed(1)
    x, y = torch.randn(BATCH, 1000), torch.randn(BATCH, 1000)
    # The contract hands train() CPU tensors. When that fails, the batch is retried already on
    # the GPUs, so that a forgotten move costs only the check that names it.
    errors = {}
    for x_at, y_at in (("cpu", "cpu"), ("cuda:0", "cpu"), ("cpu", "cuda:1"), ("cuda:0", "cuda:1")):
        torch.manual_seed(2)
        model = build(module)
        initial = copy.deepcopy(model)
        what = "train(model, x, y)" + ("" if x_at == y_at == "cpu" else f" with x on {x_at}, y on {y_at}")
        batch = x.clone().to(x_at), y.clone().to(y_at)
        try:
            losses = call(what, train, model, *batch, steps=STEPS, lr=LR)
            break
        except StudentError as error:
            errors[x_at, y_at] = str(error)
    else:
        raise StudentError(errors["cpu", "cpu"])
    params = require_layers(model)
    facts = {
        "cpu_target_error": errors.get((x_at, "cpu")),
        "losses": _floats(losses),
        "grads": {role: None if p.grad is None else str(p.grad.device) for role, p in params.items()},
        "params": {role: str(p.device) for role, p in params.items()},
    }
    steps = len(facts["losses"]["values"]) if "values" in facts["losses"] else STEPS
    with trace.paused(), contextlib.redirect_stdout(io.StringIO()):
        facts["reference_losses"] = _reference_sgd(initial, *batch, min(steps, STEPS))
        reference = require_layers(initial)
        facts["weight_error"] = max(
            (p.detach().cpu().double() - reference[role].detach().cpu().double()).abs().max().item()
            for role, p in params.items()
        )
    return facts


def _reference_sgd(model, x, y, steps):
    """The handout's loop written out, on a copy of the student's own model (so that a forward
    bug is not counted again here): MSE loss, plain SGD at LR, from the same initial weights."""
    return [_sgd_step(model, x, y) for _ in range(steps)]


def _sgd_step(model, x, y):
    """One step of MSE loss and plain SGD at LR, written out: no torch.optim, which would import
    torch._dynamo (a second or more) into this process."""
    out = model(x)
    loss = ((out - y.to(out.device)) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= LR * p.grad
                p.grad = None
    return loss.item()


def _floats(values):
    """{"values": the losses as floats (str for non-finite ones), "problem": what is wrong, or None}."""
    if not isinstance(values, (list, tuple)):
        return {"problem": f"a {type(values).__name__}, not a list"}
    out, problem = [], None
    for v in values:
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            problem, v = "tensors, not floats (use loss.item())", v.item()
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return {"problem": f"a list holding {type(v).__name__}"}
        out.append(float(v) if math.isfinite(v) else str(v))
    return {"values": out, "problem": problem}


def probe_time_forward(module, trace, mode):
    time_forward = contract(module, "time_forward")
    torch.manual_seed(3)
    model = build(module)
    x = torch.randn(BATCH, 1000)
    with trace.paused(), contextlib.redirect_stdout(io.StringIO()):  # a warm-up, as careful timers do
        try:
            call("model(x)", model, x)
        except StudentError:  # a forward that cannot take a CPU batch is part 1's finding, not this one's
            x = x.to(torch.device("cuda", 0))
            call("model(x)", model, x)
    mark = len(trace.events)
    value = call("time_forward(model, x)", time_forward, model, x)
    facts = {"value": _seconds(value), "events": trace.to_json(mark)}
    if mode == "real":
        facts["large_batch"] = _large_batch(model, time_forward, trace)
    return facts


def _seconds(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return {"not_a_number": type(value).__name__}


def _large_batch(model, time_forward, trace):
    """The student's timing and an independent one at a batch where synchronizing matters."""
    x = torch.randn(LARGE_BATCH, 1000)
    value = _seconds(call("time_forward(model, x) at a large batch", time_forward, model, x))
    with trace.paused():
        torch.cuda.synchronize(0)
        torch.cuda.synchronize(1)
        start = host_clock()
        model(x)
        torch.cuda.synchronize(0)
        torch.cuda.synchronize(1)
        reference = host_clock() - start
    return {"value": value, "reference": reference}


def probe_profile(module, trace, mode):
    """profile_stages at two batches, beside the grader's own staged timing of the same forward."""
    profile = contract(module, "profile_stages")
    torch.manual_seed(5)
    model = build(module)
    params = require_layers(model)
    runs = []
    for batch in PROFILE_BATCHES:
        x = torch.randn(batch, 1000)
        mark = len(trace.events)
        with contextlib.redirect_stdout(io.StringIO()):
            figures = call(f"profile_stages(model, x) for a batch of {batch}", profile, model, x)
        events = trace.to_json(mark)
        with trace.paused():
            own = _own_idle_fraction(params, x)
        runs.append({"batch": batch, "figures": _profile_figures(figures), "events": events, "own_idle": own})
    nbytes = {role: p.numel() * p.element_size() for role, p in params.items()}
    return {"runs": runs, "param_bytes": {"cuda:0": nbytes["w1"] + nbytes["b1"], "cuda:1": nbytes["w2"] + nbytes["b2"]}}


PROFILE_KEYS = ("stage0_ms", "transfer_ms", "stage1_ms", "wall_ms", "idle_fraction")


def _profile_figures(figures):
    if not isinstance(figures, dict):
        return {"problem": f"a {type(figures).__name__}, not a dict"}
    out = {}
    for key in PROFILE_KEYS:
        value = _seconds(figures.get(key))  # any number, as a float
        if isinstance(value, dict) or not math.isfinite(value):
            return {"problem": f"{key}={figures.get(key)!r}, not a finite number"}
        out[key] = value
    memory = figures.get("memory_bytes")
    if not isinstance(memory, dict) or not all(isinstance(memory.get(d), int) for d in ("cuda:0", "cuda:1")):
        return {"problem": f"memory_bytes={memory!r}, not {{'cuda:0': int, 'cuda:1': int}}"}
    out["memory_bytes"] = {d: memory[d] for d in ("cuda:0", "cuda:1")}
    return out


def _own_idle_fraction(params, x):
    """The grader's own measurement: the same stages, computed from the located parameters."""
    cuda0, cuda1 = torch.device("cuda", 0), torch.device("cuda", 1)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    x = x.to(cuda0)
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    start = time.perf_counter()  # the runtime's clock: virtual time on virtual GPUs, as the student's
    with torch.cuda.device(0):
        events[0].record()
        h = torch.relu(x @ params["w1"].T + params["b1"])
        events[1].record()
    h = h.to(cuda1)
    with torch.cuda.device(1):
        events[2].record()
        torch.relu(h @ params["w2"].T + params["b2"])
        events[3].record()
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    wall_ms = (time.perf_counter() - start) * 1000
    busy = events[0].elapsed_time(events[1]) + events[2].elapsed_time(events[3])
    return 1 - busy / (2 * wall_ms)


def probe_pipeline(module, trace, mode):
    """Training steps of PipelinedMPModel (four micro-batches), of the same model unsplit (the
    baseline) and of SimpleMPModel (for the timeline tool), and whether the pipelined model
    computes relu(W2 relu(W1 x + b1) + b2) and its gradients. The step is the grader's own
    (_sgd_step), so that these findings depend on the models alone."""
    pipelined_class = contract(module, "PipelinedMPModel")
    torch.manual_seed(6)
    # Already on the GPUs: whether forward moves a CPU batch is part 1's finding, not this one's.
    x = torch.randn(PIPELINE_BATCH, 1000).to(torch.device("cuda", 0))
    y = torch.randn(PIPELINE_BATCH, 1000).to(torch.device("cuda", 1))
    pipelined = call(f"PipelinedMPModel({SPLIT})", pipelined_class, SPLIT)
    with trace.paused():
        facts = {"differences": _differences_from_reference(pipelined, x)}
    facts["pipelined"] = _training_step(trace, mode, pipelined, x, y)
    unsplit = call(f"PipelinedMPModel({PIPELINE_BATCH})", pipelined_class, PIPELINE_BATCH)
    facts["unsplit"] = _training_step(trace, mode, unsplit, x, y)
    try:
        facts["simple"] = _training_step(trace, mode, build(module), x, y)
    except StudentError as error:
        facts["simple"] = {"error": str(error)}
    return facts


def _differences_from_reference(model, x):
    """The largest differences between the model's output and gradients and those of the two
    layers written out, from the model's own parameters."""
    params = require_layers(model)
    with contextlib.redirect_stdout(io.StringIO()):
        out = call(f"{type(model).__name__}(x)", model, x)
    if tuple(out.shape) != (x.shape[0], 1000):
        return {"output": None, "gradient": None}
    out.square().mean().backward()
    host = {role: p.detach().cpu().clone().requires_grad_() for role, p in params.items()}
    expected = torch.relu(torch.relu(x.cpu() @ host["w1"].T + host["b1"]) @ host["w2"].T + host["b2"])
    expected.square().mean().backward()
    return {"output": (out.detach().cpu() - expected.detach()).abs().max().item(),
            "gradient": max(float("inf") if p.grad is None else (p.grad.cpu() - host[r].grad).abs().max().item()
                            for r, p in params.items())}


def _training_step(trace, mode, model, x, y):
    """The trace of one training step (virtual GPUs: its cost comes from FLOPs, so no warm-up), or
    what torch.profiler saw of it after a warm-up (real GPUs)."""
    what = f"a training step of {type(model).__name__}"
    if mode == "real":
        with trace.paused(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            call(f"{type(model).__name__}(x)", model, x)  # a warm-up: first kernel launches are slow
        return {"intervals": _profiled_step(model, x, y, what)}
    mark = len(trace.events)
    with contextlib.redirect_stdout(io.StringIO()):
        call(what, _sgd_step, model, x, y)
    return {"events": trace.to_json(mark)}


def _profiled_step(model, x, y, what):
    from grader.timeline import real_intervals  # the profiler is imported only on real GPUs

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        with contextlib.redirect_stdout(io.StringIO()):
            call(what, _sgd_step, model, x, y)
        torch.cuda.synchronize(0)
        torch.cuda.synchronize(1)
    return real_intervals(profiler)


_PROBES = {
    "construct": probe_construct,
    "forward": probe_forward,
    "train": probe_train,
    "time_forward": probe_time_forward,
    "profile": probe_profile,
    "pipeline": probe_pipeline,
}

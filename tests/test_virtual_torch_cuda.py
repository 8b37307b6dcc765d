"""torch.cuda and the rest of torch answer on virtual GPUs as a CUDA build of torch does on two real
GPUs: torch's own torch.cuda code runs, with its lazy initialisation, CUDA_VISIBLE_DEVICES, checks
and error types; and what a CUDA build says of itself, its legacy types and its numpy interop hold."""
import copy
import io
import pathlib

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from grader.virtual import virtual_gpus

ROOT = pathlib.Path(__file__).resolve().parent.parent
D0, D1 = torch.device("cuda:0"), torch.device("cuda:1")


@pytest.fixture
def program_env(monkeypatch):
    """The environment as a program sees it when it starts: no GPU selection of its own."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


def test_cuda_initialises_at_its_first_use(virtual_gpus):
    assert not torch.cuda.is_initialized()
    assert torch.cuda.is_available() and torch.cuda.device_count() == 2
    assert not torch.cuda.is_initialized()  # asking how many GPUs there are initialises nothing
    torch.ones(2, device="cuda:1")
    assert torch.cuda.is_initialized()


def test_a_seed_set_before_cuda_starts_holds_once_it_does(virtual_gpus):
    torch.cuda.manual_seed(7)  # queued, as torch queues it, until CUDA initialises
    assert not torch.cuda.is_initialized()
    first = torch.randn(3, device=D0)
    torch.cuda.manual_seed(7)
    assert torch.equal(first, torch.randn(3, device=D0)) and torch.cuda.initial_seed() == 7


def test_checkpointing_replays_each_gpus_random_state(virtual_gpus):
    """Checkpointing saves the GPU's random state when CUDA is initialised, so the recomputed
    dropout drops what the forward dropped: the gradients are those of the plain forward."""
    layer = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.5)).to(D1)
    x = torch.randn(16, 64, device=D1, requires_grad=True)
    torch.manual_seed(1)
    checkpoint(layer, x, use_reentrant=True).sum().backward()
    checkpointed, x.grad = x.grad, None
    torch.manual_seed(1)
    layer(x).sum().backward()
    assert torch.equal(checkpointed, x.grad)


def test_cuda_visible_devices_set_by_the_program_hides_gpus(program_env):
    with virtual_gpus(2):
        program_env.setenv("CUDA_VISIBLE_DEVICES", "1")
        assert torch.cuda.device_count() == 1 and len(torch.cuda.get_rng_state_all()) == 1
        assert torch.zeros(1, device="cuda:0").device == D0
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            torch.zeros(1, device="cuda:1")


def test_an_empty_cuda_visible_devices_hides_every_gpu(program_env):
    with virtual_gpus(2):
        program_env.setenv("CUDA_VISIBLE_DEVICES", "")
        assert not torch.cuda.is_available() and torch.cuda.device_count() == 0
        with pytest.raises(RuntimeError, match="No CUDA GPUs are available"):
            torch.zeros(1, device="cuda")


def test_cuda_visible_devices_set_after_cuda_started_changes_nothing(program_env):
    with virtual_gpus(2):
        torch.zeros(1, device="cuda:1")
        program_env.setenv("CUDA_VISIBLE_DEVICES", "0")
        assert torch.cuda.device_count() == 2 and torch.zeros(1, device="cuda:1").device == D1


def test_the_selection_of_real_gpus_the_grader_started_under_hides_no_virtual_one(program_env):
    """A cluster's CUDA_VISIBLE_DEVICES=0 (or "" to hide a real GPU) chose the machine's GPUs, not
    the runtime's: a program that does not set it sees both virtual GPUs."""
    program_env.setenv("CUDA_VISIBLE_DEVICES", "")
    with virtual_gpus(2):
        assert torch.cuda.device_count() == 2 and torch.zeros(1, device="cuda:1").device == D1


def test_out_of_range_device_queries_raise_torchs_own_errors(virtual_gpus):
    for query in (torch.cuda.get_device_properties, torch.cuda.get_device_name, torch.cuda.get_device_capability):
        with pytest.raises(AssertionError, match="Invalid device id"):
            query(2)
    with pytest.raises(AssertionError, match="Invalid peer device id"):
        torch.cuda.can_device_access_peer(0, 2)
    with pytest.raises(ValueError, match="Expected a cuda device, but got: cpu"):
        torch.cuda.get_device_properties("cpu")
    for stream in (torch.cuda.current_stream, torch.cuda.default_stream):
        with pytest.raises(RuntimeError, match=r"Device index value 2 is out of index range \[0, 2\)"):
            stream(2)
    with pytest.raises(IndexError):
        torch.cuda.get_rng_state(2)  # torch.cuda.default_generators[2]
    assert torch.cuda.get_device_capability(1) == (8, 0)


def test_a_stream_says_its_device_index_and_handle(virtual_gpus):
    side = torch.cuda.Stream(device=1)
    assert side.device_index == 1 and torch.cuda.current_stream(0).device_index == 0
    assert torch.cuda.default_stream(1).cuda_stream == 0  # the legacy default stream
    assert side.cuda_stream not in (0, torch.cuda.Stream(device=1).cuda_stream)


def test_the_backends_answer_as_a_cuda_build(virtual_gpus):
    assert torch.backends.cuda.is_built() and torch.backends.cudnn.is_available()
    assert isinstance(torch.backends.cudnn.version(), int)
    assert isinstance(torch.version.cuda, str) and torch.version.cuda.split(".")[0].isdigit()
    major, minor = torch.cuda.get_device_capability(0)
    assert f"sm_{major}{minor}" in torch.cuda.get_arch_list()  # its kernels run on these GPUs


def test_deterministic_algorithms_refuse_cublas_without_its_workspace(virtual_gpus, monkeypatch):
    layer, x = nn.Linear(4, 4).to(D1), torch.randn(2, 4, device=D1)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="it uses CuBLAS .* CUBLAS_WORKSPACE_CONFIG=:4096:8"):
            layer(x)
        with pytest.raises(RuntimeError, match="CuBLAS"):
            x @ x.T
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        assert layer(x).device == D1
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match="CuBLAS"):
            layer(x)
    finally:
        torch.use_deterministic_algorithms(False)


def test_a_gpu_tensor_is_an_instance_of_its_legacy_cuda_type(virtual_gpus):
    w = torch.ones(2, device=D1)
    assert isinstance(w, torch.cuda.FloatTensor) and not isinstance(w, torch.cuda.DoubleTensor)
    assert not isinstance(torch.ones(2), torch.cuda.FloatTensor)
    assert isinstance(w.long(), torch.cuda.LongTensor)


def test_legacy_cuda_constructors_and_conversions(virtual_gpus):
    torch.cuda.set_device(1)
    empty, data = torch.cuda.FloatTensor(2, 3), torch.cuda.LongTensor([1, 2])
    assert (empty.shape, empty.device, empty.dtype) == ((2, 3), D1, torch.float32)
    assert (data.device, data.tolist()) == (D1, [1, 2])
    on_gpu = torch.ones(2).type(torch.cuda.DoubleTensor)
    assert (on_gpu.device, on_gpu.dtype, on_gpu.type()) == (D1, torch.float64, "torch.cuda.DoubleTensor")
    stays = torch.ones(2, device=D0).type("torch.cuda.HalfTensor")
    assert (stays.device, stays.dtype) == (D0, torch.float16)  # a GPU tensor keeps its GPU
    assert on_gpu.type(torch.FloatTensor).device.type == "cpu"


def test_torch_device_is_torchs_own_class(virtual_gpus):
    w = torch.ones(2, device=D1)
    assert type(w.device) is torch.device and type(torch.device(1)) is torch.device
    assert torch.device(1) == D1 and torch.device("cuda", 0) == D0


def test_numpy_force_copies_a_gpu_tensor_to_the_host(virtual_gpus):
    w = torch.full((2,), 3.0, device=D1, requires_grad=True)
    assert w.numpy(force=True).tolist() == [3.0, 3.0]
    assert w.device == D1


def test_np_asarray_of_a_gpu_tensor_raises_as_on_cuda(virtual_gpus):
    with pytest.raises(TypeError, match="can't convert cuda:1 device type tensor to numpy"):
        np.asarray(torch.ones(2, device=D1))
    assert np.asarray(torch.ones(2)).tolist() == [1.0, 1.0]


def test_torch_load_maps_storages_with_a_function(virtual_gpus):
    """The documentation's own example: map_location=lambda storage, loc: storage.cuda(1)."""
    buffer = io.BytesIO()
    torch.save(nn.Linear(4, 2).to(D0).state_dict(), buffer)
    buffer.seek(0)
    weights = torch.load(buffer, map_location=lambda storage, loc: storage.cuda(1))
    assert {t.device for t in weights.values()} == {D1}
    assert torch.cuda.memory_allocated(1) > 0


def test_a_gpu_tensors_storage_is_on_its_gpu(virtual_gpus):
    storage = torch.ones(2, device=D1).untyped_storage()
    assert storage.device == D1 and storage.is_cuda
    assert storage.cpu().device.type == "cpu" and storage.cuda(0).device == D0
    assert copy.deepcopy(storage).device == D1 and torch.UntypedStorage(8, device="cuda:0").device == D0


def test_a_factory_can_pin_its_result(virtual_gpus):
    pinned = torch.empty(4, pin_memory=True)
    assert pinned.is_pinned() and pinned.device.type == "cpu"
    assert not torch.empty(4).is_pinned()
    with pytest.raises(RuntimeError, match="Only dense CPU tensors can be pinned"):
        torch.empty(4, device=D1, pin_memory=True)


def test_a_cpu_generator_is_refused_for_a_gpu_draw(virtual_gpus):
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
        torch.randn(3, device=D1, generator=generator)
    assert torch.randn(3, generator=generator).device.type == "cpu"
    torch.cuda.manual_seed_all(5)
    first = torch.randn(3, device=D1, generator=torch.cuda.default_generators[1])  # a GPU's own generator
    torch.cuda.manual_seed_all(5)
    assert torch.equal(first, torch.randn(3, device=D1))


def test_the_cuda_runtime_library_is_refused_in_one_documented_line(virtual_gpus):
    with pytest.raises(RuntimeError, match="^virtual GPUs do not model the CUDA runtime library[^\\n]+$"):
        torch.cuda.cudart().cudaProfilerStart()
    assert "the CUDA runtime library" in " ".join((ROOT / "README.md").read_text().split())



def test_torch_is_itself_again_after_the_runtime():
    before = (torch.cuda.is_available(), torch.cuda.is_initialized(), torch.backends.cuda.is_built(),
              torch.backends.cudnn.is_available(), torch.version.cuda, torch.cuda.default_generators)
    with virtual_gpus(2):
        torch.ones(1, device=D1)
        assert torch.cuda.is_initialized()
    assert (torch.cuda.is_available(), torch.cuda.is_initialized(), torch.backends.cuda.is_built(),
            torch.backends.cudnn.is_available(), torch.version.cuda, torch.cuda.default_generators) == before

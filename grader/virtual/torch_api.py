"""Stand-ins for the torch names outside torch.cuda that name a GPU: `model.to(1)`, the legacy CUDA
tensor types (`torch.cuda.FloatTensor`), what a CUDA build says of itself (`torch.version.cuda`,
cuDNN), deterministic cuBLAS, `torch.Generator(device="cuda")` (refused), a storage's device and its
moves to a GPU, and where torch.save says a tensor lives and torch.load puts it back.

On a CPU-only torch these reach for an accelerator that does not exist, or see every virtual
GPU's storage as a CPU one; here they answer for the virtual GPUs. `torch.device` stays torch's own
class; its constructor passes through the runtime's mode, which reads a bare ordinal there.
"""
import functools
import os
import warnings

import torch
import torch.serialization
import torch.storage

from grader.devices import cuda_index
from grader.virtual import refusals

REAL_DEVICE, REAL_GENERATOR = torch.device, torch.Generator
# What a CPU-only torch says of CUDA and cuDNN, answered as the CUDA build of torch's default wheel
# does (a CUDA build answers for itself).
CUDA_VERSION, CUDNN_VERSION = "12.8", 91002
ARCH_FLAGS = "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120"  # the GPU architectures its kernels are built for
# The ops cuBLAS computes on a GPU, which deterministic algorithms refuse without a fixed workspace.
CUBLAS = frozenset("""mm matmul __matmul__ __rmatmul__ bmm addmm addmm_ baddbmm baddbmm_ addbmm addbmm_ mv addmv
    addmv_ dot vdot inner linear bilinear einsum tensordot chain_matmul multi_dot""".split())
WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"
DETERMINISTIC_WORKSPACES = (":4096:8", ":16:8")
NOT_DETERMINISTIC = (
    "Deterministic behavior was enabled with either `torch.use_deterministic_algorithms(True)` or "
    "`at::Context::setDeterministicAlgorithms(true)`, but this operation is not deterministic because it uses "
    "CuBLAS and you have CUDA >= 10.2. To enable deterministic behavior in this case, you must set an environment "
    f"variable before running your PyTorch application: {WORKSPACE}={DETERMINISTIC_WORKSPACES[0]} or "
    f"{WORKSPACE}={DETERMINISTIC_WORKSPACES[1]}. For more information, go to "
    "https://docs.nvidia.com/cuda/cublas/index.html#results-reproducibility")
# torch.cuda's legacy tensor types (FloatTensor, ...): each name's dtype, that of torch's CPU type of that name.
LEGACY = {name: getattr(torch, name).dtype for name in dir(torch.cuda)
          if name.endswith("Tensor") and hasattr(torch, name)}


def install(gpus, patcher):
    patcher.setattr(torch, "Generator", _stand_in(REAL_GENERATOR, refusals.generator(REAL_GENERATOR)))
    patcher.setattr(torch._C._nn, "_parse_to", _ordinals_are_gpus(torch._C._nn._parse_to))  # Module.to(1)
    _a_cuda_build(patcher)
    for name in LEGACY:
        patcher.setattr(torch.cuda, name, _legacy_type(gpus, name))
    patcher.setattr(torch.UntypedStorage, "__new__", _storage_new(gpus, torch._C.StorageBase.__new__))
    patcher.setattr(torch.UntypedStorage, "device", _storage_device(gpus, torch._C.StorageBase.device))
    _serialization(gpus, patcher)


def _a_cuda_build(patcher):
    """What a CUDA build of torch says of itself, where this torch is CPU-only."""
    patcher.setattr(torch._C, "_has_cuda", True)  # torch.backends.cuda.is_built()
    patcher.setattr(torch._C, "_has_cudnn", True)  # torch.backends.cudnn.is_available()
    if torch.version.cuda is None:
        patcher.setattr(torch.version, "cuda", CUDA_VERSION)
    if torch.backends.cudnn.version() is None:
        patcher.setattr(torch.backends.cudnn, "version", lambda: CUDNN_VERSION)
    if not hasattr(torch._C, "_cuda_getArchFlags"):
        patcher.setattr(torch._C, "_cuda_getArchFlags", lambda: ARCH_FLAGS)  # torch.cuda.get_arch_list()


def device(gpus, func, args, kwargs):
    """`torch.device(1)` (torch's own class, seen by the runtime's mode): a bare ordinal is a GPU, as
    on a CUDA build; a CPU-only torch knows no accelerator to give it to."""
    if func is REAL_DEVICE and len(args) == 1 and not kwargs and _is_ordinal(args[0]):
        return func("cuda", args[0])
    return func(*args, **kwargs)


def check_cublas(name):
    """Deterministic algorithms refuse cuBLAS (or warn, with warn_only) unless its workspace is one
    of the deterministic sizes, as on a GPU: called for each op on a virtual GPU."""
    if name not in CUBLAS or not torch.are_deterministic_algorithms_enabled():
        return
    if os.environ.get(WORKSPACE) in DETERMINISTIC_WORKSPACES:
        return
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(NOT_DETERMINISTIC, UserWarning, stacklevel=4)
    else:
        raise RuntimeError(NOT_DETERMINISTIC)


def _stand_in(real, make):
    """A class that passes for `real` (isinstance, issubclass, pickling by name) and whose calls
    `make` answers; what it makes are instances of `real`."""

    class StandIn(type):
        def __instancecheck__(cls, obj):
            return isinstance(obj, real)

        def __subclasscheck__(cls, sub):
            return issubclass(sub, real)

        def __call__(cls, *args, **kwargs):
            return make(*args, **kwargs)

    return StandIn(real.__name__, (), {"__module__": "torch", "__qualname__": real.__name__, "__doc__": make.__doc__})


def legacy_type(target):
    """(a GPU's?, dtype) of a legacy tensor type or its name (`torch.cuda.FloatTensor`,
    "torch.DoubleTensor"); None for anything else (a dtype)."""
    if not isinstance(target, str):
        target = f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"
    module, _, legacy = target.rpartition(".")
    if module not in ("torch", "torch.cuda") or legacy not in LEGACY:
        return None
    return module == "torch.cuda", LEGACY[legacy]


def _legacy_type(gpus, name):
    """torch.cuda.<name> (FloatTensor, ...): a GPU tensor of its dtype passes isinstance, and
    calling it makes one on the current GPU (`torch.cuda.FloatTensor(2, 3)`, `(data)`), as the
    legacy constructors do."""
    dtype = LEGACY[name]

    class LegacyType(type):
        def __instancecheck__(cls, obj):
            return (isinstance(obj, torch.Tensor) and obj.dtype == dtype and obj.layout == torch.strided
                    and gpus.placement(obj).type == "cuda")

        def __call__(cls, *args, device=None):
            with gpus.on():
                return torch.empty(0, dtype=dtype, device=gpus.gpu(device)).new(*args)

    return LegacyType(name, (), {"__module__": "torch.cuda", "dtype": dtype, "is_cuda": True, "is_sparse": False,
                                 "layout": torch.strided, "__doc__": f"torch.cuda.{name}: {dtype} tensors on a GPU."})


def _storage_new(gpus, new):
    """torch.UntypedStorage(..., device="cuda:1"), which torch's own storage code makes to move or
    copy a storage (`storage.cuda(1)`, `clone`, deepcopy): host memory that lives on that GPU."""
    def storage_new(cls, *args, device=None, **kwargs):
        where = None if device is None else gpus.resolve(device)
        if where is None or where.type != "cuda":
            return new(cls, *args, **kwargs) if where is None else new(cls, *args, device=where, **kwargs)
        storage = new(cls, *args, **kwargs)
        gpus.home(storage, where.index)
        return storage

    return storage_new


def _storage_device(gpus, device):
    """A storage's `device` (and so `is_cuda`): the virtual GPU it lives on, else torch's answer."""
    def storage_device(storage):
        index = gpus.homes.get(storage)
        return device.__get__(storage) if index is None else gpus.devices[index]

    return property(storage_device)


def _serialization(gpus, patcher):
    tag, restore = torch.serialization.location_tag, torch.serialization.default_restore_location

    def location_tag(storage):
        """What torch.save records: the virtual GPU a storage lives on."""
        index = gpus.homes.get(storage)
        return tag(storage) if index is None else f"cuda:{index}"

    def default_restore_location(storage, location):
        """What torch.load does with a storage saved on `location` (after map_location)."""
        if not location.startswith("cuda"):
            return restore(storage, location)
        index = cuda_index(location, gpus.current)
        if not 0 <= index < torch.cuda.device_count():
            raise RuntimeError(f"Attempting to deserialize object on CUDA device {index} but torch.cuda.device_count() "
                               f"is {torch.cuda.device_count()}. Please use torch.load with map_location to map your "
                               "storages to an existing device.")
        gpus.home(storage, index)
        return storage

    patcher.setattr(torch.serialization, "location_tag", location_tag)
    patcher.setattr(torch.serialization, "default_restore_location", default_restore_location)


def _is_ordinal(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _ordinals_are_gpus(parse_to):
    @functools.wraps(parse_to)  # named as torch's: the runtime's mode sees this function by its name
    def parse(*args, **kwargs):
        if args and _is_ordinal(args[0]):
            args = (REAL_DEVICE("cuda", args[0]), *args[1:])
        if _is_ordinal(kwargs.get("device")):
            kwargs["device"] = REAL_DEVICE("cuda", kwargs["device"])
        return parse_to(*args, **kwargs)

    return parse

"""torch's device rules on CUDA, by kind of op: where an op runs (and so where what it makes lives),
and which mixes of devices it refuses, in torch's words. The virtual runtime asks `device_of` for
every op it runs.

Element-wise ops follow TensorIterator (aten/src/ATen/TensorIterator.cpp, compute_types): the op
runs on the first GPU among its outputs, then its inputs; every other tensor must be there, except
that a kernel built with `allow_cpu_scalars` (the binary and comparison ops, lerp) takes ONE 0-dim
CPU input. A ternary op (addcmul, addcdiv, clamp by tensors) has no such allowance, nor has an op
checked by its CUDA wrapper (addmm, cat, conv...): there any CPU tensor fails. An output (`out=`,
or the tensor an in-place op writes) is never a CPU scalar: `total += loss_on_gpu` into a CPU
`total` fails.
"""
import math

import torch

from grader.devices import NON_COMPUTING, tensors_in

CPU = torch.device("cpu")
_BINARY = """add sub subtract rsub mul multiply div divide true_divide floor_divide remainder fmod pow float_power
    atan2 arctan2 maximum minimum fmax fmin eq ne not_equal lt less le less_equal gt greater ge greater_equal
    logical_and logical_or logical_xor bitwise_and bitwise_or bitwise_xor bitwise_left_shift bitwise_right_shift
    hypot copysign xlogy nextafter heaviside ldexp lerp""".split()
_DUNDERS = "add sub mul truediv div floordiv mod pow and or xor lshift rshift".split()
_IN_PLACE_OPERATORS = frozenset(f"__i{op}__" for op in _DUNDERS)
_OPERATORS = [f"__{op}__" for op in _DUNDERS + "eq ne lt le gt ge".split()] + [f"__r{op}__" for op in _DUNDERS]
# Ops that move a CPU scalar value to the GPU themselves (a masked or indexed fill); `where`, any.
_FILLS = "masked_fill masked_fill_ fill_ index_fill index_fill_ index_put index_put_ __setitem__".split()
# How many 0-dim CPU tensors may join an op's inputs on a GPU (any op not named: none).
CPU_SCALARS = {
    **dict.fromkeys(_BINARY + [f"{name}_" for name in _BINARY] + _OPERATORS + [*_IN_PLACE_OPERATORS] + _FILLS, 1),
    "where": math.inf,
}
# Constructors from data: the result lives where `device=` says, else where a tensor given as the
# data is (new_tensor: where its tensor is), else on the CPU; GPU tensors inside a list are read.
FROM_DATA = frozenset({"tensor", "as_tensor", "asarray", "new_tensor"})
# Calls that may give back the data's own memory (the others copy): only where it already is.
SHARING = frozenset({"as_tensor", "asarray"})
# Indexing with tensors: (self, indices, values...), the indices checked apart.
INDEXING = frozenset({"__getitem__", "index_put", "index_put_"})


def device_of(gpus, name, args, kwargs, tensors):
    """The device the op `name` runs on (before any `device=` argument), or torch's error."""
    if name in INDEXING:
        check_indices(gpus, args[0], args[1])
        tensors = [args[0], *tensors_in(args[2:], kwargs)]
    if name in FROM_DATA:
        origin = args[0] if name == "new_tensor" else data_of(name, args, kwargs)
        return gpus.placement(origin) if isinstance(origin, torch.Tensor) else CPU
    if name in NON_COMPUTING or name.endswith("_like") or name.startswith("new_"):
        return gpus.placement(tensors[0]) if tensors else CPU  # views, metadata, casts, `*_like`: where it is
    outputs = tensors_in(kwargs.get("out"))
    if args and isinstance(args[0], torch.Tensor) and _in_place(name):
        outputs.append(args[0])
    return iterated(gpus, outputs, tensors, CPU_SCALARS.get(name, 0))


def iterated(gpus, outputs, inputs, cpu_scalars):
    """TensorIterator's rule: the first GPU among outputs, then inputs; every other tensor there, but
    for `cpu_scalars` 0-dim CPU inputs. All on the CPU: the CPU."""
    placed = [(gpus.placement(t), t, False) for t in outputs] + [(gpus.placement(t), t, True) for t in inputs]
    common = next((device for device, _, _ in placed if device.type != "cpu"), CPU)
    for device, tensor, is_input in placed:
        if device == common:
            continue
        if is_input and cpu_scalars and device.type == "cpu" and tensor.dim() == 0:
            cpu_scalars -= 1
            continue
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                           f"{common} and {device}!")
    return common


def check_indices(gpus, target, index):
    """Index tensors on the CPU or on the indexed tensor's device (TensorAdvancedIndexing.cpp,
    check_indices_on_cpu_or_selfdevice), else torch's IndexError."""
    device = gpus.placement(target)
    for tensor in tensors_in(index):
        if gpus.placement(tensor) not in (CPU, device):
            raise IndexError(f"indices should be either on cpu or on the same device as the indexed tensor ({device})")


def read_values(gpus, name, args, kwargs):
    """The GPU tensors inside a from-data constructor's list are read as Python numbers, each a wait
    for its GPU (a tensor given as the data itself is copied, not read)."""
    data = data_of(name, args, kwargs)
    if isinstance(data, (list, tuple)):
        for tensor in tensors_in(data):
            if gpus.placement(tensor).type == "cuda":
                gpus.host_read(name, tensor)


def data_of(name, args, kwargs):
    """The data argument of a from-data constructor."""
    if name == "new_tensor":
        return args[1] if len(args) > 1 else kwargs.get("data")
    return args[0] if args else kwargs.get("data", kwargs.get("obj"))


def _in_place(name):
    return name in _IN_PLACE_OPERATORS or (name.endswith("_") and not name.startswith("__"))

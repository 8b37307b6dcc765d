"""Stand-ins for the torch names outside torch.cuda that name a GPU: `torch.device(1)`,
`model.to(1)`, `torch.Generator(device="cuda")` (refused), and where torch.save says a tensor lives
and torch.load puts it back.

On a CPU-only torch these reach for an accelerator that does not exist, or see every virtual
GPU's storage as a CPU one; here they answer for the virtual GPUs.
"""
import functools

import torch
import torch.serialization

from grader.devices import cuda_index
from grader.virtual import refusals

REAL_DEVICE, REAL_GENERATOR = torch.device, torch.Generator


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


def _device(*args, **kwargs):
    """torch.device, where a bare ordinal (`torch.device(1)`) means a CUDA GPU, as on a CUDA build."""
    if len(args) == 1 and not kwargs and _is_ordinal(args[0]):
        return REAL_DEVICE("cuda", args[0])
    return REAL_DEVICE(*args, **kwargs)


def install(gpus, patcher):
    patcher.setattr(torch, "device", _stand_in(REAL_DEVICE, _device))
    patcher.setattr(torch, "Generator", _stand_in(REAL_GENERATOR, refusals.generator(REAL_GENERATOR)))
    patcher.setattr(torch._C._nn, "_parse_to", _ordinals_are_gpus(torch._C._nn._parse_to))  # Module.to(1)
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
        if not 0 <= index < gpus.count:
            raise RuntimeError(f"Attempting to deserialize object on CUDA device {index} but torch.cuda.device_count() "
                               f"is {gpus.count}. Please use torch.load with map_location to map your storages to "
                               "an existing device.")
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

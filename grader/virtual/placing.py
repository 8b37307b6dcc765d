"""Placement as an op makes its tensors: a dispatch-level mode under which each aten op's new
storages get the GPU the runtime's op runs on at once, so that code running inside the op
(saved-tensor hooks, activation checkpointing) already sees them there, and an op that returns (a
view of) its input leaves the input's home alone."""
import contextlib

from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode, _pop_mode_temporarily

from grader.devices import tensors_in


class Placing(TorchDispatchMode):
    """What the modes of `placing` are: `aside` finds them on the stack by this class."""


def placing(gpus):
    """The class of one runtime's placement modes: `Mode(device)` homes on `device` (a GPU) what
    each aten op run under it creates. The runtime lives in this closure, not on the mode, which a
    submission's saved-tensor hooks could find on the dispatch stack."""

    class Mode(Placing):
        def __init__(self, device):
            super().__init__()
            self.device = device

        @classmethod
        def _should_skip_dynamo(cls):
            return False  # else torch wraps __torch_dispatch__ in a guard that imports torch._dynamo (a second)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            gpus.settle_created(out, tensors_in(args, kwargs), self.device)
            return out

    return Mode


@contextlib.contextmanager
def aside():
    """Code an op calls back (a saved-tensor hook) makes ops of its own, each placed by its own rule:
    the calling op's Placing steps aside meanwhile."""
    if isinstance(_get_current_dispatch_mode(), Placing):
        with _pop_mode_temporarily():
            yield
    else:
        yield

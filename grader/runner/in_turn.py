"""Probes run one after another in one process (grader.contract.TOGETHER), each as if it had the
process to itself: it loads the submission afresh on a fresh runtime (grader.runner.probes.run),
and it starts only where the process is still as the first probe found it. What a probe leaves
behind is not put back: the rest of its group goes on in a fresh process instead (`Dirty`), so a
probe in turn sees what a probe alone would. A load that fails in a process that ran a probe
before is tried again in a fresh one too: module-level code may make a call torch allows once a
process (`torch.set_num_interop_threads`)."""
import gc
import sys
import weakref

import torch
import torch.nn.modules.module as modules
from torch.autograd import forward_ad
from torch.utils._python_dispatch import _len_torch_dispatch_stack

from grader.runner import probes
from grader.runner.loader import ImportFailed
from grader.runner.snapshot import Snapshot

GLOBAL_HOOKS = sorted(name for name in vars(modules) if name.startswith("_global_") and name.endswith("hooks"))
PRECISIONS = [(owner, "fp32_precision") for owner in (
    torch.backends, torch.backends.cuda.matmul, torch.backends.cudnn, torch.backends.mkldnn,
    getattr(torch.backends.cudnn, "conv", None), getattr(torch.backends.cudnn, "rnn", None),
    getattr(torch.backends.mkldnn, "matmul", None), getattr(torch.backends.mkldnn, "conv", None),
    getattr(torch.backends.mkldnn, "rnn", None)) if owner is not None and hasattr(owner, "fp32_precision")]


class Dirty(Exception):
    """The process is not as the first probe found it: the next probe needs a fresh one."""


class InTurn:
    def __init__(self):
        self.rest, self.state = Snapshot(), state()
        self.previous = None  # the last probe's module, weakly: it must be gone before the next loads
        self.ran = False

    def run(self, name, source, path, mode):
        """(facts, blobs) of probe `name`, as probes.run; Dirty, before any of it runs, when the
        process is no longer fit for it."""
        sys.modules.pop("submission", None)  # the last probe's module, collected now if nothing else holds it
        gc.collect()  # and what it left to finalize runs now, before the process is judged
        what = self._left()
        if what is not None:
            raise Dirty(what)
        gc.enable()  # (the probe before disabled it: see probes._finalized)
        first, self.ran = not self.ran, True
        try:
            return probes.run(name, source, path, mode)
        except ImportFailed as error:
            if first:
                raise
            raise Dirty(f"the submission's import failed here: {error}") from None
        finally:
            module = sys.modules.get("submission")
            self.previous = weakref.ref(module) if module is not None else None

    def _left(self):
        """What the probes before left in the process, or None."""
        if self.previous is not None and self.previous() is not None:
            return "the last probe's module is still alive"
        changed = self.rest.changed()
        if changed is not None:
            return changed
        now = state()
        return next((f"{key} is {now[key]!r}" for key in self.state if now[key] != self.state[key]), None)


def state():
    """torch's process-wide state that a submission's honest calls change and that changes what a
    probe computes or reports: settings, global hooks, modes, an open forward-AD level."""
    return {
        "grad mode": torch.is_grad_enabled(),
        "the default dtype": torch.get_default_dtype(),
        "the default device": torch.get_default_device(),
        "deterministic algorithms": (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled()),
        "the matmul precision": _quietly(torch.get_float32_matmul_precision),
        "the fp32 precisions": [getattr(owner, name) for owner, name in PRECISIONS],
        "anomaly detection": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        "the threads": (torch.get_num_threads(), torch.get_num_interop_threads()),
        "warn always": torch.is_warn_always_enabled(),
        "the print options": dict(vars(torch._tensor_str.PRINT_OPTS)),
        "autocast": [torch.is_autocast_enabled(device) for device in ("cpu", "cuda")],
        "the backends' flags": (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
                                torch.backends.cudnn.deterministic, torch.backends.mkldnn.enabled),
        "sparse invariants": torch.sparse.check_sparse_tensor_invariants.is_enabled(),
        "the global module hooks": [len(getattr(modules, name)) for name in GLOBAL_HOOKS],
        "the torch function modes": len(torch.overrides._get_current_function_mode_stack()),
        "the dispatch modes": _len_torch_dispatch_stack(),
        "the forward-AD level": forward_ad._current_level,
    }


def _quietly(getter):
    """getter(), or the kind of error it raises (torch refuses its legacy getter once the newer
    per-backend settings are used)."""
    try:
        return getter()
    except Exception as error:  # noqa: BLE001 - the error is the state
        return type(error).__name__

"""Probes run one after another in one process (grader.contract.TOGETHER), each as if it had the
process to itself: it loads the submission afresh on a fresh runtime (grader.runner.probes.run),
or goes on in the run of the probe before it, with that one's model where its calls changed
nothing (grader.runner.probes.GOES_ON); and it starts only where the process is still as the first
probe found it, checked before each run and between the probes of one. What a probe leaves
behind is neither put back nor freed: what it made stays as it was, as in a process that ended
(none of it is finalized: a generator's `finally` never runs), and where the process is not as it
was, the rest of the group goes on in a fresh one (`Dirty`). So a probe in turn sees what a probe
alone would. A load that fails in a process that ran a probe before is tried again in a fresh one
too: module-level code may make a call torch allows once a process."""
import functools
import gc
import resource
import sys

import torch
import torch.nn.modules.module as modules
import torch.optim.optimizer as optimizers
from torch.autograd import forward_ad
from torch.utils._python_dispatch import _len_torch_dispatch_stack

from grader.runner import model_state, probes
from grader.runner.loader import ImportFailed
from grader.runner.snapshot import Snapshot

GROWTH = 256 * 2**20  # the address space the probes before may leave: past it, a fresh process
GLOBAL_HOOKS = [(owner, name) for owner, prefix in ((modules, "_global_"), (optimizers, "_global_optimizer_"))
                for name in sorted(vars(owner)) if name.startswith(prefix) and name.endswith("hooks")]
PRECISIONS = [owner for owner in (
    torch.backends, torch.backends.cuda.matmul, torch.backends.cudnn, torch.backends.mkldnn,
    *(getattr(torch.backends.cudnn, kind, None) for kind in ("conv", "rnn")),
    *(getattr(torch.backends.mkldnn, kind, None) for kind in ("matmul", "conv", "rnn")))
    if hasattr(owner, "fp32_precision")]  # (torch's newer per-backend settings, where this torch has them)
ONCE = ("set_num_interop_threads",)  # torch's calls that a process may make once, whatever the value


class Dirty(Exception):
    """The process is not as the first probe found it: the next probe needs a fresh one."""


class InTurn:
    """The probes of one process, each run as if alone (see above)."""

    def __init__(self, memory_bytes=None):
        """`memory_bytes`: the address space each probe may add (virtual GPUs' limit), or None."""
        self.memory_bytes = memory_bytes
        self.called = set()  # which of ONCE the submission called in this process
        for name in ONCE:
            setattr(torch, name, _Recorded(self.called, name, getattr(torch, name)))
        self.rest, self.state, self.size = Snapshot(), state(), address_space()
        self.kept = []  # each probe's module, never freed here
        self.ran = False

    def run(self, chain, source, path, mode, report):
        """Run the probes of `chain`, as probes.run; Dirty, before any of it runs or between two of
        its probes, when the process is no longer fit for the next."""
        first, self.ran = not self.ran, True
        if not first:
            self._ready()
        try:
            return probes.run(chain, source, path, mode, report, self._between)
        except ImportFailed as error:
            if first:
                raise
            raise Dirty(f"the submission's import failed here: {error}") from None
        finally:
            self.kept.append(sys.modules.get("submission"))

    def _between(self, module):
        """The check before each probe of a run after its first, against what the run's load left
        (inside its runtime, whose own patches the run's snapshot stands guard over): the process;
        the submission's module, whose globals a probe alone would find as the load left them; and
        the current GPU and streams, which a probe alone finds as a fresh runtime sets them."""
        since, loaded, gpus = state(), model_state.of_module(module), current_gpus()

        def ready():
            if loaded is None or not loaded.same(model_state.of_module(module)):
                raise Dirty("the submission's module is not as its load left it")
            if current_gpus() != gpus:
                raise Dirty(f"the current GPU and streams are {current_gpus()}")
            self._ready(since)
        return ready

    def _ready(self, since=None):
        """Ready the process for a probe that is not its first, as a probe alone would find it;
        Dirty where it is not fit. `since`: the state() the run began with, between two of its
        probes."""
        gc.freeze()  # what the probes before left, garbage or not, is never collected here
        what = self._left(since)
        if what is not None:
            raise Dirty(what)
        if self.memory_bytes is not None:  # the address space a probe alone would get
            hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (min(hard, address_space() + self.memory_bytes), hard))
        gc.enable()  # (a run before disabled it: see probes._finalized)

    def _left(self, since=None):
        """What the probes before left in the process, or None."""
        if self.called:
            return f"the submission called torch.{min(self.called)}"
        changed = self.rest.changed() if since is None else None
        if changed is not None:
            return changed
        before, now = since or self.state, state()
        what = next((f"{key} is {now[key]!r}" for key in before if now[key] != before[key]), None)
        if what is not None:
            return what
        grown = address_space() - self.size
        return f"the probes before left {grown / 2**20:.0f} MiB" if grown > GROWTH else None


def current_gpus():
    """(the current GPU, each GPU's current stream), as plain numbers: inside a runtime only."""
    return torch.cuda.current_device(), [torch.cuda.current_stream(index).stream_id
                                         for index in range(torch.cuda.device_count())]


def state():
    """torch's process-wide state that a submission's honest calls change and that changes what a
    probe computes or reports: settings, global hooks, modes, an open forward-AD level. Plain
    values only (`_plain`): comparing or showing them runs none of the submission's code."""
    return {
        "grad mode": torch.is_grad_enabled(),
        "the default dtype": torch.get_default_dtype(),
        "the default device": torch.get_default_device(),
        "deterministic algorithms": (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled()),
        "the matmul precision": _quietly(torch.get_float32_matmul_precision),
        "the fp32 precisions": [owner.fp32_precision for owner in PRECISIONS],
        "anomaly detection": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        "the threads": (torch.get_num_threads(), torch.get_num_interop_threads()),
        "warn always": torch.is_warn_always_enabled(),
        "the print options": [(name, _plain(value))
                              for name, value in sorted(vars(torch._tensor_str.PRINT_OPTS).items())],
        "autocast": [torch.is_autocast_enabled(device) for device in ("cpu", "cuda")],
        "the backends' flags": (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
                                torch.backends.cudnn.deterministic, torch.backends.mkldnn.enabled),
        "sparse invariants": torch.sparse.check_sparse_tensor_invariants.is_enabled(),
        "the global hooks": [len(getattr(owner, name)) for owner, name in GLOBAL_HOOKS],
        "the torch function modes": len(torch.overrides._get_current_function_mode_stack()),
        "the dispatch modes": _len_torch_dispatch_stack(),
        "the forward-AD level": _plain(forward_ad._current_level),
        "saved-tensor hooks": (torch._C._autograd._top_saved_tensors_default_hooks(False) is not None,
                               torch._C._autograd._saved_tensors_hooks_is_enabled()),
        "autograd's threads": torch._C._is_multithreading_enabled(),
    }


def _plain(value):
    """`value` if it is a plain number, string or None; else what stands for it, its type's name
    (an object the submission stored may run its code when compared or shown)."""
    return value if type(value) in (int, float, bool, str, type(None)) else ("an object of", type(value).__name__)


def _quietly(getter):
    """getter(), or the kind of error it raises (torch refuses its legacy getter once the newer
    per-backend settings are used)."""
    try:
        return getter()
    except Exception as error:  # noqa: BLE001 - the error is the state
        return type(error).__name__


class _Recorded:
    """torch's `function`, noting in `called` each time it succeeds: an object, not a function, so
    that it does not bind as a method (torch's own, a builtin, does not)."""

    def __init__(self, called, name, function):
        self._called, self._name, self._function = called, name, function
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        out = self._function(*args, **kwargs)
        self._called.add(self._name)
        return out


def address_space():
    """This process's address space, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()

"""Detecting, inside the sandbox, a submission that replaced parts of torch, time or builtins
(placement, timing and results all depend on them): a second line behind the static rules."""
import builtins
import operator
import os
import time
import types

import torch

from grader.contract import TAMPER
from grader.runner.loader import StudentError

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# What torch sets itself, as a submission's honest calls ask: torch.cuda's lazy initialisation at
# the first use of CUDA, and torch.Storage, which set_default_dtype points at the default's storage.
TORCH_STATE = {torch: frozenset({"Storage"}),
               torch.cuda: frozenset({"_initialized", "_cached_device_count", "default_generators"})}
PYTHONS_OWN = frozenset({"__warningregistry__"})  # what Python's warnings add to any module that warns


class Tampering(StudentError):
    def __init__(self, what):
        super().__init__(f"{TAMPER}: {what}")


def _made_by_torch(value):
    """Torch sets some of its own attributes when it lazily imports torch._dynamo (wrapping
    torch.manual_seed, adding submodules); such values come from torch's own files. Read by their
    types alone: a value the submission set runs none of its code here."""
    target = value.fget if type(value) is property else value
    if type(target) is types.FunctionType:
        where = target.__code__.co_filename
    elif type(target) is types.ModuleType:
        where = vars(target).get("__file__")
    else:
        return False
    return type(where) is str and where.startswith(TORCH_DIR)


class Snapshot:
    """What torch, time and builtins look like before the submission runs; `check()` names, in a
    stable order, the first attribute the submission replaced or removed."""

    def __init__(self):
        self.owners = [
            torch, torch.Tensor, torch.nn, torch.nn.Module, torch.nn.Linear, torch.nn.ReLU, torch.nn.Parameter,
            torch.nn.functional, torch.optim, torch.optim.Optimizer, torch.optim.SGD, torch.autograd, torch.cuda,
            torch.cuda.Event, torch.cuda.Stream,  # (the runtime's, where it is in place: the grader times with them)
            time, builtins,
        ]
        self.saved = [dict(vars(owner)) for owner in self.owners]

    def check(self):
        changed = self.changed()
        if changed is not None:
            raise Tampering(f"the submission changed {changed}")

    def changed(self):
        """The first attribute replaced or removed since the snapshot, as `owner.name`, or None.
        An owner whose names all hold what they held is passed over whole: compared by identity,
        in C (a probe checks twice, and torch alone has thousands of names)."""
        for owner, saved in zip(self.owners, self.saved):
            now = vars(owner)
            if now.keys() == saved.keys() and all(map(operator.is_, map(now.__getitem__, saved), saved.values())):
                continue
            for name in sorted(saved.keys() | now.keys()):
                value = now.get(name, Snapshot)  # Snapshot: removed
                if name in PYTHONS_OWN or name in TORCH_STATE.get(owner, ()):
                    continue
                if value is not saved.get(name, Snapshot) and not _made_by_torch(value):
                    return f"{getattr(owner, '__name__', owner)}.{name}"
        return None

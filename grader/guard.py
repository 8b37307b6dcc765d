"""Tamper checks on a submission: what it may import, and what it must leave as it found it.

Both report through `Tampering`, whose message starts with TAMPER so that every channel (the
table, the JSON, the batch status) can tell abuse from an honest bug.
"""
import ast
import builtins
import os
import time

import torch

TAMPER = "tamper-suspected"
TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
# Names and attributes that reach past the lab's contract into the interpreter or the grader.
FORBIDDEN_NAMES = frozenset({"__import__", "exec", "eval", "compile", "open", "globals", "vars", "setattr",
                             "delattr", "breakpoint", "__builtins__"})
FORBIDDEN_ATTRIBUTES = frozenset({"__subclasses__", "__globals__", "__builtins__", "__code__", "__dict__",
                                  "__loader__", "__spec__", "__import__", "_getframe",
                                  # modules torch happens to expose as attributes (torch.os, torch.sys...)
                                  "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "shutil",
                                  "socket", "signal", "multiprocessing", "gc", "inspect"})


class StudentError(Exception):
    """Student code failed; the message says what, and where in the submission."""


class Tampering(StudentError):
    def __init__(self, what):
        super().__init__(f"{TAMPER}: {what}")


def check_source(source, allowed_imports):
    """Refuse, before it runs, a submission that imports or reaches for more than the lab needs."""
    tree = ast.parse(source)  # a SyntaxError is the loader's to report
    graded = [node for node in tree.body if not _is_main_block(node)]  # the demo block never runs here
    for node in (inner for top in graded for inner in ast.walk(top)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        else:
            modules = []
        for module in modules:
            if module.split(".")[0] not in allowed_imports:
                raise Tampering(f"line {node.lineno} imports {module}; the rubric allows only "
                                f"{', '.join(sorted(allowed_imports))}")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:  # (torch.compile is no concern)
            raise Tampering(f"line {node.lineno} uses {node.id}, which the lab never needs")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            raise Tampering(f"line {node.lineno} uses {node.attr}, which the lab never needs")


def _is_main_block(node):
    """`if __name__ == "__main__":` at the top level."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _made_by_torch(value):
    """Torch sets some of its own attributes when it lazily imports torch._dynamo (wrapping
    torch.manual_seed, adding submodules); such values come from torch's own files."""
    code = getattr(getattr(value, "fget", value), "__code__", None)
    where = code.co_filename if code is not None else getattr(value, "__file__", None)
    return where is not None and where.startswith(TORCH_DIR)


class Snapshot:
    """What torch, time and builtins look like before the submission runs; `check()` names any
    attribute the submission replaced or removed (placement, timing and results all depend on them)."""

    def __init__(self):
        self.owners = [
            torch, torch.Tensor, torch.nn, torch.nn.Module, torch.nn.Linear, torch.nn.ReLU, torch.nn.Parameter,
            torch.nn.functional, torch.optim, torch.optim.Optimizer, torch.optim.SGD, torch.autograd, torch.cuda,
            time, builtins,
        ]
        self.saved = [dict(vars(owner)) for owner in self.owners]

    def check(self):
        for owner, saved in zip(self.owners, self.saved):
            now = vars(owner)
            for name in saved.keys() | now.keys():
                value = now.get(name, Snapshot)  # Snapshot: removed
                if value is not saved.get(name, Snapshot) and not _made_by_torch(value):
                    raise Tampering(f"the submission changed {getattr(owner, '__name__', owner)}.{name}")

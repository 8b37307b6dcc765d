"""Loading a submission from its text and calling its functions, each failure worded for the
student (what raised, and on which line of their file)."""
import difflib
import sys
import traceback
import types

import torch

from grader.bounded import first_line, name_of
from grader.contract import SHAPES


class StudentError(Exception):
    """Student code failed; the message says what, and where in the submission. `unfinished`:
    the code is not written yet (the starter's NotImplementedError, or the name is missing)."""

    def __init__(self, message, unfinished=False):
        super().__init__(message)
        self.unfinished = unfinished


class ImportFailed(StudentError):
    """The submission's own module-level code raised."""


def load(source, path):
    """The submission as a module named `submission`; its file name is `path` (for line numbers)."""
    try:
        code = compile(source, path, "exec")
    except SyntaxError as error:
        raise StudentError(f"your submission does not compile: {error.msg} (line {error.lineno})") from None
    module = types.ModuleType("submission")
    module.__file__ = path
    sys.modules["submission"] = module
    try:
        exec(code, module.__dict__)
    except BaseException as error:  # noqa: BLE001 - whatever the submission raises at import
        raise ImportFailed(f"importing your submission raised {explain(error, path)}") from None
    return module


def contract(module, name):
    try:
        return getattr(module, name)
    except AttributeError:
        close = difflib.get_close_matches(name, [n for n in vars(module) if not n.startswith("_")], n=1, cutoff=0.75)
        hint = f" (did you mean to name `{close[0]}` `{name}`?)" if close else ""
        raise StudentError(f"your submission defines no `{name}`{hint}: keep the names of starter/model.py",
                           unfinished=not close) from None


def call(what, func, *args, **kwargs):
    """Run student code; any exception, exit() included, becomes a StudentError naming `what`."""
    try:
        return func(*args, **kwargs)
    except BaseException as error:  # whatever the submission raises, exit() included
        path = getattr(sys.modules.get("submission"), "__file__", None)
        raise StudentError(f"{what} raised {explain(error, path)}", type(error) is NotImplementedError) from None


def explain(error, path):
    if isinstance(error, SystemExit):
        return "SystemExit (tamper-suspected: a submission must not exit the grader)"
    kind, message = name_of(error), first_line(error)
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == path]
    where = f" (line {lines[-1]})" if lines else ""
    return f"{kind}: {message}{where}" if message else f"{kind}{where}"


def locate(model):
    """{role: (name, parameter)} of the two layers, found by shape so that any attribute names work."""
    found = {}
    for name, param in model.named_parameters():
        for role, shape in SHAPES.items():
            if role not in found and tuple(param.shape) == shape:
                found[role] = (name, param)
                break
    return found


def require_layers(found, what="SimpleMPModel"):
    """{role: parameter} of a model's located layers (`locate`); a StudentError when a layer is
    missing or a parameter is not a plain nn.Parameter (a subclass could report a device it is not on)."""
    missing = [role for role in SHAPES if role not in found]
    if missing:
        raise StudentError(f"{what} has no parameters of shape " + ", ".join(str(SHAPES[r]) for r in missing)
                           + ": expected Linear(1000, 2000) and Linear(2000, 1000) layers")
    for name, param in found.values():
        exact(param, torch.nn.Parameter, f"{what}'s parameter {name}")
    return {role: param for role, (name, param) in found.items()}


def exact(value, kind, what):
    """Refuse a subclass: placement is read from the runtime, never from a class the submission wrote."""
    if type(value) is not kind:
        raise StudentError(f"{what} is a {name_of(value)}, not a plain torch {kind.__name__}: "
                           "the grader accepts only torch's own tensor and parameter types")

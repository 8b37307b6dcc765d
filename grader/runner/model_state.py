"""What a probe's calls can change of a model and of the submission's module, read without
running any of the submission's code: so that the next probe of a run goes on with the model, and
the load, only where it finds what a fresh one would give it (grader.runner.probes.GOES_ON).

Read by identity, one level deep: every module of the model (through torch's own registries),
each one's attributes and its classes', the contents of each attribute that is a dict, list, set
or tuple (torch's registries of parameters, buffers, submodules and hooks among them); every
parameter's and buffer's version (which every write in place bumps), data, device, gradient and
whether it requires one; and the submission module's globals, with the same one level of
contents. Two readings are the same when every object is the same object and every number the
same number: comparing them calls no `__eq__` of the submission's. What it does not see is state
nested deeper (a list in a list, a default argument, a closure's cell). A reading past OBJECTS_CAP
(a module-level table of a million entries) is not taken: then nothing goes on."""
import types

import torch

from grader.devices import OWN_DEVICE, OWN_GRAD

# Python's and torch's own accessors, bound before any submission loads: nothing of the
# submission's (a `__dict__`, `__getattribute__` or `__mro__` of its own, a metaclass) is asked.
_INSTANCE_DICT = torch.nn.Module.__dict__["__dict__"].__get__
_MODULE_DICT = types.ModuleType.__dict__["__dict__"].__get__
_CLASS_DICT = type.__dict__["__dict__"].__get__
_MRO = type.__dict__["__mro__"].__get__
_VERSION = torch._C.TensorBase._version.__get__
_REQUIRES_GRAD = torch._C.TensorBase.requires_grad.__get__
_DATA = torch._C.TensorBase.data_ptr
CONTAINERS = (dict, list, set, frozenset, tuple)
WARNINGS = "__warningregistry__"
MODULES_CAP = 1000  # modules walked: past it the model is not read, and never goes on
OBJECTS_CAP = 100_000  # objects one reading holds (a few MiB of references)


class _TooLarge(Exception):
    pass


def _one_of(kind, kinds):
    """Whether `kind` is one of `kinds`, by identity: `in` would ask a metaclass's `__eq__`."""
    return any(kind is k for k in kinds)


class State:
    """One reading: the objects seen (compared by identity) and the numbers read (by value)."""

    def __init__(self, objects, numbers):
        self.objects, self.numbers = objects, numbers

    def same(self, other):
        return (other is not None and len(self.objects) == len(other.objects) and self.numbers == other.numbers
                and all(a is b for a, b in zip(self.objects, other.objects)))


def of_module(module):
    """The State of the submission's module: its globals, but for the registry Python's warnings
    keep there (a warning torch raises from the submission's line adds to it); None past
    OBJECTS_CAP."""
    objects, numbers = [], []
    try:
        _entries({k: v for k, v in dict.items(_MODULE_DICT(module)) if not (type(k) is str and k == WARNINGS)},
                 objects, numbers)
    except _TooLarge:
        return None
    return State(objects, numbers)


def of_model(model):
    """The State of `model`, or None where it is not plain torch modules and tensors, or past
    OBJECTS_CAP (then nothing goes on with it)."""
    try:
        return _read(model)
    except (RuntimeError, TypeError, ValueError, _TooLarge):  # (a tensor with no data to point at, say)
        return None


def _read(model):
    objects, numbers = [], []
    stack, seen = [model], set()
    while stack:
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        if len(seen) > MODULES_CAP or not issubclass(type(part), torch.nn.Module):
            return None
        attributes = _INSTANCE_DICT(part)
        if type(attributes) is not dict:
            return None
        objects.append(part)
        for cls in _MRO(type(part)):
            _entries(_CLASS_DICT(cls), objects, numbers)
        _entries(attributes, objects, numbers)
        registries = {key: value for key, value in dict.items(attributes)
                      if type(key) is str and key in ("_parameters", "_buffers", "_modules")}
        if len(registries) != 3 or any(type(value) is not dict for value in registries.values()):
            return None
        for tensor in [*dict.values(registries["_parameters"]), *dict.values(registries["_buffers"])]:
            if tensor is None:
                continue
            if not _one_of(type(tensor), (torch.Tensor, torch.nn.Parameter)):  # (a subclass's code never runs here)
                return None
            numbers += [_VERSION(tensor), _DATA(tensor), str(OWN_DEVICE(tensor)), OWN_GRAD(tensor) is None,
                        _REQUIRES_GRAD(tensor)]
        stack.extend(child for child in dict.values(registries["_modules"]) if child is not None)
    return State(objects, numbers)


def _entries(mapping, objects, numbers):
    """Each key and value of `mapping`, and one level of each value that is a plain container
    (or a dict of any kind, read as a dict: torch's registries are OrderedDicts)."""
    for key, value in (dict.items(mapping) if isinstance(mapping, dict) else mapping.items()):
        objects += (key, value)
        kind = type(value)
        size = dict.__len__(value) if issubclass(kind, dict) else len(value) if _one_of(kind, CONTAINERS) else 0
        if len(objects) + 2 * size > OBJECTS_CAP:
            raise _TooLarge
        if issubclass(kind, dict):
            numbers.append(size)
            for inner in dict.items(value):
                objects += inner
        elif _one_of(kind, CONTAINERS):
            numbers.append(size)
            objects.extend(sorted(value, key=id) if _one_of(kind, (set, frozenset)) else value)

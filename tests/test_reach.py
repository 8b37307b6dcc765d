"""Nothing of the observer is reachable from a submission: from every name a submission can write
while the runtime is on (what it put in torch.cuda, torch, torch.accelerator and time, and what
those return), no chain of public attributes (the static rules refuse the rest) leads to the
trace, the placement map, the clocks, the memory counts, the random generators or the patcher,
nor to any module of the grader. And what a submission may set on the runtime's objects changes
no fact the grader reads."""
import time
import types

import pytest
import torch

from grader import devices, patching, trace
from grader.virtual import clocks, cuda, gpus, memory, rng, virtual_gpus

OBSERVER = (trace.Trace, devices.DeviceMode, clocks.GPUClocks, memory.Memory, rng.VirtualRandom, cuda.VirtualCuda,
            patching.Patcher, gpus.VirtualGPUs)
OWNERS = (torch, torch.cuda, torch.cuda.memory, torch.cuda.random, torch.accelerator, time)


def _instances():
    """What a submission gets back from the runtime's stand-ins, each by the call that made it."""
    x = torch.ones(2, device="cuda:1", requires_grad=True)
    y = (x * 2).sum()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return {
        "Event()": event, "Stream(1)": torch.cuda.Stream(1), "current_stream(0)": torch.cuda.current_stream(0),
        "default_stream(1)": torch.cuda.default_stream(1), "cuda.device(1)": torch.cuda.device(1),
        "get_device_properties(0)": torch.cuda.get_device_properties(0), "torch.device('cuda:1')": torch.device(1),
        "x": x, "x.device": x.device, "y.grad_fn": y.grad_fn, "memory_stats(1)": torch.cuda.memory_stats(1),
        "Generator()": torch.Generator(), "cuda.stream(s)": torch.cuda.stream(torch.cuda.Stream(0)),
        "get_rng_state(1)": torch.cuda.get_rng_state(1), "Event.record_event": torch.cuda.Stream(0).record_event(),
    }


def _public(value):
    try:
        names = dir(value)
    except Exception:  # noqa: BLE001 - an object whose dir() fails offers nothing to walk
        return []
    return [n for n in names if not n.startswith("_")]


def _found(roots, depth=4):
    """(path, object) of each observer object, or grader module, a walk of public attributes meets."""
    seen, found, frontier = set(), [], list(roots.items())
    for _ in range(depth):
        following = []
        for path, value in frontier:
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, OBSERVER) or (isinstance(value, types.ModuleType)
                                               and value.__name__.startswith("grader")):
                found.append((path, type(value).__name__))
                continue
            if isinstance(value, types.ModuleType):
                continue  # torch's and Python's own modules: walked from their names, not into
            if isinstance(value, (tuple, list, dict)):  # a subscript is as open as an attribute
                items = value.items() if isinstance(value, dict) else enumerate(value)
                following += [(f"{path}[{key!r}]", item) for key, item in list(items)[:64]]
            for name in _public(value):
                try:
                    following.append((f"{path}.{name}", getattr(value, name)))
                except Exception:  # noqa: BLE001, S112 - a property that raises leads nowhere
                    continue
        frontier = following
    return found


def test_no_public_attribute_of_the_runtime_reaches_the_observer():
    before = {owner: dict(vars(owner)) for owner in OWNERS}
    with virtual_gpus(2):
        roots = {f"{owner.__name__}.{name}": value for owner in OWNERS for name, value in vars(owner).items()
                 if not name.startswith("_") and value is not before[owner].get(name)}
        roots.update(_instances())
        assert len(roots) > 40  # the stand-ins were found
        assert _found(roots) == []


def _stacks():
    """What torch's mode stacks hold while the runtime runs, as torch's own helpers show them: the
    function modes, and the dispatch modes a submission's hooks run under (a tensor hook during
    backward, a saved-tensor hook inside an op)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    found = {"function modes": list(torch.overrides._get_current_function_mode_stack())}

    def pack(tensor):
        found["dispatch modes in an op"] = list(_get_current_dispatch_mode_stack())
        return tensor

    def hook(grad):
        found["dispatch modes in backward"] = list(_get_current_dispatch_mode_stack())

    x = torch.ones(3, device="cuda:1", requires_grad=True)
    x.register_hook(hook)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = (x * x).sum()
    y.backward()
    return found


def test_torchs_mode_stacks_hold_nothing_of_the_observer():
    """The runtime's modes sit on torch's stacks, which private helpers show: what is there only
    hands calls on (red team: the trace was one attribute away from the mode on the stack)."""
    with virtual_gpus(2):
        stacks = _stacks()
    assert stacks["function modes"] and stacks["dispatch modes in backward"]
    roots = {f"{where}[{n}]": mode for where, modes in stacks.items() for n, mode in enumerate(modes)}
    assert _found(roots) == []


def test_a_submission_cannot_rewrite_an_events_time():
    """An event's time lives with the runtime, not on the object: the elapsed time is the GPU's."""
    with virtual_gpus(2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.ones(100, 100, device="cuda:0") @ torch.ones(100, 100, device="cuda:0")
        end.record()
        torch.cuda.synchronize(0)
        measured = start.elapsed_time(end)
        for name in ("time", "number", "device", "completed"):
            try:
                setattr(end, name, 1e9)
            except (AttributeError, TypeError):
                pass
        assert start.elapsed_time(end) == pytest.approx(measured)

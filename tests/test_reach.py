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
from corpus import ROOT
from helpers import grade, submitted

from grader import devices, patching, trace
from grader.contract import TAMPER
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


# -- what the grader reads of a tensor is torch's own answer ----------------------------------
def _solution(edit):
    return edit((ROOT / "solutions" / "model.py").read_text())


LYING_DEVICE = """
reads = [0]


def placed(t):
    reads[0] += 1
    if reads[0] >= 4:
        del torch.Tensor.device
    return device0 if t.shape[0] == 2000 else device1

"""


def test_a_device_property_that_lies_and_removes_itself_places_nothing(tmp_path):
    """Layers left on the CPU, behind a property on torch.Tensor that says cuda:0 and cuda:1 and
    removes itself once read: the grader reads torch's own getter, so the property is never read,
    stays, and is tampering; where it was read, it was gone before the tamper check."""
    def edit(text):
        for layer, relu in (("layer1", "relu1"), ("layer2", "relu2")):  # the layers stay on the CPU
            device = "device0" if layer == "layer1" else "device1"
            text = text.replace(f".to({device})\n        self.{relu}", f"\n        self.{relu}", 1)
        lying = "        reads[0] = 0\n        torch.Tensor.device = property(placed)\n"
        last = "        self.relu2 = nn.ReLU().to(device1)\n"
        text = text.replace(last, last + lying, 1)
        return text.replace("\n\nclass SimpleMPModel", LYING_DEVICE + "\nclass SimpleMPModel", 1)

    source = _solution(edit)
    assert "torch.Tensor.device = property(placed)" in source and "2000).to(device0)" not in source
    model = tmp_path / "model.py"
    model.write_text(source)
    _, graded = grade(tmp_path, *submitted(model))
    placed = {c["id"]: c for c in graded["checks"]}
    for item in ("part1.layer1_on_cuda0", "part1.layer2_on_cuda1"):
        assert placed[item]["points"] == 0 and TAMPER in placed[item]["message"], placed[item]


def test_parameter_names_that_are_not_strings_cost_no_probe(tmp_path):
    """named_parameters() is the submission's to define: names it yields that are not strings are
    shown by their type, and nothing else of the grading changes."""
    source = _solution(lambda text: text.replace(
        "    def forward(self, x, verbose=False):\n",
        "    def named_parameters(self, prefix='', recurse=True, remove_duplicate=True):\n"
        "        for name, p in super().named_parameters(prefix, recurse, remove_duplicate):\n"
        "            yield (object(), p)\n\n"
        "    def forward(self, x, verbose=False):\n", 1))
    model = tmp_path / "model.py"
    model.write_text(source)
    _, graded = grade(tmp_path, *submitted(model))
    assert [c["id"] for c in graded["checks"] if c["status"] != "passed"] == [], graded["checks"]

"""The probes: each exercises one function of the lab's contract on a model loaded with the
grader's own weights, and returns (facts, blobs): plain JSON-ready facts and float32 tensors as
bytes, for the trusted side to judge.

A probe observes; it does not judge. It never computes a reference from the submission's code:
the references are computed on the trusted side from `grader.inputs` and the returned tensors.
The probe's own steps (copying weights, reading results) are kept out of the trace.
"""
import contextlib
import ctypes
import io
import math
import time
from time import perf_counter as host_clock  # bound before any clock is patched

import torch
import torch.nn.functional as F

from grader import inputs
from grader.contract import DESCRIPTIONS as CONTRACT_PROBES
from grader.contract import (BATCH, LARGE_BATCH, LR, PIPELINE_BATCH, PROFILE_BATCHES, PROFILE_KEYS, SEEDS,
                             SPLIT, STEPS)
from grader.devices import real_gpus
from grader.runner.loader import StudentError, call, contract, exact, load, locate, require_layers
from grader.runner.snapshot import Snapshot
from grader.trace import Printed, Trace
from grader.virtual import virtual_gpus

CUDA0, CUDA1 = torch.device("cuda", 0), torch.device("cuda", 1)


class Probe:
    """One probe's run: the submission loaded under real or virtual GPUs, its trace, its blobs."""

    def __init__(self, module, trace, mode):
        self.module, self.trace, self.mode = module, trace, mode
        self.blobs = {}

    def events(self, mark):
        return self.trace.to_json(mark)

    def blob(self, name, tensor):
        """Keep `tensor` (any device) as float32 bytes for the trusted side."""
        with self.trace.paused():
            host = tensor.detach().to("cpu").to(torch.float32).contiguous()
            self.blobs[name] = ctypes.string_at(host.data_ptr(), host.numel() * 4)
        return list(host.shape)

    def model(self, seed, *args, cls="SimpleMPModel"):
        """A fresh model of the submission's class, its layers loaded with the grader's weights."""
        model = call(f"{cls}({', '.join(map(str, args))})", contract(self.module, cls), *args)
        params = require_layers(model, cls)
        drawn = inputs.weights(seed)
        with self.trace.paused(), torch.no_grad():
            for role, param in params.items():
                param.copy_(drawn[role])
        return model, params

    def device(self, tensor):
        return str(tensor.device)  # plain types only (loader.exact): the runtime answers

    def watched(self, tensor, label, device="cpu"):
        with self.trace.paused():
            tensor = tensor.clone().to(device)
        self.trace.watch(tensor, label)
        return tensor


def run(name, source, path, mode):
    """(facts, blobs) of probe `name` on the submission `source`; StudentError when it fails whole."""
    trace = Trace(sources=[path])
    with virtual_gpus(2, trace) if mode == "virtual" else real_gpus(trace):
        snapshot = Snapshot()  # taken with the runtime's own patches in place
        try:
            probe = Probe(load(source, path), trace, mode)
            facts = PROBES[name](probe)
        except Exception:
            snapshot.check()  # tampering explains any failure, the grader's own included, best
            raise
        snapshot.check()
        return facts, probe.blobs


def construct(probe):
    model = call("SimpleMPModel()", contract(probe.module, "SimpleMPModel"))
    facts = {}
    for role, (name, param) in locate(model).items():
        plain = type(param) is torch.nn.Parameter
        facts[role] = {"name": name, "device": probe.device(param) if plain else None,
                       "type": None if plain else type(param).__name__}
    return facts


def _attempt(probe, what, func, *args, **kwargs):
    """{"events", "error"} of one call, and its result (None when it raised): what was observed
    before a failure still counts."""
    mark = len(probe.trace.events)
    printed = Printed(probe.trace)
    try:
        with contextlib.redirect_stdout(printed):
            result = call(what, func, *args, **kwargs)
        error = None
    except StudentError as failure:
        result, error = None, str(failure)
    return {"events": probe.events(mark), "error": error, "printed": printed.getvalue()}, result


def forward(probe):
    model, _ = probe.model(SEEDS["forward"])
    x, _ = inputs.batch(SEEDS["forward"], BATCH)
    facts = {"retry": None, "output": None}
    facts["cpu"], out = _attempt(probe, "model(x) with x on the CPU", model, probe.watched(x, "x"))
    if facts["cpu"]["error"]:  # retried with x already on cuda:0: the other checks still count
        facts["retry"], out = _attempt(probe, "model(x) with x on cuda:0", model, probe.watched(x, "x", CUDA0))
    if out is not None:
        if type(out) is not torch.Tensor:
            facts["output"] = {"type": type(out).__name__, "device": None, "shape": None}
        else:
            facts["output"] = {"type": None, "device": probe.device(out), "shape": probe.blob("output", out)}
    verbose_x = probe.watched(x, "x", CUDA0 if facts["retry"] else "cpu")
    facts["verbose"], _ = _attempt(probe, "model(x, verbose=True)", model, verbose_x, verbose=True)
    return facts


def train(probe):
    """train(model, x, y, steps, lr) on the grader's weights and batch. The contract hands it CPU
    tensors; when that fails, the batch is retried already on the GPUs, so that a forgotten move
    costs only the check that names it."""
    function = contract(probe.module, "train")
    x, y = inputs.batch(SEEDS["train"], BATCH)
    errors = {}
    for x_at, y_at in (("cpu", "cpu"), ("cuda:0", "cpu"), ("cpu", "cuda:1"), ("cuda:0", "cuda:1")):
        model, params = probe.model(SEEDS["train"])
        what = "train(model, x, y)" + ("" if x_at == y_at == "cpu" else f" with x on {x_at}, y on {y_at}")
        attempt, losses = _attempt(probe, what, function, model, probe.watched(x, "x", x_at),
                                   probe.watched(y, "y", y_at), steps=STEPS, lr=LR)
        if attempt["error"] is None:
            break
        errors[x_at, y_at] = attempt["error"]
    else:
        raise StudentError(errors["cpu", "cpu"])
    facts = {"events": attempt["events"], "cpu_target_error": errors.get((x_at, "cpu")),
             "losses": _losses(probe, losses),
             "grads": {role: None if p.grad is None else probe.device(p.grad) for role, p in params.items()},
             "params": {role: probe.device(p) for role, p in params.items()}}
    for role, param in params.items():
        probe.blob(role, param)
    return facts


def _losses(probe, values):
    """{"values": floats (str for non-finite ones), "problem": what is wrong or None, "tensors":
    whether they came as tensors, "computed": whether every tensor came out of autograd}."""
    if not isinstance(values, (list, tuple)):
        return {"values": None, "problem": f"a {type(values).__name__}, not a list", "tensors": False}
    out, tensors, computed = [], False, True
    with probe.trace.paused():
        for v in values:
            if type(v) is torch.Tensor and v.numel() == 1:
                tensors, computed = True, computed and v.grad_fn is not None
                v = v.detach().item()
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                return {"values": None, "problem": f"a list holding {type(v).__name__}", "tensors": False}
            out.append(float(v) if math.isfinite(v) else str(v))
    problem = "tensors, not floats (use loss.item())" if tensors else None
    return {"values": out, "problem": problem, "tensors": tensors, "computed": computed}


def time_forward(probe):
    function = contract(probe.module, "time_forward")
    model, params = probe.model(SEEDS["time_forward"])
    x, _ = inputs.batch(SEEDS["time_forward"], BATCH)
    with probe.trace.paused(), contextlib.redirect_stdout(io.StringIO()):  # a warm-up, as careful timers do
        try:
            call("model(x)", model, x)
        except StudentError:  # a forward that cannot take a CPU batch is part 1's finding, not this one's
            x = x.to(CUDA0)
            call("model(x)", model, x)
    mark = len(probe.trace.events)
    with contextlib.redirect_stdout(io.StringIO()):
        value = call("time_forward(model, x)", function, model, x)
    facts = {"value": _number(value), "events": probe.events(mark)}
    if probe.mode == "real":
        facts["large_batch"] = _large_batch(probe, model, params, function)
    return facts


def _number(value):
    """A float, or None when `value` is not a number."""
    if type(value) is torch.Tensor and value.numel() == 1:
        value = value.detach().item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _reference_forward(params, x):
    """The two layers written out with the grader's own functional math."""
    h = F.relu(F.linear(x.to(params["w1"].device), params["w1"], params["b1"]))
    return F.relu(F.linear(h.to(params["w2"].device), params["w2"], params["b2"]))


def _synchronize_both():
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)


def reference_seconds(params, x, wait=True):
    """The host-clock seconds of the grader's own forward of `params` (on real GPUs), measured as a
    correct time_forward does (`wait`: until every GPU holding them is done) or as one that forgets
    to synchronize. The selftest compares the two."""
    devices = {p.device for p in params.values()}
    with torch.no_grad():
        for device in devices:
            torch.cuda.synchronize(device)
        start = host_clock()
        _reference_forward(params, x)
        for device in devices if wait else ():
            torch.cuda.synchronize(device)
        return host_clock() - start


def _large_batch(probe, model, params, function):
    """The student's timing and the grader's own, of the same weights, at a batch where
    synchronizing matters (real GPUs). The batch is on cuda:0 already, so that the time is the
    GPUs' work, not a copy from host memory that blocks either way."""
    with probe.trace.paused():
        x = torch.randn(LARGE_BATCH, 1000).to(CUDA0)
    with contextlib.redirect_stdout(io.StringIO()):
        value = _number(call("time_forward(model, x) at a large batch", function, model, x))
    with probe.trace.paused():
        reference = reference_seconds(params, x)
    return {"value": value, "reference": reference}


def profile(probe):
    """profile_stages at two batches, beside the grader's own staged timing of the same layers."""
    function = contract(probe.module, "profile_stages")
    model, params = probe.model(SEEDS["profile"])
    runs = []
    for batch in PROFILE_BATCHES:
        x, _ = inputs.batch(SEEDS["profile"], batch)
        mark = len(probe.trace.events)
        with contextlib.redirect_stdout(io.StringIO()):
            figures = call(f"profile_stages(model, x) for a batch of {batch}", function, model, x)
        events = probe.events(mark)
        with probe.trace.paused():
            own = _own_idle_fraction(params, x)
        runs.append({"batch": batch, "figures": _profile_figures(figures), "events": events, "own_idle": own})
    nbytes = {role: p.numel() * p.element_size() for role, p in params.items()}
    return {"runs": runs, "param_bytes": {"cuda:0": nbytes["w1"] + nbytes["b1"], "cuda:1": nbytes["w2"] + nbytes["b2"]}}


def _profile_figures(figures):
    if type(figures) is not dict:
        return {"problem": f"a {type(figures).__name__}, not a dict"}
    out = {}
    for key in PROFILE_KEYS:
        value = _number(figures.get(key))
        if value is None or not math.isfinite(value):
            return {"problem": f"{key}={figures.get(key)!r}, not a finite number"}
        out[key] = value
    memory = figures.get("memory_bytes")
    if type(memory) is not dict or not all(type(memory.get(d)) is int for d in ("cuda:0", "cuda:1")):
        return {"problem": f"memory_bytes={memory!r}, not {{'cuda:0': int, 'cuda:1': int}}"}
    out["memory_bytes"] = {d: memory[d] for d in ("cuda:0", "cuda:1")}
    return out


def _own_idle_fraction(params, x):
    """The grader's own measurement: the same stages, computed from the located parameters."""
    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    x = x.to(params["w1"].device)
    _synchronize_both()
    start = time.perf_counter()  # the runtime's clock: virtual time on virtual GPUs, as the student's
    with torch.cuda.device(0):
        events[0].record()
        h = F.relu(F.linear(x, params["w1"], params["b1"]))
        events[1].record()
    h = h.to(params["w2"].device)
    with torch.cuda.device(1):
        events[2].record()
        F.relu(F.linear(h, params["w2"], params["b2"]))
        events[3].record()
    _synchronize_both()
    wall_ms = (time.perf_counter() - start) * 1000
    busy = events[0].elapsed_time(events[1]) + events[2].elapsed_time(events[3])
    return 1 - busy / (2 * wall_ms)


def _pipeline_batch(probe):
    """The grader's batch for Part 6, already on the GPUs: whether forward moves a CPU batch is
    part 1's finding."""
    x, y = inputs.batch(SEEDS["pipeline"], PIPELINE_BATCH)
    with probe.trace.paused():
        return x.to(CUDA0), y.to(CUDA1)


def pipeline(probe):
    """PipelinedMPModel: its output and gradients on the grader's weights (as blobs), then traced
    training steps of it and of the grader's own unsplit model (the baseline). The step is the
    grader's own (_sgd_step). {"attempted": False} when the bonus is not started."""
    x, y = _pipeline_batch(probe)
    try:
        pipelined, params = probe.model(SEEDS["pipeline"], SPLIT, cls="PipelinedMPModel")
        with probe.trace.paused(), contextlib.redirect_stdout(io.StringIO()):
            out = call(f"PipelinedMPModel({SPLIT})(x)", pipelined, x)
    except StudentError as error:
        if error.unfinished:
            return {"attempted": False, "reason": str(error)}
        raise
    with probe.trace.paused():
        exact(out, torch.Tensor, f"PipelinedMPModel({SPLIT})(x)'s output")
        facts = {"attempted": True, "shape": probe.blob("output", out)}
        if facts["shape"] == [PIPELINE_BATCH, 1000]:
            out.square().mean().backward()
            for role, param in params.items():
                if param.grad is not None:
                    probe.blob(f"grad_{role}", param.grad)
                param.grad = None
    facts["pipelined"] = _training_step(probe, "PipelinedMPModel", pipelined, pipelined.parameters(), x, y)
    reference = _reference_model(SEEDS["pipeline"])
    facts["reference"] = _training_step(probe, "the grader's unsplit model",
                                        lambda batch: _reference_forward(reference, batch), reference.values(), x, y)
    return facts


def timeline(probe):
    """What python -m grader.timeline draws: a training step of SimpleMPModel and one of
    PipelinedMPModel, each {"error", "unfinished"} instead when it cannot run."""
    x, y = _pipeline_batch(probe)
    facts = {}
    for key, cls, args in (("simple", "SimpleMPModel", ()), ("pipelined", "PipelinedMPModel", (SPLIT,))):
        try:
            model = probe.model(SEEDS["pipeline"], *args, cls=cls)[0]
            facts[key] = _training_step(probe, cls, model, model.parameters(), x, y)
        except StudentError as error:
            facts[key] = {"error": str(error), "unfinished": error.unfinished}
    return facts


def _reference_model(seed):
    drawn = inputs.weights(seed)
    return {role: value.to(CUDA0 if role in ("w1", "b1") else CUDA1).requires_grad_()
            for role, value in drawn.items()}


def _sgd_step(forward, params, x, y):
    """One step of MSE loss and plain SGD at LR, written out: no torch.optim, which would import
    torch._dynamo (a second or more) into a process that may not have it."""
    out = forward(x)
    loss = ((out - y.to(out.device)) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= LR * p.grad
                p.grad = None
    return loss.item()


def _training_step(probe, name, model, params, x, y):
    """The trace of one training step (virtual GPUs: its cost comes from FLOPs, so no warm-up), or
    what torch.profiler saw of it after a warm-up (real GPUs)."""
    params, what = list(params), f"a training step of {name}"
    if probe.mode == "real":
        with probe.trace.paused(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            call(what, model, x)  # a warm-up: first kernel launches are slow
        mark = len(probe.trace.events)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
            with contextlib.redirect_stdout(io.StringIO()):
                call(what, _sgd_step, model, params, x, y)
            _synchronize_both()
        return {"events": probe.events(mark), "intervals": profiled_intervals(profiler)}
    mark = len(probe.trace.events)
    with contextlib.redirect_stdout(io.StringIO()):
        call(what, _sgd_step, model, params, x, y)
    return {"events": probe.events(mark)}


def profiled_intervals(profiler):
    """What torch.profiler saw on the GPUs, as plain data: each kernel or copy, per device."""
    intervals = []
    for event in profiler.events():
        if event.device_type.name == "CUDA" and event.device_index in (0, 1):
            phase = "transfer" if "memcpy" in event.name.lower() else f"stage {event.device_index}"
            intervals.append({"gpu": event.device_index, "start": event.time_range.start / 1e6,
                              "end": event.time_range.end / 1e6, "phase": phase, "name": event.name})
    return intervals


PROBES = {"construct": construct, "forward": forward, "train": train, "time_forward": time_forward,
          "profile": profile, "pipeline": pipeline, "timeline": timeline}
if set(PROBES) != set(CONTRACT_PROBES):
    raise ImportError("grader.runner.probes and grader.contract.PROBES name different probes")

"""The probes: each exercises one function of the lab's contract on a model loaded with the
grader's own weights, and returns (facts, blobs): its facts type (grader.facts) and float32
tensors as bytes, for the trusted side to judge.

A probe observes; it does not judge. It never computes a reference from the submission's code:
the references are computed on the trusted side from `grader.inputs` and the returned tensors.
The probe's own steps (copying weights, reading results) are kept out of the trace.
"""
import contextlib
import gc
import io
import math
import random
import warnings

import numpy
import torch

from grader import facts as F
from grader.bounded import name_of, quote
from grader.contract import BATCH, LARGE_BATCH, LR, PIPELINE_BATCH, PROFILE_BATCHES, PROFILE_KEYS, SEEDS, SPLIT, STEPS
from grader.devices import OWN_DEVICE, OWN_GRAD, real_gpus
from grader.runner import model_state, own_math
from grader.runner.loader import StudentError, call, contract, exact, load, locate, require_layers
from grader.runner.snapshot import Snapshot
from grader.trace import EVENT_CAP, Printed, Trace
from grader.virtual import virtual_gpus

CUDA0, CUDA1 = own_math.CUDA0, own_math.CUDA1
LOSSES_CAP = 1000  # values train() may return: one a step
RANDOM_SEED = 0  # every probe's random state at its start: a regrade draws the same numbers
BATCHES = [(SEEDS[name], BATCH) for name in ("forward", "train", "time_forward")] + \
    [(SEEDS["profile"], size) for size in PROFILE_BATCHES] + [(SEEDS["pipeline"], PIPELINE_BATCH)]  # (seed, size)


@contextlib.contextmanager
def steady():
    """What every probe starts from, whatever ran before it: a fixed random state (torch's, each
    GPU's generator, Python's random, numpy's), so the same submission gets the same grade; and
    torch's own warnings (float() of a tensor that requires grad, say) kept out of what the
    submission printed: torch raised them, from the grader's files."""
    torch.manual_seed(RANDOM_SEED)  # the CPU's and every GPU's generator (virtual GPUs: grader/virtual/rng.py)
    random.seed(RANDOM_SEED)
    numpy.random.seed(RANDOM_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def quiet():
    """Output of student code the probe does not read: kept out of the submission's output."""
    return contextlib.redirect_stdout(io.StringIO())


class Probe:
    """One probe's run: the submission loaded under real or virtual GPUs, its trace, its blobs."""

    def __init__(self, module, trace, mode):
        self.module, self.trace, self.mode = module, trace, mode
        self.blobs = {}
        self.built = {}  # {class name: (model, its located layers, its model_state)} for the next probe (GOES_ON)

    def events(self, mark):
        return self.trace.events[mark:]

    def blob(self, name, tensor):
        """Keep `tensor` (any device) as float32 bytes for the trusted side: copied, once, into a
        host tensor only the probe holds (no later code of the submission can reach it), whose
        memory (a numpy view) is written out as it is."""
        with self.trace.paused():
            host = torch.empty(tensor.shape, dtype=torch.float32, device="cpu")  # whatever default device was set
            host.copy_(tensor.detach())
            self.blobs[name] = host.numpy()
        return list(host.shape)

    def build(self, cls, *args):
        """(model, its located layers): the one the probe before in this run kept (GOES_ON), where
        its calls changed nothing of it (grader.runner.model_state), else a fresh one of the
        submission's class `cls`."""
        kept = self.built.pop(cls, None) if not args else None
        if kept is not None and kept[2] is not None:
            with self.trace.paused():
                if kept[2].same(model_state.of_model(kept[0])):
                    return kept[:2]
        made = f"{cls}({', '.join(map(str, args))})"
        model = call(made, contract(self.module, cls), *args)
        return model, call(f"{made}.named_parameters()", locate, model)  # (a method the submission may define)

    def keep(self, cls, model, found):
        """Keep `model` for the next probe of this run to go on with, as it is now."""
        with self.trace.paused():
            self.built[cls] = model, found, model_state.of_model(model)

    def model(self, seed, *args, cls="SimpleMPModel", kept=False):
        """A model of the submission's class (`build`), its layers loaded with the grader's weights;
        with `kept`, kept for the next probe."""
        model, found = self.build(cls, *args)
        params = require_layers(found, cls)
        drawn = own_math.weights(seed)
        with self.trace.paused(), torch.no_grad():
            for role, param in params.items():
                param.copy_(drawn[role])
        for role, param in params.items():  # the checks follow each layer's work by its weights
            self.trace.watch(param, role)
        if kept:
            self.keep(cls, model, found)
        return model, params

    def device(self, tensor):
        return str(OWN_DEVICE(tensor))  # plain types only (loader.exact): the runtime answers

    def watched(self, tensor, label, device="cpu"):
        with self.trace.paused():
            tensor = tensor.clone().to(device)
        self.trace.watch(tensor, label)
        return tensor

    def attempt(self, what, func, *args, **kwargs):
        """(the Attempt of one call, its result or None when it raised): what was observed before
        a failure still counts."""
        mark = len(self.trace.events)
        printed = Printed(self.trace)
        try:
            with contextlib.redirect_stdout(printed):
                result = call(what, func, *args, **kwargs)
            error = None
        except StudentError as failure:
            result, error = None, str(failure)
        return F.Attempt(self.events(mark), error, printed.getvalue()), result


def prepare():
    """What every session shares, done once in the zygote before any: the grader's weights of each
    seed, and the batches the probes draw."""
    for seed in SEEDS.values():
        own_math.weights(seed)
    for seed, size in BATCHES:
        own_math.batch(seed, size)


def shared():
    """The facts every grading shares (grader.facts.Shared), as JSON: computed in a child of the
    zygote before any session, on the runtime a probe gets, so that the zygote itself never runs it."""
    trace = Trace(sources=[])
    with virtual_gpus(2, trace), steady():
        probe = Probe(None, trace, "virtual")
        return F.Shared(_baseline(probe, *_pipeline_batch(probe))).to_json()


def chains(names):
    """`names`, probes one process runs in turn, as the runs that make them: each probe alone, but
    a probe of GOES_ON right after the one it goes on from joins its run."""
    runs = []
    for name in names:
        if runs and GOES_ON.get(name) == runs[-1][-1]:
            runs[-1].append(name)
        else:
            runs.append([name])
    return runs


def run(chain, source, path, mode, report, between):
    """Run the probes of `chain` (one of `chains`) on one load of the submission, each reporting
    `report(name, facts as JSON, blobs)` as soon as its facts are in, before the next runs, and
    then the check that `between(the loaded module)` made as the load was done, where the chain has
    more than one (it raises where the process or the load is unfit for the next); StudentError:
    the failure of the probe running (the rest go on in runs of their own)."""
    observers = [PROBES[name] for name in chain]  # bound before the submission runs: nothing it does can swap one
    trace = Trace(sources=[path])
    with virtual_gpus(2, trace) if mode == "virtual" else real_gpus(trace), steady():
        snapshot = Snapshot()  # taken with the runtime's own patches in place
        probe = Probe(None, trace, mode)
        try:
            probe.module = load(source, path)
            ready = between(probe.module) if chain[1:] else None  # (a probe alone: nothing to check)
            for name, observe in zip(chain[:-1], observers):
                facts = observe(probe)
                snapshot.check()  # what it observed, observed in an untampered runtime
                _deliver(report, name, facts, probe, trace)
                ready()
                trace.restart()  # the next probe's events, and the tensors it watches, its own
            facts = observers[-1](probe)
        finally:
            probe.built.clear()  # a model no probe went on with is freed, as a probe alone frees its own
            _finalized()
            snapshot.check()  # tampering explains any failure, the grader's own included, best
        _deliver(report, chain[-1], facts, probe, trace)


def _deliver(report, name, facts, probe, trace):
    if trace.overflow:
        raise StudentError(f"your code made {EVENT_CAP + trace.overflow:,} GPU calls, copies, waits, clock "
                           f"reads and prints in {F.DESCRIPTIONS[name]}'s probe; the grader records at most "
                           f"{EVENT_CAP:,}: far more than the lab needs (a loop left running?)")
    report(name, facts.to_json(), probe.blobs)
    probe.blobs = {}


def _finalized():
    """Run now what the submission left to run when its objects are freed (a generator's `finally`
    in a reference cycle: the rules refuse `__del__`, not that), before the tamper check, and
    collect nothing after it: none of the submission's code runs once the check has passed."""
    gc.collect()
    gc.disable()


def construct(probe):
    """Where SimpleMPModel() puts each layer; the model is kept for forward to go on with."""
    model, found = probe.build("SimpleMPModel")
    probe.keep("SimpleMPModel", model, found)
    layers = {}
    for role, (name, param) in found.items():
        plain = type(param) is torch.nn.Parameter
        layers[role] = F.Placement(name if type(name) is str else f"(a {name_of(name)})",
                                   probe.device(param) if plain else None, None if plain else name_of(param))
    return F.Construct(layers)


def forward(probe):
    model, _ = probe.model(SEEDS["forward"], kept=True)
    x, _ = own_math.batch(SEEDS["forward"], BATCH)
    retry, output = None, None
    cpu, out = probe.attempt("model(x) with x on the CPU", model, probe.watched(x, "x"))
    if cpu.error:  # retried with x already on cuda:0: the other checks still count
        retry, out = probe.attempt("model(x) with x on cuda:0", model, probe.watched(x, "x", CUDA0))
    if out is not None:
        if type(out) is not torch.Tensor:
            output = F.Output(name_of(out), None, None)
        elif out.layout != torch.strided:  # a sparse or otherwise laid-out tensor: not the lab's output
            output = F.Output(f"{name_of(out)} of layout {str(out.layout).removeprefix('torch.')}", None, None)
        else:
            output = F.Output(None, probe.device(out), probe.blob("output", out))
    verbose_x = probe.watched(x, "x", CUDA0 if retry else "cpu")
    verbose, _ = probe.attempt("model(x, verbose=True)", model, verbose_x, verbose=True)
    return F.Forward(cpu, retry, output, verbose)


def train(probe):
    """train(model, x, y, steps, lr) on the grader's weights and batch. The contract hands it CPU
    tensors; when that fails, the batch is retried already on the GPUs, so that a forgotten move
    costs only the check that names it."""
    function = contract(probe.module, "train")
    x, y = own_math.batch(SEEDS["train"], BATCH)
    errors = {}
    for x_at, y_at in (("cpu", "cpu"), ("cuda:0", "cpu"), ("cpu", "cuda:1"), ("cuda:0", "cuda:1")):
        model, params = probe.model(SEEDS["train"])
        what = "train(model, x, y)" + ("" if x_at == y_at == "cpu" else f" with x on {x_at}, y on {y_at}")
        with _gradients(probe, params) as grads:
            attempt, losses = probe.attempt(what, function, model, probe.watched(x, "x", x_at),
                                            probe.watched(y, "y", y_at), steps=STEPS, lr=LR)
        if attempt.error is None:
            break
        errors[x_at, y_at] = attempt.error
    else:
        raise StudentError(errors["cpu", "cpu"])
    facts = F.Train(attempt.events, errors.get((x_at, "cpu")), _losses(probe, losses),
                    {role: grads.get(role) for role in params}, {role: probe.device(p) for role, p in params.items()})
    for role, param in params.items():
        probe.blob(role, param)
    return facts


@contextlib.contextmanager
def _gradients(probe, params):
    """{role: the device of the first gradient backward made for it}, watched as backward makes
    them: whatever train() does with them after its step (zero_grad(set_to_none=True)) is its own."""
    made = {}

    def seen(role):
        def hook(param):
            with probe.trace.paused():
                made.setdefault(role, probe.device(OWN_GRAD(param)))
        return hook

    with probe.trace.paused():
        handles = [param.register_post_accumulate_grad_hook(seen(role)) for role, param in params.items()]
    try:
        yield made
    finally:
        for handle in handles:
            handle.remove()


def _losses(probe, values):
    """The returned losses as floats (str for non-finite ones), or what is wrong with them."""
    if not isinstance(values, (list, tuple)):
        return F.Losses(None, f"a {name_of(values)}, not a list", False)
    if len(values) > LOSSES_CAP:
        return F.Losses(None, f"a list of {len(values):,} values, not one a step", False)
    out, tensors, computed = [], False, True
    with probe.trace.paused():
        for v in values:
            if type(v) is torch.Tensor and v.numel() == 1:
                tensors, computed = True, computed and v.grad_fn is not None
                v = v.detach().item()
            if type(v) not in (int, float):
                return F.Losses(None, f"a list holding {name_of(v)}", False)
            v = _number(v)
            out.append(v if v is not None and math.isfinite(v) else str(v))
    return F.Losses(out, "tensors, not floats (use loss.item())" if tensors else None, tensors, computed)


def time_forward(probe):
    function = contract(probe.module, "time_forward")
    model, params = probe.model(SEEDS["time_forward"], kept=True)
    x, _ = own_math.batch(SEEDS["time_forward"], BATCH)
    with probe.trace.paused(), quiet():  # a warm-up, as careful timers do
        try:
            call("model(x)", model, x)
        except StudentError:  # a forward that cannot take a CPU batch is part 1's finding, not this one's
            x = x.to(CUDA0)
            call("model(x)", model, x)
    mark = len(probe.trace.events)
    with quiet():
        value = call("time_forward(model, x)", function, model, x)
    large = _large_batch(probe, model, params, function) if probe.mode == "real" else None
    return F.TimeForward(_number(value), probe.events(mark), large)


def _number(value):
    """A float, or None when `value` is not a number."""
    if type(value) is torch.Tensor and value.numel() == 1:
        value = value.detach().item()
    if type(value) in (int, float):
        try:
            return float(value)
        except OverflowError:  # an int past any float: no figure
            return None
    return None


def _large_batch(probe, model, params, function):
    """The student's timing and the grader's own, of the same weights, at a batch where
    synchronizing matters (real GPUs). The batch is on cuda:0 already, so that the time is the
    GPUs' work, not a copy from host memory that blocks either way."""
    with probe.trace.paused():
        x = torch.randn(LARGE_BATCH, 1000).to(CUDA0)
    with quiet():
        value = _number(call("time_forward(model, x) at a large batch", function, model, x))
    with probe.trace.paused():
        reference = own_math.seconds(params, x)
    return F.LargeBatch(value, reference)


def profile(probe):
    """profile_stages at two batches, beside the grader's own staged timing of the same layers."""
    function = contract(probe.module, "profile_stages")
    model, params = probe.model(SEEDS["profile"])
    runs = []
    for batch in PROFILE_BATCHES:
        x, _ = own_math.batch(SEEDS["profile"], batch)
        mark = len(probe.trace.events)
        with quiet():
            figures = call(f"profile_stages(model, x) for a batch of {batch}", function, model, x)
        events = probe.events(mark)
        with probe.trace.paused():
            own = own_math.idle_fraction(params, x)
        runs.append(F.ProfileRun(batch, *_figures(figures), events, own))
    nbytes = {role: p.numel() * p.element_size() for role, p in params.items()}
    return F.Profile(runs, {"cuda:0": nbytes["w1"] + nbytes["b1"], "cuda:1": nbytes["w2"] + nbytes["b2"]})


def _figures(figures):
    """(Figures, None), or (None, what is wrong with what profile_stages returned)."""
    if type(figures) is not dict:
        return None, f"a {name_of(figures)}, not a dict"
    numbers = {}
    for key in PROFILE_KEYS:
        value = _number(figures.get(key))
        if value is None or not math.isfinite(value):
            return None, f"{key}={quote(figures.get(key))}, not a finite number"
        numbers[key] = value
    memory = figures.get("memory_bytes")
    if type(memory) is not dict or not all(type(memory.get(d)) is int and 0 <= memory[d] < 2**63
                                           for d in ("cuda:0", "cuda:1")):
        return None, f"memory_bytes={quote(memory)}, not {{'cuda:0': int, 'cuda:1': int}}"
    return F.Figures(**numbers, memory_bytes={d: memory[d] for d in ("cuda:0", "cuda:1")}), None


def _pipeline_batch(probe):
    """The grader's batch for Part 6, already on the GPUs: whether forward moves a CPU batch is
    part 1's finding."""
    x, y = own_math.batch(SEEDS["pipeline"], PIPELINE_BATCH)
    with probe.trace.paused():
        return x.to(CUDA0), y.to(CUDA1)


def pipeline(probe):
    """PipelinedMPModel: a traced training step of it on the grader's weights, whose output and
    gradients are kept (as blobs), and on real GPUs one of the grader's own unsplit model (the
    baseline; virtual GPUs' is `shared`). The step is the grader's own (own_math.sgd_step)."""
    x, y = _pipeline_batch(probe)
    try:
        pipelined, params = probe.model(SEEDS["pipeline"], SPLIT, cls="PipelinedMPModel")
        every = list(pipelined.parameters())
        step, (out, grads) = _training_step(probe, f"PipelinedMPModel({SPLIT})", pipelined, every, x, y)
    except StudentError as error:
        if error.unfinished:
            return F.Pipeline(attempted=False, reason=str(error))
        raise
    with probe.trace.paused():
        exact(out, torch.Tensor, f"PipelinedMPModel({SPLIT})(x)'s output")
        shape = probe.blob("output", out)
        made = {id(p): grad for p, grad in zip(every, grads)}
        for role, param in params.items():
            if made.get(id(param)) is not None:
                probe.blob(f"grad_{role}", made[id(param)])
    return F.Pipeline(True, None, shape, step, _baseline(probe, x, y) if probe.mode == "real" else None)


def _baseline(probe, x, y):
    """The trace of a training step of the grader's own unsplit model, the same layers as Part 6's."""
    unsplit = own_math.unsplit_model(SEEDS["pipeline"])
    return _training_step(probe, "the grader's unsplit model", lambda batch: own_math.forward(unsplit, batch),
                          list(unsplit.values()), x, y)[0]


def timeline(probe):
    """What python -m grader.timeline draws: a training step of SimpleMPModel and one of
    PipelinedMPModel, each with why it could not run instead, when it cannot."""
    x, y = _pipeline_batch(probe)
    drawn = []
    for cls, args in (("SimpleMPModel", ()), ("PipelinedMPModel", (SPLIT,))):
        try:
            model = probe.model(SEEDS["pipeline"], *args, cls=cls)[0]
            drawn.append(F.Drawn(_training_step(probe, cls, model, list(model.parameters()), x, y)[0]))
        except StudentError as error:
            drawn.append(F.Drawn(None, str(error), error.unfinished))
    return F.Timeline(*drawn)


def _training_step(probe, name, model, params, x, y):
    """(the trace of one training step, with what torch.profiler saw of it after a warm-up on real
    GPUs; what own_math.sgd_step returned). Virtual GPUs' costs come from FLOPs: no warm-up."""
    what = f"a training step of {name}"
    mark = len(probe.trace.events)
    if probe.mode != "real":
        with quiet():
            result = call(what, own_math.sgd_step, model, params, x, y)
        return F.Step(probe.events(mark)), result
    from grader.runner.profiler import profiled

    with probe.trace.paused(), quiet(), torch.no_grad():
        call(what, model, x)  # a warm-up: first kernel launches are slow
    mark = len(probe.trace.events)

    def step():
        with quiet():
            taken = call(what, own_math.sgd_step, model, params, x, y)
        own_math.synchronize()
        return taken

    result, intervals = profiled(step)
    return F.Step(probe.events(mark), intervals), result


# {probe: the probe whose run it goes on with}: where one process runs them in turn, forward,
# time_forward and profile_stages are called on the one model construct built and observed, as the
# handout calls them, each with its own weights loaded; each probe's facts are reported, and the
# process checked as between runs (grader.runner.in_turn), before the next begins, so a probe that
# crashes or never ends costs the others nothing. A probe goes on with the model only where the one
# before changed nothing of it or of the submission's module (model_state); else it builds its own,
# as a probe alone does.
GOES_ON = {"forward": "construct", "time_forward": "forward", "profile": "time_forward"}
PROBES = {"construct": construct, "forward": forward, "train": train, "time_forward": time_forward,
          "profile": profile, "pipeline": pipeline, "timeline": timeline}
if set(PROBES) != set(F.PROBES):
    raise ImportError("grader.runner.probes and grader.facts.PROBES name different probes")

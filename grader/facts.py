"""What each probe reports, as types: built inside the sandbox, sent as JSON, rebuilt and read by
the checks. `PROBES` is the one registry of probes: what each calls (as messages name it) and the
type of its facts. Imports nothing heavy: the checks and the grader's own process read it freely.

The JSON comes from the sandbox, so `from_json` rebuilds it strictly: a field of the wrong type
or a missing one is `Malformed`, never a value a check could misread; and bounded: a list longer
than the trace may be or a string longer than TEXT_CAP is `Malformed` too, so that no check
ever works on more than it can judge.
"""
import dataclasses
import functools
import types
import typing

from grader.bounded import shorten
from grader.trace import EVENT_CAP, Event

TEXT_CAP = 64 * 1024  # characters of any string in a probe's facts (what forward printed is the longest)


class Malformed(Exception):
    """A probe's facts that do not fit their type."""


class Facts:
    """JSON in and out for a dataclass of plain values, lists, dicts and other such dataclasses."""

    def to_json(self):
        return _plain(self)

    @classmethod
    def from_json(cls, data):
        try:
            return _build(cls, data)
        except (TypeError, ValueError, KeyError, RecursionError) as error:
            raise Malformed(shorten(f"{cls.__name__}: {error}", 300)) from None


def _plain(value):
    """`value` as JSON-ready dicts and lists: dataclasses.asdict's result, without its deep copy of
    every leaf (a trace holds thousands of events, each of plain values already)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _build(kind, data):
    """`data` as `kind` (a type hint), checked all the way down."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return _union(args, data)
    if origin is typing.Literal:
        if type(data) is not str or data not in args:
            raise TypeError(f"{shorten(repr(data), 60)} is none of {args}")
        return data
    if dataclasses.is_dataclass(kind):
        return _record(kind, data)
    if origin in (list, dict):
        return _container(origin, args, data)
    if kind is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if not isinstance(data, kind) or (kind in (int, float) and isinstance(data, bool)):
        raise TypeError(f"expected {kind.__name__}, got {type(data).__name__}")
    if kind is str and len(data) > TEXT_CAP:
        raise ValueError(f"a string of {len(data):,} characters, more than the {TEXT_CAP:,} a fact may hold")
    return data


def _container(origin, args, data):
    """A list or dict of `args`, no longer than a probe's trace may be."""
    if not isinstance(data, origin):
        raise TypeError(f"expected a {origin.__name__}, got {type(data).__name__}")
    if len(data) > EVENT_CAP:
        raise ValueError(f"a {origin.__name__} of {len(data):,} items, more than the {EVENT_CAP:,} a probe records")
    if origin is dict:
        return {_build(args[0], key): _build(args[1], value) for key, value in data.items()}
    return [_build(args[0], item) for item in data]


def _union(args, data):
    """`data` as the first of `args` it fits (None fits an optional one)."""
    if data is None and type(None) in args:
        return None
    choices = [a for a in args if a is not type(None)]
    for choice in choices[:-1]:
        try:
            return _build(choice, data)
        except TypeError:
            pass
    return _build(choices[-1], data)


def _record(kind, data):
    if not isinstance(data, dict):
        raise TypeError(f"expected a mapping for {kind.__name__}, got {type(data).__name__}")
    hints = _fields(kind)
    if data.keys() - hints.keys():
        raise TypeError(f"{kind.__name__} has no field {sorted(data.keys() - hints.keys())[0]}")
    return kind(**{name: _build(hints[name], value) for name, value in data.items()})


@functools.cache
def _fields(kind):
    """{field: its type hint} of a facts dataclass: read once per class, not once per record (a
    trace holds thousands of events)."""
    hints = typing.get_type_hints(kind)
    return {field.name: hints[field.name] for field in dataclasses.fields(kind)}


# -- construct: SimpleMPModel() ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Placement:
    name: str  # the parameter's name in the student's model
    device: str | None  # where the runtime says it lives (None: not a plain Parameter)
    type: str | None  # the class of a parameter that is not a plain nn.Parameter


@dataclasses.dataclass(frozen=True)
class Construct(Facts):
    layers: dict[str, Placement]  # by role: w1, b1, w2, b2 (found by shape)


# -- forward: model(x) --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Attempt:
    """One call of student code: what it did (even when it raised), its error, what it printed."""
    events: list[Event]
    error: str | None
    printed: str


@dataclasses.dataclass(frozen=True)
class Output:
    type: str | None  # the class of an output that is not a plain tensor
    device: str | None
    shape: list[int] | None


@dataclasses.dataclass(frozen=True)
class Forward(Facts):
    cpu: Attempt  # model(x) with x on the CPU, as the contract hands it
    retry: Attempt | None  # with x already on cuda:0, when the first raised
    output: Output | None
    verbose: Attempt  # model(x, verbose=True)


# -- train: train(model, x, y, steps, lr) -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Losses:
    values: list[float | str] | None  # str for a non-finite loss; None when unreadable
    problem: str | None  # what is wrong with the returned value
    tensors: bool  # whether they came as tensors
    computed: bool = True  # whether each tensor came out of autograd


@dataclasses.dataclass(frozen=True)
class Train(Facts):
    events: list[Event]
    cpu_target_error: str | None  # what train() raised with y on the CPU, if it had to be retried
    losses: Losses
    grads: dict[str, str | None]  # role -> the device of the gradient backward made for it (None: none)
    params: dict[str, str]  # role -> the device of the parameter


# -- time_forward: time_forward(model, x) -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LargeBatch:
    value: float | None  # what time_forward returned at LARGE_BATCH
    reference: float  # the grader's own synchronized timing of the same layers


@dataclasses.dataclass(frozen=True)
class TimeForward(Facts):
    value: float | None  # None when time_forward returned no number
    events: list[Event]
    large_batch: LargeBatch | None = None  # real GPUs only


# -- profile: profile_stages(model, x) ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Figures:
    stage0_ms: float
    transfer_ms: float
    stage1_ms: float
    wall_ms: float
    idle_fraction: float
    memory_bytes: dict[str, int]


@dataclasses.dataclass(frozen=True)
class ProfileRun:
    batch: int
    figures: Figures | None  # None when what came back is not the contract's dict
    problem: str | None  # then: what is wrong with it
    events: list[Event]
    own_idle: float  # the grader's own measurement of the same stages


@dataclasses.dataclass(frozen=True)
class Profile(Facts):
    runs: list[ProfileRun]  # one per PROFILE_BATCHES
    param_bytes: dict[str, int]  # per GPU: the bytes of the layer it must hold


# -- pipeline and timeline: a training step, per GPU --------------------------------------------
@dataclasses.dataclass(frozen=True)
class Interval:
    """A stretch of time a GPU was busy: kernels torch.profiler saw, or modelled ones."""
    gpu: int
    start: float  # seconds
    end: float
    phase: str  # a key of grader.timeline.PHASES
    name: str


@dataclasses.dataclass(frozen=True)
class Step:
    events: list[Event]
    intervals: list[Interval] | None = None  # real GPUs: what torch.profiler saw


@dataclasses.dataclass(frozen=True)
class Pipeline(Facts):
    attempted: bool  # False: the bonus is not started (NotImplementedError, or no such class)
    reason: str | None = None  # why it counts as not attempted
    shape: list[int] | None = None  # of PipelinedMPModel's output
    pipelined: Step | None = None
    reference: Step | None = None  # the grader's own unsplit model, the baseline (real GPUs; see Shared)


@dataclasses.dataclass(frozen=True)
class Shared(Facts):
    """What the sandbox computes once, before any submission, for every grading to share
    (grader.runner.probes.shared): on virtual GPUs, whose timelines are modelled from the ops alone,
    the grader's own unsplit model's training step is the same for every submission, so Part 6's
    baseline is taken there (real GPUs measure it in the pipeline probe, beside the submission's)."""
    baseline: Step


@dataclasses.dataclass(frozen=True)
class Drawn:
    """A model's training step for the timeline, or why it could not run."""
    step: Step | None
    error: str | None = None
    unfinished: bool = False  # the error is code not written yet


@dataclasses.dataclass(frozen=True)
class Timeline(Facts):
    simple: Drawn
    pipelined: Drawn


# -- the registry -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Probe:
    description: str  # what it calls, as the student's messages name it
    facts: type
    tool_only: bool = False  # run by tools (python -m grader.timeline), never by a grading run


PROBES = {
    "construct": Probe("SimpleMPModel()", Construct),
    "forward": Probe("SimpleMPModel.forward", Forward),
    "train": Probe("train()", Train),
    "time_forward": Probe("time_forward()", TimeForward),
    "profile": Probe("profile_stages()", Profile),
    "pipeline": Probe("PipelinedMPModel", Pipeline),
    "timeline": Probe("PipelinedMPModel and SimpleMPModel", Timeline, tool_only=True),
}
GRADING = [name for name, probe in PROBES.items() if not probe.tool_only]  # what every grading run probes
DESCRIPTIONS = {name: probe.description for name, probe in PROBES.items()}

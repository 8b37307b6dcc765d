"""What a submission did on the GPUs, in order, recorded the same way on real and virtual devices.

The grader's checks read only this trace (and plain values), so they never need to know which
mode produced it. Events are plain data: a child process sends them to the grader as JSON.
"""
import contextlib
import dataclasses
import functools
import sys
import time
import typing
import weakref

CLOCKS = ("time", "perf_counter", "monotonic", "time_ns", "perf_counter_ns", "monotonic_ns")
# op: computed on a device; transfer: a copy between devices; sync: the host waited for a GPU (a
# synchronize, or reading a GPU value); value: a CPU scalar read into Python; clock: a clock read;
# cuda_event: an event recorded or timed; print: text written to stdout.
Kind = typing.Literal["op", "transfer", "sync", "value", "clock", "cuda_event", "print"]
KINDS = frozenset(typing.get_args(Kind))
TEXT_CAP = 4096  # characters of one print kept in the trace
EVENT_CAP = 20_000  # events one probe records: far past the lab's needs; past it, the probe fails


@dataclasses.dataclass(frozen=True)
class Event:
    kind: Kind
    name: str  # the op, the clock function, or the call that synchronized, read or recorded
    device: str | None = None  # op: where it ran; transfer: destination; sync, cuda_event: the GPU
    source: str | None = None  # transfer: where the data came from
    nbytes: int = 0  # transfer: bytes moved
    value: float | None = None  # clock: the reading; sync or value: the scalar read; elapsed_time: ms
    flops: int | None = None  # op: its floating-point operations under grader.costs
    line: int | None = None  # the submission's line that caused it, when known
    ids: list[int | None] | None = None  # cuda_event: [its number]; elapsed_time: [start, end]; event.synchronize: [n]
    reads: list[str] | None = None  # op, transfer: the watched inputs (the grader's batch) it consumed
    text: str | None = None  # print: what was written to stdout

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    @property
    def seconds(self):
        """A clock reading in seconds, whichever clock function produced it."""
        return self.value / 1e9 if self.name.endswith("_ns") else self.value


class Trace:
    def __init__(self, sources=()):
        self.events = []
        self.sources = {str(s) for s in sources}  # files whose line numbers events report
        self._paused = 0
        self.overflow = 0  # events past EVENT_CAP, not recorded
        self._watched = weakref.WeakKeyDictionary()  # storage -> label ("x", "y"): the grader's batch

    def watch(self, tensor, label):
        """Mark `tensor`'s storage, so that every op or copy reading it says so (`Event.reads`)."""
        self._watched[tensor.untyped_storage()] = label

    def labels(self, tensors):
        """The watched labels among `tensors`, or None."""
        if not self._watched:
            return None
        found = []
        for tensor in tensors:
            try:
                label = self._watched.get(tensor.untyped_storage())
            except (RuntimeError, NotImplementedError, TypeError):
                continue
            if label is not None and label not in found:
                found.append(label)
        return found or None

    def add(self, kind, name, **fields):
        if self._paused:
            return
        if len(self.events) >= EVENT_CAP:
            self.overflow += 1
            return
        self.events.append(Event(kind, name, line=self._submission_line(), **fields))

    def of(self, kind):
        return [e for e in self.events if e.kind == kind]

    @contextlib.contextmanager
    def paused(self):
        """Work the runtime does for itself (printing a tensor, say) is not the submission's."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def record_clocks(self, patcher, clock=None):
        """Record every clock read through `time.X` (the patcher rebinds names a module imported).
        `clock(real, name)`, if given, makes the function whose readings replace `real`'s."""
        for name in CLOCKS:
            real = getattr(time, name)
            patcher.setattr(time, name, self._clock(name, real, real if clock is None else clock(real, name)))

    def _clock(self, name, real, source):
        @functools.wraps(real)
        def read():
            value = source()
            self.add("clock", name, value=value)
            return value

        return read

    def _submission_line(self):
        if not self.sources:
            return None
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename in self.sources:
                return frame.f_lineno
            frame = frame.f_back
        return None

    @classmethod
    def holding(cls, events):
        """A trace holding `events` (recorded elsewhere), to query."""
        trace = cls()
        trace.events = list(events)
        return trace


class Printed:
    """stdout while a probe watches the submission print: each write becomes a `print` event, in
    order with the GPU work around it, and the text is kept (up to `cap` characters)."""

    def __init__(self, trace, cap=64 * 1024):
        self.trace, self.cap, self.parts, self.size = trace, cap, [], 0

    def write(self, text):
        text = str(text)
        if self.size < self.cap:  # past the cap, nothing more is kept, in the text or the trace
            self.parts.append(text[:self.cap - self.size])
            self.size += len(self.parts[-1])
            self.trace.add("print", "stdout", text=text[:TEXT_CAP])
        return len(text)

    def flush(self):
        pass

    def getvalue(self):
        return "".join(self.parts)

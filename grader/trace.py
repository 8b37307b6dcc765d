"""What a submission did on the GPUs, in order, recorded the same way on real and virtual devices.

The grader's checks read only this trace (and plain values), so they never need to know which
mode produced it. Events are plain data: a child process sends them to the grader as JSON.
"""
import contextlib
import dataclasses
import functools
import itertools
import sys
import time
import typing
import weakref

CLOCKS = ("time", "perf_counter", "monotonic", "time_ns", "perf_counter_ns", "monotonic_ns")
# op: computed on a device; transfer: a copy between devices; sync: the host waited for a GPU (a
# synchronize, or reading a GPU value); value: a CPU scalar read into Python; clock: a clock read;
# cuda_event: an event recorded or timed; print: text written to stdout; memory: a GPU's allocated
# bytes (value) as torch.cuda.memory_allocated or max_memory_allocated answered.
Kind = typing.Literal["op", "transfer", "sync", "value", "clock", "cuda_event", "print", "memory"]
KINDS = frozenset(typing.get_args(Kind))
TEXT_CAP = 4096  # characters of one print kept in the trace
EVENT_CAP = 20_000  # events one probe records: far past the lab's needs; past it, the probe fails
VALUES_CAP = 64  # elements of a tensor read at once (`.tolist()`) whose values are kept


@dataclasses.dataclass(frozen=True)
class Event:
    kind: Kind
    name: str  # the op, the clock function, or the call that synchronized, read or recorded
    device: str | None = None  # op: where it ran; transfer: destination; sync, cuda_event: the GPU
    source: str | None = None  # transfer: where the data came from
    nbytes: int = 0  # transfer: bytes moved
    value: int | float | None = None  # clock: the reading (an _ns clock's stays an int, exact); sync or value:
    # the scalar read; elapsed_time: ms; record (virtual GPUs): the event's time on its GPU's clock, in seconds
    values: list[float] | None = None  # sync or value: the elements of a small tensor read at once (.tolist())
    flops: int | None = None  # op: its floating-point operations under grader.costs
    line: int | None = None  # the submission's line that caused it, when known
    ids: list[int | None] | None = None  # cuda_event: [its number]; elapsed_time: [start, end]; event.synchronize: [n]
    reads: list[str] | None = None  # op, transfer: the watched inputs (the grader's batch) it consumed
    text: str | None = None  # print: what was written to stdout
    stream: int | None = None  # the stream on `device` it was queued on or waited for (0: the default one)
    source_stream: int | None = None  # transfer between GPUs, wait_stream: the stream on `source`
    args: list[int] | None = None  # op, transfer, sync, value: the storages it read (numbered by the trace)
    out: list[int] | None = None  # op, transfer: the storages it wrote

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    def waits_for(self):
        """What a `sync` waited for, the one definition both runtimes record and the checks read:
        ("event", its number) for an event's synchronize; ("stream", (GPU, stream)) for a stream's
        synchronize or a host read on that stream; ("gpu", GPU) for a device synchronize, which
        waits for every stream of the GPU."""
        if self.ids:
            return "event", self.ids[0]
        if self.stream is not None:
            return "stream", (self.device, self.stream)
        return "gpu", self.device


def seconds_between(start, end):
    """Seconds from one clock reading to another, subtracted before scaling, so that the integers
    of the _ns clocks stay exact (1.8e18 ns as a float has 256 ns steps)."""
    difference = end.value - start.value
    return difference / 1e9 if end.name.endswith("_ns") else difference


class Trace:
    def __init__(self, sources=()):
        self.events = []
        self.sources = {str(s) for s in sources}  # files whose line numbers events report
        self._paused = 0
        self.overflow = 0  # events past EVENT_CAP, not recorded
        self._watched = weakref.WeakKeyDictionary()  # storage -> label ("x", "y", "w1"...): the grader's tensors
        self._numbers = weakref.WeakKeyDictionary()  # storage -> its number in events' args and out
        self._counter = itertools.count(1)

    def restart(self):
        """The next probe of a run starts with no events and no watched tensors."""
        self.events.clear()
        self.overflow = 0
        self._watched.clear()

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

    def flow(self, inputs, outputs=()):
        """The fields that let the checks follow data from op to op: the watched labels among
        `inputs` (`reads`), and the numbers of the storages read (`args`) and written (`out`). Kept
        only while the trace watches the grader's tensors (a probe's), so the runtime alone pays
        nothing for them."""
        if not self._watched:
            return {}
        return {"reads": self.labels(inputs), "args": self._storages(inputs), "out": self._storages(outputs)}

    def _storages(self, tensors):
        numbers = []
        for tensor in tensors:
            try:
                storage = tensor.untyped_storage()
            except (RuntimeError, NotImplementedError, TypeError):
                continue
            number = self._numbers.get(storage)
            if number is None:
                number = self._numbers[storage] = next(self._counter)
            numbers.append(number)
        return numbers or None

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

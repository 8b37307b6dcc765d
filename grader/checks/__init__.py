"""The checks: pytest tests that judge a probe's facts. Each awards exactly one rubric item and,
when it fails, says what was expected, what the submission did, and where to look."""
import bisect
import math

import pytest

from grader.checks.flow import Flow, Order, queue_of
from grader.trace import Trace, seconds_between


class NotAttempted(pytest.skip.Exception):
    """A bonus the submission has not started: neither passed nor failed, and no points."""


class PartialCredit(pytest.fail.Exception):
    """A failed check that earned `fraction` of its item (points only where the rubric allows)."""

    def __init__(self, message, fraction):
        super().__init__(message, pytrace=False)
        self.fraction = fraction


def rubric(item_id):
    return pytest.mark.rubric(item_id)


def fail(message):
    pytest.fail(message, pytrace=False)


def not_attempted(message):
    raise NotAttempted(message)


def partial(earned, total, message):
    """Pass when all `total` parts are earned; otherwise fail with `message`, crediting earned/total."""
    if earned < total:
        raise PartialCredit(message, earned / total if total else 0.0)


def expect(condition, message):
    if not condition:
        fail(message)


def _count(indices, start, end):
    """How many of the sorted `indices` lie strictly between `start` and `end`."""
    return bisect.bisect_left(indices, end) - bisect.bisect_right(indices, start)


def trace(events):
    """A Trace of a probe's events (grader.trace.Event), to query."""
    return Trace.holding(events)


def at_line(event):
    return f" (line {event.line})" if event.line else ""


def gpu_ops(events, device=None):
    return [i for i, e in enumerate(events) if e.kind == "op" and e.device and e.device.startswith("cuda")
            and (device is None or e.device == device)]


class Timing:
    """One call of a timing function, in the order things happened: its timed pass, the host's
    waits that cover it, its clock readings and its CUDA events.

    The timed pass is the GPU work after the last clock reading before its last op (a warm-up
    comes before that reading, and is not timed). A wait covers the pass on a GPU when every op of
    the pass there is ordered before it, as CUDA orders streams (grader.checks.flow.Order): a
    synchronize of that GPU, of a stream or an event the work is ordered before, or a host read of
    data on such a stream. A fresh stream's synchronize, or an event recorded before the pass or
    on a stream that never waited for it, covers nothing.
    """

    def __init__(self, events, what):
        self.events = trace(events).events
        ops = gpu_ops(self.events)
        if not ops:
            fail(f"{what} ran no forward pass on the GPUs: call the model between the two clock readings")
        readings = [i for i, e in enumerate(self.events) if self.is_reading(e)]
        begin = max([i for i in readings if i < ops[-1] and self.events[i].kind == "clock"], default=-1)
        self.ops = [i for i in ops if i > begin]
        self.first_op, self.last_op = self.ops[0], self.ops[-1]
        self.order, self.flow = Order(self.events), Flow(self.events)
        self._gpu_ops, self._uses = ops, {label: self.flow.uses(label) for label in ("w1", "w2")}
        self._layer1, self._layer2 = self._uses["w1"], self._uses["w2"]
        self._last = {}  # GPU -> {queue: the pass's last op there}: ops on one queue run in order
        for i in self.ops:
            self._last.setdefault(self.events[i].device, {})[queue_of(self.events[i])] = i
        self.waits = [(i, device) for i, clock in self.order.waits if i > self.last_op
                      for device in self._covered(i, clock)]
        self._first_wait = {}  # GPU -> the first wait that covers the pass there
        for i, device in self.waits:
            self._first_wait.setdefault(device, i)
        # A start reading comes after the GPU work before the pass (a warm-up's), so that all of them
        # count the same passes to any end reading.
        before = max([i for i in ops if i < self.first_op], default=-1)
        self.starts = [i for i in readings if before < i < self.first_op and self.events[i].kind == "clock"]
        self.ends = [i for i in readings if i > self.last_op]

    def _covered(self, index, clock):
        """The GPUs whose work in the pass the wait at `index` covers; its own GPU too, where the
        pass did nothing (a misplaced layer is Part 1's finding, not the wait's)."""
        e = self.events[index]
        covered = {d for d, last in self._last.items() if all(clock.get(q, -1) >= i for q, i in last.items())}
        return sorted(covered | ({e.source if e.kind == "transfer" else e.device} - set(self._last)))

    @staticmethod
    def is_reading(event):
        """A clock read by the submission, or the host reading two CUDA events' interval."""
        return (event.kind == "clock" and event.line is not None) or event.name == "elapsed_time"

    def end(self):
        if not self.ends:
            fail("no clock was read after the forward pass: read the end time after synchronizing")
        return self.ends[0]

    def waited_before(self, index, device=None):
        """The GPUs (`device` alone, if given) whose pass a wait before `index` covers."""
        return [d for d, i in self._first_wait.items() if i < index and (device is None or d == device)]

    def passes(self, start, end):
        """How many forward passes ran between two events: the times layer1's weight was used."""
        return max(1, _count(self._layer1, start, end))

    def laps(self):
        """The seconds from each clock reading to the next around whole forward passes (both
        layers' work), then the means of the last k of them: a pass timed alone, its fastest or
        median, or the mean of k passes timed one by one."""
        clocks = [i for i, e in enumerate(self.events) if e.kind == "clock" and e.line is not None]
        laps = [seconds_between(self.events[s], self.events[e]) for s, e in zip(clocks, clocks[1:])
                if _count(self._layer1, s, e) and _count(self._layer2, s, e)]
        total, means = 0.0, []
        for k, lap in enumerate(reversed(laps), 1):
            total += lap
            means.append(total / k)
        return laps + means

    def interval(self, event):
        """(start record, end record, GPU, ms) of an elapsed_time reading, or None. The ms are the
        difference of the times the runtime recorded (virtual GPUs), not what the events hold now."""
        found = [self.order.recorded.get(n) for n in (event.ids or [None, None])]
        if len(found) != 2 or None in found or found[0][1] != found[1][1]:
            return None
        (start, device, _), (end, _, _) = found
        first, last = self.events[start], self.events[end]
        ms = event.value if first.value is None or last.value is None else (last.value - first.value) * 1000
        return start, end, device, ms

    def ordered_before(self, op, record):
        """Whether the GPU work `op` (an index) is ordered before the event recorded at `record`."""
        number = self.events[record].ids[0]
        return Order.covers(self.order.recorded[number][2], self.events, [op])

    def by_queue(self, ops):
        """{queue: its ops, in order} of the GPU work `ops` (indices): what ordered_within reads."""
        grouped = {}
        for i in sorted(ops):
            grouped.setdefault(queue_of(self.events[i]), []).append(i)
        return grouped

    def ordered_within(self, grouped, start, record):
        """Whether some op of `grouped` (by_queue) lies between `start` and the event recorded at
        `record`, and is ordered before that event: an op of a queue is, up to the last op of that
        queue the record was ordered after."""
        clock = self.order.recorded[self.events[record].ids[0]][2]
        return any(_between(ops, start, min(record, clock.get(queue, -1) + 1)) for queue, ops in grouped.items())

    def bracketed(self, event):
        """The seconds per forward of an elapsed_time reading whose two events, on one GPU, bracket
        whole forward passes: both layers' work between them, the last of it on that GPU and
        ordered before the end event. None otherwise."""
        found = self.interval(event)
        if found is None:
            return None
        start, end, device, ms = found
        last = bisect.bisect_left(self._gpu_ops, end) - 1
        inside = last >= 0 and self._gpu_ops[last] > start
        whole = all(_between(self._uses[label], start, end) for label in ("w1", "w2"))
        if not (inside and whole) or self.events[self._gpu_ops[last]].device != device:
            return None
        return ms / 1000 / self.passes(start, end) if self.ordered_before(self._gpu_ops[last], end) else None

    def measures(self, value, wait_for=None):
        """Whether `value` is the seconds per forward of a start-to-end clock difference around the
        timed pass (the end read after a wait covering `wait_for`'s work, if given): end - start,
        or a mean (end - start) / k of its k passes. Linear in the readings: each end's start is
        looked up among the same clock's start readings, sorted."""
        starts = {}  # clock function -> [(its reading, index)], sorted
        for i in self.starts:
            starts.setdefault(self.events[i].name, []).append((self.events[i].value, i))
        for found in starts.values():
            found.sort()
        for i in self.ends:
            end = self.events[i]
            found = starts.get(end.name) if end.kind == "clock" else None
            if not found or (wait_for is not None and not self.waited_before(i, wait_for)):
                continue
            unit = 1e9 if end.name.endswith("_ns") else 1
            for k in {1, self.passes(found[0][1], i)}:  # every start counts the same passes (see starts)
                at = bisect.bisect_left(found, (end.value - value * k * unit, -1))
                if any(math.isclose(value, seconds_between(self.events[s], end) / k, rel_tol=1e-6, abs_tol=1e-9)
                       for _, s in found[max(0, at - 1):at + 1]):
                    return True
        return False

    def differences(self, wait_for=None, count=3):
        """A few start-to-end clock differences around the timed pass, to quote in a message."""
        if not self.starts:
            return []
        start = self.events[self.starts[-1]]
        ends = [self.events[i] for i in self.ends
                if self.events[i].kind == "clock" and self.events[i].name == start.name
                and (wait_for is None or self.waited_before(i, wait_for))]
        return [seconds_between(start, end) for end in ends[:count]]


def _between(indices, start, end):
    """Whether the sorted `indices` hold one strictly between `start` and `end`."""
    at = bisect.bisect_right(indices, start)
    return at < len(indices) and indices[at] < end

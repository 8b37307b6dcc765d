"""The checks: pytest tests that judge a probe's facts. Each awards exactly one rubric item and,
when it fails, says what was expected, what the submission did, and where to look."""
import bisect

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
        self._layer1, self._layer2 = self.flow.uses("w1"), self.flow.uses("w2")
        self._last = {}  # GPU -> {queue: the pass's last op there}: ops on one queue run in order
        for i in self.ops:
            self._last.setdefault(self.events[i].device, {})[queue_of(self.events[i])] = i
        self.waits = [(i, device) for i, clock in self.order.waits if i > self.last_op
                      for device in self._covered(i, clock)]
        self.starts = [i for i in readings if i < self.first_op and self.events[i].kind == "clock"]
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
        return [d for i, d in self.waits if i < index and (device is None or d == device)]

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

    def bracketed(self, event):
        """The seconds per forward of an elapsed_time reading whose two events, on one GPU, bracket
        whole forward passes: both layers' work between them, the last of it on that GPU and
        ordered before the end event. None otherwise."""
        found = self.interval(event)
        if found is None:
            return None
        start, end, device, ms = found
        inside = [i for i in gpu_ops(self.events) if start < i < end]
        whole = {"w1", "w2"} <= {label for i in inside for label in self.events[i].reads or ()}
        if not inside or not whole or self.events[inside[-1]].device != device:
            return None
        return ms / 1000 / self.passes(start, end) if self.ordered_before(inside[-1], end) else None

    def clock_differences(self, wait_for=None):
        """The seconds per forward of each start-to-end clock difference around the timed pass
        (the end read after a wait covering `wait_for`'s work, if given): end - start, or a mean
        (end - start) / k of k passes."""
        return [seconds_between(self.events[s], self.events[e]) / k
                for s in self.starts for e in self.ends if self.events[e].kind == "clock"
                and (wait_for is None or self.waited_before(e, wait_for))
                for k in {1, self.passes(s, e)}]

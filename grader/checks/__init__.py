"""The checks: pytest tests that judge a probe's facts. Each awards exactly one rubric item and,
when it fails, says what was expected, what the submission did, and where to look."""
import pytest

from grader.contract import HOST_READS
from grader.trace import Trace

MATRIX_OPS = frozenset({"linear", "matmul", "mm", "addmm", "__matmul__", "__rmatmul__", "bmm"})


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


def trace(events):
    """A Trace of a probe's events (grader.trace.Event), to query."""
    return Trace.holding(events)


def at_line(event):
    return f" (line {event.line})" if event.line else ""


def gpu_ops(events, device=None):
    return [i for i, e in enumerate(events) if e.kind == "op" and e.device and e.device.startswith("cuda")
            and (device is None or e.device == device)]


class Timing:
    """One call of a timing function, in the order things happened: its ops, the host's waits
    for the GPUs, and its clock readings.

    A wait for a GPU comes after the forward and covers all of the forward's work there: a device
    or stream synchronize, a host read of that GPU's data (`.item()`, `.cpu()`, `.to("cpu")`,
    `.tolist()`), or the synchronize of an event recorded after the forward's last op on that GPU.
    An event recorded before the forward waits for nothing of it.
    """

    def __init__(self, events, what):
        self.events = trace(events).events
        ops = gpu_ops(self.events)
        if not ops:
            fail(f"{what} ran no forward pass on the GPUs: call the model between the two clock readings")
        self.first_op, self.last_op = ops[0], ops[-1]
        self.last_on = {}
        for i in ops:
            self.last_on[self.events[i].device] = i
        self.recorded = {e.ids[0]: (i, e.device) for i, e in enumerate(self.events)
                         if e.kind == "cuda_event" and e.name == "record" and e.ids}
        self.waits = list(self._waits())  # (index, GPU) of each wait that covers the forward there
        readings = [i for i, e in enumerate(self.events) if self.is_reading(e)]
        self.starts = [i for i in readings if i < self.first_op]
        self.ends = [i for i in readings if i > self.last_op]

    def _waits(self):
        for i, e in enumerate(self.events):
            if e.kind == "sync" and e.name == "event.synchronize":
                at, device = self.recorded.get((e.ids or [None])[0], (-1, e.device))
                covered = at
            elif e.kind == "sync" and (e.name in ("synchronize", "stream.synchronize") or e.name in HOST_READS):
                device, covered = e.device, i
            elif e.kind == "transfer" and e.device == "cpu" and e.source and e.source.startswith("cuda"):
                device, covered = e.source, i
            else:
                continue
            if i > self.last_op and covered > self.last_on.get(device, self.first_op):
                yield i, device

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

    def bracketing(self, event):
        """Whether an elapsed_time reading's two events bracket the whole forward on the GPU of its
        last op."""
        start, end = (self.recorded.get(n, (None, None)) for n in (event.ids or [None, None]))
        return (start[0] is not None and end[0] is not None and start[0] < self.first_op
                and end[0] > self.last_op and end[1] == self.events[self.last_op].device)

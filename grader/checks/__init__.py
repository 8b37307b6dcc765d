"""The checks: pytest tests that judge a probe's facts. Each awards exactly one rubric item and,
when it fails, says what was expected, what the submission did, and where to look."""
import pytest

from grader.trace import Trace


def rubric(item_id):
    return pytest.mark.rubric(item_id)


def fail(message):
    pytest.fail(message, pytrace=False)


def expect(condition, message):
    if not condition:
        fail(message)


def trace(events):
    return Trace.from_json(events)


def at_line(event):
    return f" (line {event.line})" if event.line else ""


class Timing:
    """The order of events in one call of a timing function: ops, synchronizes, clock readings."""

    def __init__(self, events, what):
        self.events = trace(events).events
        ops = [i for i, e in enumerate(self.events) if e.kind == "op"]
        if not ops:
            fail(f"{what} ran no forward pass: call the model between the two clock readings")
        self.first_op, self.last_op = ops[0], ops[-1]
        readings = [i for i, e in enumerate(self.events) if self.is_reading(e)]
        self.starts = [i for i in readings if i < self.first_op]
        self.ends = [i for i in readings if i > self.last_op]
        self.syncs = [i for i, e in enumerate(self.events) if e.kind == "sync" and i > self.last_op]

    @staticmethod
    def is_reading(event):
        """A clock read by the submission, or the host reading two CUDA events' interval."""
        return (event.kind == "clock" and event.line is not None) or event.name == "elapsed_time"

    def end(self):
        if not self.ends:
            fail("no clock was read after the forward pass: read the end time after synchronizing")
        return self.ends[0]

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

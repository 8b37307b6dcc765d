"""The frame format a probe's result crosses the boundary in: whatever bytes arrive, unpacking
either gives plain data or says the frame is unreadable, and never costs the grader more than a
bounded parse (a header of a million tiny lists would take a thousand times its size)."""
import json

import pytest

from grader import wire


def _payload(header_text):
    return wire.HEADER_LENGTH.pack(len(header_text)) + header_text


def test_a_frame_round_trips():
    frame = wire.pack({"facts": {"a": [1, 2]}}, {"w": b"\0" * 8})
    assert wire.unpack(frame[wire.PREFIX.size:]) == ({"facts": {"a": [1, 2]}}, {"w": b"\0" * 8})


@pytest.mark.parametrize("text", [
    b'{"header": ' + b"[" * 100_000 + b"]" * 100_000 + b', "blobs": []}',  # nested past the parser's recursion
    b'{"header": [' + b"[]," * 1_100_000 + b'[]], "blobs": []}',  # more containers than any probe's facts
])
def test_a_header_that_would_blow_up_is_unreadable(text):
    with pytest.raises(wire.Unreadable):
        wire.unpack(_payload(text))


def test_a_header_past_its_cap_is_unreadable():
    text = json.dumps({"header": "x" * (wire.HEADER_CAP + 1), "blobs": []}).encode()
    with pytest.raises(wire.Unreadable):
        wire.unpack(_payload(text))


def test_a_lone_surrogate_arrives_as_its_escape():
    """JSON may carry a lone surrogate (an exception's text, say), which no UTF-8 file can hold: one
    student's message once ended the whole batch, for every classmate, when it reached a file."""
    header, _ = wire.unpack(wire.pack({"failure": "raised ValueError('\ud800') and \U0001f600"})[wire.PREFIX.size:])
    assert header["failure"] == "raised ValueError('\\ud800') and \U0001f600"
    header["failure"].encode("utf-8")

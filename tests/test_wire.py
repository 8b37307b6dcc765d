"""The frame format a probe's result crosses the boundary in: whatever bytes arrive, unpacking
either gives plain data or says the frame is unreadable, and never costs the grader more than a
bounded parse (a header of a million tiny lists would take a thousand times its size)."""
import json
import os

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


def test_a_frame_of_more_blobs_than_any_probe_returns_is_unreadable():
    """A million empty blobs would be a million objects in the grader's process."""
    frame = wire.pack({"facts": {}}, {f"b{n}": b"" for n in range(wire.BLOBS_CAP + 1)})
    with pytest.raises(wire.Unreadable):
        wire.unpack(frame[wire.PREFIX.size:])


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_length_announced_and_never_sent_costs_the_reader_nothing():
    """The reader maps a frame's buffer when its prefix comes; its pages exist only as data fills
    them, so six probes announcing the largest result and sending nothing hold no memory."""
    cap = 48 * 2**20
    pipes = [os.pipe() for _ in range(6)]
    try:
        for _, write in pipes:
            os.write(write, wire.PREFIX.pack(wire.MAGIC, cap) + b"\0" * 4096)
        before = _resident_bytes()
        readers = [wire.FrameReader(cap) for _ in pipes]
        for reader, (read, _) in zip(readers, pipes):
            assert reader.read(read) is None and reader.read(read) is None  # the prefix, then some data
        assert _resident_bytes() - before < 8 * 2**20
    finally:
        for fd in (fd for pipe in pipes for fd in pipe):
            os.close(fd)


def test_a_frame_read_in_pieces_gives_views_of_one_buffer():
    read, write = os.pipe()
    frame = wire.pack({"facts": {"n": 1}}, {"w": bytes(range(256)) * 4, "b": b"\1\2"})
    os.write(write, frame)
    os.close(write)
    reader, got = wire.FrameReader(1 << 20), None
    while got is None:
        got = reader.read(read)
    os.close(read)
    header, blobs = got
    assert header == {"facts": {"n": 1}} and blobs["w"] == bytes(range(256)) * 4 and blobs["b"] == b"\1\2"
    assert isinstance(blobs["w"], memoryview)


def test_a_frame_written_in_pieces_is_the_packed_frame():
    """A probe writes its frame as the buffers it is made of (its tensors' own memory, never joined
    into one copy); what arrives is byte for byte the packed frame, empty and 0-dim tensors too."""
    import numpy

    blobs = {"w": numpy.arange(12, dtype=numpy.float32).reshape(3, 4), "empty": numpy.zeros((32, 0), numpy.float32),
             "scalar": numpy.float32(2.5) * numpy.ones((), numpy.float32), "raw": b"\1\2"}
    read, write = os.pipe()
    wire.write_all(write, *wire.pieces({"facts": {}}, blobs))
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        sent = stream.read()
    assert sent == wire.pack({"facts": {}}, blobs)
    header, got = wire.unpack(sent[wire.PREFIX.size:])
    assert numpy.frombuffer(got["w"], numpy.float32).tolist() == list(range(12))
    assert len(got["empty"]) == 0 and got["raw"] == b"\1\2"
    assert numpy.frombuffer(got["scalar"], numpy.float32).tolist() == [2.5] and header == {"facts": {}}

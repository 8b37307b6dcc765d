"""The one format that crosses the sandbox's boundary: a length-prefixed frame of JSON plus raw
byte blobs (tensors as float32). Never pickle: a frame can only ever decode to plain data.

A frame is MAGIC, the payload's length (8 bytes), then the payload: the JSON header's length
(4 bytes), the header, and the blobs it lists, back to back.
"""
import json
import mmap
import os
import re
import socket
import struct

MAGIC = b"MPL1"
PREFIX = struct.Struct("<4sQ")
HEADER_LENGTH = struct.Struct("<I")
HEADER_CAP = 16 * 2**20  # bytes of a frame's JSON header (the blobs, tensors, need the rest of a result)
SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # the JSON escape of a surrogate, lone or paired
CONTAINERS_CAP = 1_000_000  # lists and objects in one header: a probe's facts have far fewer
BLOBS_CAP = 64  # tensors in one frame: a probe returns at most a model's parameters and an output


class Unreadable(Exception):
    """A frame that is not one: wrong magic, wrong lengths, bad JSON."""


def pack(header, blobs=None):
    """The frame of `header` (JSON-ready) and `blobs` ({name: bytes})."""
    return b"".join(pieces(header, blobs))


def pieces(header, blobs=None):
    """The frame of `header` and `blobs` ({name: any bytes-like object}) as the buffers it is made
    of, the blobs as they are: written one after another (`write_all`), a result of megabytes is
    never copied into one."""
    blobs = {name: _bytes_of(data) for name, data in (blobs or {}).items()}
    text = json.dumps({"header": header, "blobs": [[name, len(data)] for name, data in blobs.items()]}).encode()
    length = HEADER_LENGTH.size + len(text) + sum(len(data) for data in blobs.values())
    return [PREFIX.pack(MAGIC, length) + HEADER_LENGTH.pack(len(text)) + text, *blobs.values()]


def _bytes_of(data):
    """A C-contiguous buffer as a flat view of its bytes (an empty one has no shape to flatten)."""
    view = memoryview(data)
    return view.cast("B") if view.nbytes else memoryview(b"")


def write_all(fd, *buffers):
    """Write all of each of `buffers` to the descriptor `fd`, in turn (a pipe takes them in pieces)."""
    for data in buffers:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def payload_length(prefix, cap):
    """The payload length announced by a frame's first PREFIX.size bytes; Unreadable past `cap`."""
    magic, length = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise Unreadable("it does not start as a result does")
    if length > cap:
        raise Unreadable(f"it announces {length} bytes, more than the {cap} a result may have")
    return length


def unpack(payload):
    """(header, blobs) of a frame's payload (bytes, or a memoryview: then each blob is a view of
    it, not a copy); Unreadable when it is not exactly what it claims."""
    try:
        (size,) = HEADER_LENGTH.unpack_from(payload)
        text = bytes(payload[HEADER_LENGTH.size:HEADER_LENGTH.size + size])
        if size > HEADER_CAP or text.count(b"[") + text.count(b"{") > CONTAINERS_CAP:
            raise ValueError("its header is too large")  # JSON of tiny containers grows ~50x as objects
        document = json.loads(text)
        if SURROGATE.search(text):  # a lone surrogate, which no UTF-8 file can hold: kept as its escape
            document = _encodable(document)
        blobs, offset = {}, HEADER_LENGTH.size + size
        if len(document["blobs"]) > BLOBS_CAP:
            raise ValueError("it holds too many blobs")
        for name, length in document["blobs"]:
            if not isinstance(name, str) or not isinstance(length, int) or length < 0:
                raise ValueError("bad blob entry")
            blobs[name] = payload[offset:offset + length]
            offset += length
        if offset != len(payload):
            raise ValueError("trailing or missing bytes")
        return document["header"], blobs
    except (struct.error, ValueError, KeyError, TypeError, RecursionError) as error:
        raise Unreadable(f"it is malformed ({type(error).__name__})") from None


def _encodable(value):
    """`value` with each string's unencodable characters (lone surrogates) written as escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    return value


class FrameReader:
    """One frame read from a descriptor in pieces, as they arrive, into a buffer mapped once its
    length is known: a result of tens of megabytes is copied once, and its blobs are views of it.
    The mapping's pages exist only as data fills them, so a length announced and never sent
    costs nothing."""

    def __init__(self, cap):
        self.cap, self._prefix, self._payload, self._filled = cap, bytearray(), None, 0

    def read(self, fd):
        """Read what `fd` has: (header, blobs) once the frame is whole, else None. EOFError when the
        stream ends first; Unreadable when what came is not a frame, or a larger one than `cap`."""
        if self._payload is None:
            chunk = os.read(fd, PREFIX.size - len(self._prefix))
            self._prefix += chunk
            if len(self._prefix) == PREFIX.size:
                length = payload_length(bytes(self._prefix), self.cap)
                self._payload = memoryview(mmap.mmap(-1, length) if length else b"")
        else:
            chunk = os.readv(fd, [self._payload[self._filled:]])
            self._filled += chunk
        if not chunk:
            raise EOFError("the stream ended inside a frame")
        if self._payload is not None and self._filled == len(self._payload):
            return unpack(self._payload)
        return None


def read_frame(sock_or_file, cap):
    """One whole frame from a blocking stream (`recv`-like `read(n)`), for the runner's requests."""
    prefix = _read_exactly(sock_or_file, PREFIX.size)
    return unpack(_read_exactly(sock_or_file, payload_length(prefix, cap)))


def _read_exactly(stream, n):
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the stream ended inside a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class _SocketReader:
    """`read(n)` over a socket, unbuffered: the next request's descriptors must stay with it."""

    def __init__(self, sock):
        self.sock = sock

    def read(self, n):
        return self.sock.recv(n)


def send(sock, header, fds=()):
    """One request or reply over a Unix socket: a byte carrying `fds` (SCM_RIGHTS), then the frame."""
    if fds:
        socket.send_fds(sock, [b"F"], list(fds))
    else:
        sock.sendall(b"F")
    sock.sendall(pack(header))


def receive(sock, cap, max_fds=32):
    """(header, fds) of the next request or reply; EOFError when the other end is gone."""
    marker, fds, _, _ = socket.recv_fds(sock, 1, max_fds)
    if not marker:
        raise EOFError("the other end closed the socket")
    header, _ = read_frame(_SocketReader(sock), cap)
    return header, fds

"""Framing for the worker's pipes: a 4-byte little-endian JSON length, the JSON, then optional raw bytes.

Inputs travel through `shm`; small outputs ride inline after the JSON (one write, one read), which is
cheaper than touching shared memory for a few KB of scores.
"""
import json
import os
import select
import struct
import time

_HEADER = struct.Struct("<II")  # JSON length, raw payload length
_READ = 1 << 16


class PeerGone(EOFError):
    """The other end closed its pipe (exited or crashed)."""


class Timeout(Exception):
    """Nothing (or not the whole frame) arrived before the deadline: the other end is stuck."""


def send(fd, message, payload=b""):
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    view = memoryview(b"".join((_HEADER.pack(len(data), len(payload)), data, payload)))
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise PeerGone(str(exc)) from exc
        view = view[n:]


def receive(fd, deadline=None):
    """(message, payload bytes). Requests and replies alternate, so nothing follows a frame. `deadline` (a
    `time.monotonic()` value) bounds the wait for the whole frame: past it, `Timeout`."""
    buf = _read(fd, _READ, deadline)
    while len(buf) < _HEADER.size:
        buf += _read(fd, _READ, deadline)
    json_len, raw_len = _HEADER.unpack_from(buf)
    total = _HEADER.size + json_len + raw_len
    parts = [buf]
    have = len(buf)
    while have < total:
        chunk = _read(fd, min(total - have, 1 << 22), deadline)
        parts.append(chunk)
        have += len(chunk)
    frame = b"".join(parts) if len(parts) > 1 else buf
    body = memoryview(frame)[_HEADER.size:]
    return json.loads(bytes(body[:json_len]).decode("utf-8")), body[json_len:json_len + raw_len]


def _read(fd, n, deadline=None):
    if deadline is not None:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        if not poller.poll(int(max(0.0, deadline - time.monotonic()) * 1000) + 1):
            raise Timeout("no answer before the deadline")
    chunk = os.read(fd, n)
    if not chunk:
        raise PeerGone("pipe closed")
    return chunk

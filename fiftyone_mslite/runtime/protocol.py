"""Framing for the worker's pipes: a 4-byte little-endian JSON length, the JSON, then optional raw bytes.

Inputs travel through `shm`; small outputs ride inline after the JSON (one write, one read), which is
cheaper than touching shared memory for a few KB of scores.
"""
import json
import os
import struct

_HEADER = struct.Struct("<II")  # JSON length, raw payload length
_READ = 1 << 16


class PeerGone(EOFError):
    """The other end closed its pipe (exited or crashed)."""


def send(fd, message, payload=b""):
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    view = memoryview(b"".join((_HEADER.pack(len(data), len(payload)), data, payload)))
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise PeerGone(str(exc)) from exc
        view = view[n:]


def receive(fd):
    """(message, payload bytes). Requests and replies alternate, so nothing follows a frame."""
    buf = _read(fd, _READ)
    while len(buf) < _HEADER.size:
        buf += _read(fd, _READ)
    json_len, raw_len = _HEADER.unpack_from(buf)
    total = _HEADER.size + json_len + raw_len
    parts = [buf]
    have = len(buf)
    while have < total:
        chunk = _read(fd, min(total - have, 1 << 22))
        parts.append(chunk)
        have += len(chunk)
    frame = b"".join(parts) if len(parts) > 1 else buf
    body = memoryview(frame)[_HEADER.size:]
    return json.loads(bytes(body[:json_len]).decode("utf-8")), body[json_len:json_len + raw_len]


def _read(fd, n):
    chunk = os.read(fd, n)
    if not chunk:
        raise PeerGone("pipe closed")
    return chunk

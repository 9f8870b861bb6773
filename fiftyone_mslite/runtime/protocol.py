"""Framing for the worker's pipes: a 4-byte little-endian length, then a small JSON object.

Tensors never travel here (they go through `shm`), so JSON costs microseconds per batch.
"""
import json
import os
import struct

_HEADER = struct.Struct("<I")


class PeerGone(EOFError):
    """The other end closed its pipe (exited or crashed)."""


def send(fd, message):
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    payload = _HEADER.pack(len(data)) + data
    view = memoryview(payload)
    while view:
        try:
            n = os.write(fd, view)
        except (BrokenPipeError, OSError) as exc:
            raise PeerGone(str(exc)) from exc
        view = view[n:]


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise PeerGone("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def receive(fd):
    (length,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return json.loads(_read_exact(fd, length).decode("utf-8"))

"""One bounds-checked FlatBuffer reader for every FlatBuffer model format here (.ms of both schema generations,
TFLite), on top of ``flatbuffers.table.Table``.

Why: the flatbuffers runtime trusts its input and raises struct.error/IndexError (or reads garbage) on a bad
offset; every position is validated here before the Table helpers touch it, so truncated or hostile files fail
with a sentence (`CorruptFlatBuffer`, which each caller turns into its own error naming the file).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from flatbuffers import encode
from flatbuffers import number_types as N
from flatbuffers.table import Table

__all__ = ["CorruptFlatBuffer", "FlatReader", "MutableFlatBuffer", "Table"]

_SCALARS = {"bool": N.BoolFlags, "i8": N.Int8Flags, "u8": N.Uint8Flags, "i32": N.Int32Flags, "u32": N.Uint32Flags,
            "i64": N.Int64Flags, "f32": N.Float32Flags, "f64": N.Float64Flags}
_VECTORS = {"[i32]": "<i4", "[i64]": "<i8", "[f32]": "<f4", "[u32]": "<u4", "[u8]": "u1"}


class CorruptFlatBuffer(Exception):
    """An offset, length or value outside the buffer (the caller adds the file name and its own error type)."""


class FlatReader:
    """Bounds-checked field access on one FlatBuffer (bytes, memoryview or, for `MutableFlatBuffer`, bytearray).

    Field kinds: scalars "bool", "i8", "u8", "i32", "u32", "i64", "f32", "f64"; vectors "[i32]", "[i64]",
    "[f32]", "[u32]", "[u8]"; "str". `what` names the field in error messages.
    """

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = buf

    @property
    def size(self) -> int:
        return len(self.buf)

    def _need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise CorruptFlatBuffer(f"{what} at byte {pos} (+{length}) lies outside the {self.size}-byte file")

    def u32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return encode.Get(N.Uint32Flags.packer_type, self.buf, pos)

    def root(self, what: str) -> Table:
        self._need(0, 8, "the root offset")
        return self.table(self.u32(0, "the root offset"), what)

    def table(self, pos: int, what: str) -> Table:
        """Validate a table header, its vtable and every field offset (FlatBuffers Verifier::VerifyTableStart)."""
        self._need(pos, 4, what)
        vtable = pos - encode.Get(N.SOffsetTFlags.packer_type, self.buf, pos)
        self._need(vtable, 4, f"the vtable of {what}")
        vsize = encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable)
        tsize = encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable + 2)
        if vsize < 4 or vsize % 2:
            raise CorruptFlatBuffer(f"the vtable of {what} has an invalid size {vsize}")
        self._need(vtable, vsize, f"the vtable of {what}")
        self._need(pos, max(tsize, 4), what)
        tab = Table(self.buf, pos)
        for slot in range((vsize - 4) // 2):
            off = tab.Offset(4 + 2 * slot)
            if off and off + 1 > tsize:
                raise CorruptFlatBuffer(f"field {slot} of {what} points past the end of its table")
        return tab

    def field_pos(self, tab: Table, slot: int, width: int, what: str) -> int | None:
        """Absolute position of a field's `width` bytes, or None when the field is absent."""
        off = tab.Offset(4 + 2 * slot)
        if not off:
            return None
        self._need(tab.Pos + off, width, what)
        return tab.Pos + off

    def scalar(self, tab: Table, slot: int, kind: str, default: Any, what: str) -> Any:
        flags = _SCALARS[kind]
        pos = self.field_pos(tab, slot, flags.bytewidth, what)
        return default if pos is None else tab.Get(flags, pos)

    def present_slots(self, tab: Table) -> list[int]:
        """The slots of a (validated) table whose fields are present, i.e. not left to the schema's default."""
        vtable = tab.Pos - encode.Get(N.SOffsetTFlags.packer_type, self.buf, tab.Pos)
        vsize = encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable)
        return [slot for slot in range((vsize - 4) // 2) if tab.Offset(4 + 2 * slot)]

    def vector_span(self, tab: Table, slot: int, elem: int, what: str) -> tuple[int, int] | None:
        """(position of the first element, length) of a vector field, bounds-checked; None when absent."""
        pos = self.field_pos(tab, slot, 4, what)
        if pos is None:
            return None
        start = pos + self.u32(pos, what)
        length = self.u32(start, f"the length of {what}")
        self._need(start + 4, length * elem, what)
        return start + 4, length

    def vector_len(self, tab: Table, slot: int, elem: int, what: str) -> int:
        """Bounds-check a vector (or string, elem=1) without reading it; its length (0 if absent)."""
        span = self.vector_span(tab, slot, elem, what)
        return 0 if span is None else span[1]

    def array(self, tab: Table, slot: int, kind: str, what: str, limit: int | None = None) -> np.ndarray:
        """A numeric vector as a (copied) numpy array; empty when absent. `limit` bounds its length."""
        dtype = np.dtype(_VECTORS[kind])
        span = self.vector_span(tab, slot, dtype.itemsize, what)
        if span is None:
            return np.empty(0, dtype)
        start, length = span
        if limit is not None and length > limit:
            raise CorruptFlatBuffer(f"{what} claims {length} entries (more than {limit})")
        return np.frombuffer(self.buf, dtype, length, start).copy()

    def values(self, tab: Table, slot: int, kind: str, what: str, limit: int | None = None) -> list:
        """A numeric vector as Python numbers (for indices and attributes)."""
        return self.array(tab, slot, kind, what, limit).tolist()

    def raw(self, tab: Table, slot: int, what: str) -> bytes:
        span = self.vector_span(tab, slot, 1, what)
        return b"" if span is None else bytes(self.buf[span[0]:span[0] + span[1]])

    def string(self, tab: Table, slot: int, what: str) -> str:
        return self.raw(tab, slot, what).decode("utf-8", errors="replace")

    def _table_at(self, elem: int, what: str) -> Table:
        return self.table(elem + self.u32(elem, what), what)

    def tables(self, tab: Table, slot: int, what: str) -> list[Table]:
        """Every table of a vector of tables, each header and vtable validated."""
        span = self.vector_span(tab, slot, 4, what)
        if span is None:
            return []
        return [self._table_at(span[0] + 4 * i, f"{what}[{i}]") for i in range(span[1])]

    def table_in_vector(self, tab: Table, slot: int, index: int, what: str) -> Table:
        span = self.vector_span(tab, slot, 4, what)
        if span is None or not 0 <= index < span[1]:
            count = 0 if span is None else span[1]
            raise CorruptFlatBuffer(f"{what} index {index} is out of range (the file holds {count})")
        return self._table_at(span[0] + 4 * index, f"{what}[{index}]")

    def sub_table(self, tab: Table, slot: int, what: str) -> Table | None:
        pos = self.field_pos(tab, slot, 4, what)
        return None if pos is None else self._table_at(pos, what)

    def fields(self, tab: Table, layout: Sequence[tuple[str, str, Any]], what: str) -> dict[str, Any]:
        """Every field of a table layout — (name, kind, default) per slot — by name, defaults for absent ones."""
        out: dict[str, Any] = {}
        for slot, (name, kind, default) in enumerate(layout):
            where = f"{what}.{name}"
            if kind in _SCALARS:
                out[name] = self.scalar(tab, slot, kind, default, where)
            elif kind in _VECTORS:
                out[name] = tuple(self.values(tab, slot, kind, where))
            elif kind == "str":
                out[name] = self.string(tab, slot, where)
            else:
                raise ValueError(f"cannot read a {kind} field")
        return out


class MutableFlatBuffer(FlatReader):
    """A FlatBuffer edited in place: scalars and offsets patched, vectors appended at the end (offsets point
    forward, so an appended vector is reachable), fields dropped by zeroing their vtable slot."""

    def __init__(self, data: bytes) -> None:
        super().__init__(bytearray(data))

    def put(self, fmt: str, pos: int, value: int | float) -> None:
        self._need(pos, struct.calcsize("<" + fmt), "a patched value")
        struct.pack_into("<" + fmt, self.buf, pos, value)

    def drop(self, tab: Table, slot: int) -> None:
        """Make a field absent (in the table's vtable: every table sharing that vtable loses the field too)."""
        vtable = tab.Pos - encode.Get(N.SOffsetTFlags.packer_type, self.buf, tab.Pos)
        if 4 + 2 * slot < encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable):
            self.put("H", vtable + 4 + 2 * slot, 0)

    def append_vector(self, payload: bytes, count: int) -> int:
        """Append a vector (16-byte aligned elements) and return the position of its length prefix."""
        self.buf += b"\0" * ((-len(self.buf) - 4) % 16)
        pos = len(self.buf)
        self.buf += struct.pack("<I", count) + payload
        return pos

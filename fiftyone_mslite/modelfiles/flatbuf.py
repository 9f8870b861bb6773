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
from flatbuffers.table import Table

__all__ = ["CorruptFlatBuffer", "FlatReader", "MutableFlatBuffer", "Table"]

_SCALARS = {kind: struct.Struct("<" + code) for kind, code in
            {"bool": "?", "i8": "b", "u8": "B", "i32": "i", "u32": "I", "i64": "q", "f32": "f", "f64": "d"}.items()}
_VALUE_CODES = {"[i32]": "i", "[i64]": "q", "[f32]": "f", "[u32]": "I", "[u8]": "B"}  # struct codes
_VECTORS = {kind: np.dtype("<" + code) for kind, code in _VALUE_CODES.items()}
_U32, _SOFFSET, _VSIZES = _SCALARS["u32"], _SCALARS["i32"], struct.Struct("<HH")


class CorruptFlatBuffer(Exception):
    """An offset, length or value outside the buffer (the caller adds the file name and its own error type)."""


class _Table(Table):
    """A table with its validated field offsets (what `FlatReader.table` returns; skips Table's type checks)."""

    __slots__ = ("offsets",)

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int, offsets: tuple[int, ...]) -> None:
        self.Bytes, self.Pos, self.offsets = buf, pos, offsets


class FlatReader:
    """Bounds-checked field access on one FlatBuffer (bytes, memoryview or, for `MutableFlatBuffer`, bytearray).

    Field kinds: scalars "bool", "i8", "u8", "i32", "u32", "i64", "f32", "f64"; vectors "[i32]", "[i64]",
    "[f32]", "[u32]", "[u8]"; "str". `what` names the field in error messages.

    Why precompiled structs and a vtable cache instead of the ``Table`` helpers: those cost microseconds per field
    (number-type checks on every read), and a graph of 100k nodes reads millions of fields; tables of one kind
    share a vtable, so each vtable is validated once (issue 20: 0.37 ms per node before).
    """

    _own_tables = True  # field offsets are taken from the table read (its vtable cannot change)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.buf = buf
        self._vtables: dict[int, tuple[int, tuple[int, ...]]] = {}  # vtable position -> (table size, field offsets)

    @property
    def size(self) -> int:
        return len(self.buf)

    def _need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > len(self.buf):
            raise CorruptFlatBuffer(f"{what} at byte {pos} (+{length}) lies outside the {self.size}-byte file")

    def u32(self, pos: int, what: str) -> int:
        self._need(pos, 4, what)
        return _U32.unpack_from(self.buf, pos)[0]

    def root(self, what: str) -> Table:
        self._need(0, 8, "the root offset")
        return self.table(self.u32(0, "the root offset"), what)

    def _vtable(self, pos: int, what: str) -> tuple[int, tuple[int, ...]]:
        """(table size (at least its 4-byte header), field offsets) of the table at `pos`, validated once per vtable
        (FlatBuffers Verifier::VerifyTableStart: the vtable in the buffer, every field inside its table)."""
        if 0 <= pos <= len(self.buf) - 4:  # the common case first: a vtable seen before
            known = self._vtables.get(pos - _SOFFSET.unpack_from(self.buf, pos)[0])
            if known is not None:
                return known
        self._need(pos, 4, what)
        vtable = pos - _SOFFSET.unpack_from(self.buf, pos)[0]
        known = self._vtables.get(vtable)
        if known is not None:
            return known
        self._need(vtable, 4, f"the vtable of {what}")
        vsize, tsize = _VSIZES.unpack_from(self.buf, vtable)
        if vsize < 4 or vsize % 2:
            raise CorruptFlatBuffer(f"the vtable of {what} has an invalid size {vsize}")
        self._need(vtable, vsize, f"the vtable of {what}")
        offsets = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.buf, vtable + 4)
        for slot, off in enumerate(offsets):
            if off and off + 1 > tsize:
                raise CorruptFlatBuffer(f"field {slot} of {what} points past the end of its table")
        self._vtables[vtable] = known = (max(tsize, 4), offsets)
        return known

    def table(self, pos: int, what: str) -> Table:
        """Validate a table header, its vtable and every field offset."""
        tsize, offsets = self._vtable(pos, what)
        if pos + tsize > len(self.buf):
            self._need(pos, tsize, what)
        return _Table(self.buf, pos, offsets)

    def field_pos(self, tab: Table, slot: int, width: int, what: str) -> int | None:
        """Absolute position of a field's `width` bytes, or None when the field is absent."""
        offsets = tab.offsets if self._own_tables and type(tab) is _Table else self._vtable(tab.Pos, what)[1]
        off = offsets[slot] if slot < len(offsets) else 0
        if not off:
            return None
        if tab.Pos + off + width > len(self.buf):
            self._need(tab.Pos + off, width, what)
        return tab.Pos + off

    def scalar(self, tab: Table, slot: int, kind: str, default: Any, what: str) -> Any:
        packer = _SCALARS[kind]
        pos = self.field_pos(tab, slot, packer.size, what)
        return default if pos is None else packer.unpack_from(self.buf, pos)[0]

    def present_slots(self, tab: Table) -> list[int]:
        """The slots of a (validated) table whose fields are present, i.e. not left to the schema's default."""
        offsets = tab.offsets if self._own_tables and type(tab) is _Table else self._vtable(tab.Pos, "a table")[1]
        return [slot for slot, off in enumerate(offsets) if off]

    def vector_span(self, tab: Table, slot: int, elem: int, what: str) -> tuple[int, int] | None:
        """(position of the first element, length) of a vector field, bounds-checked; None when absent."""
        pos = self.field_pos(tab, slot, 4, what)
        if pos is None:
            return None
        buf = self.buf
        start = pos + _U32.unpack_from(buf, pos)[0]  # field_pos checked these 4 bytes
        if start + 4 > len(buf):
            self._need(start, 4, f"the length of {what}")
        length = _U32.unpack_from(buf, start)[0]
        if start + 4 + length * elem > len(buf):
            self._need(start + 4, length * elem, what)
        return start + 4, length

    def vector_len(self, tab: Table, slot: int, elem: int, what: str) -> int:
        """Bounds-check a vector (or string, elem=1) without reading it; its length (0 if absent)."""
        span = self.vector_span(tab, slot, elem, what)
        return 0 if span is None else span[1]

    def _numbers(self, tab: Table, slot: int, kind: str, what: str, limit: int | None) -> tuple[int, int]:
        """(start, length) of a numeric vector, (0, 0) when absent; `limit` bounds its length."""
        span = self.vector_span(tab, slot, _VECTORS[kind].itemsize, what)
        if span is None:
            return 0, 0
        if limit is not None and span[1] > limit:
            raise CorruptFlatBuffer(f"{what} claims {span[1]} entries (more than {limit})")
        return span

    def array(self, tab: Table, slot: int, kind: str, what: str, limit: int | None = None) -> np.ndarray:
        """A numeric vector as a (copied) numpy array; empty when absent. `limit` bounds its length."""
        start, length = self._numbers(tab, slot, kind, what, limit)
        return np.frombuffer(self.buf, _VECTORS[kind], length, start).copy()

    def values(self, tab: Table, slot: int, kind: str, what: str, limit: int | None = None) -> list:
        """A numeric vector as Python numbers (for indices and attributes)."""
        start, length = self._numbers(tab, slot, kind, what, limit)
        return list(struct.unpack_from(f"<{length}{_VALUE_CODES[kind]}", self.buf, start))

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
        offsets = tab.offsets if self._own_tables and type(tab) is _Table else self._vtable(tab.Pos, what)[1]
        for slot, (name, kind, default) in enumerate(layout):
            packer = _SCALARS.get(kind)
            if packer is not None:  # scalars inline: most attributes are, and tables are read by the thousand
                off = offsets[slot] if slot < len(offsets) else 0
                if not off:
                    out[name] = default
                    continue
                if tab.Pos + off + packer.size > len(self.buf):
                    self._need(tab.Pos + off, packer.size, f"{what}.{name}")
                out[name] = packer.unpack_from(self.buf, tab.Pos + off)[0]
                continue
            where = f"{what}.{name}"
            if kind in _VECTORS:
                out[name] = tuple(self.values(tab, slot, kind, where))
            elif kind == "str":
                out[name] = self.string(tab, slot, where)
            else:
                raise ValueError(f"cannot read a {kind} field")
        return out


class MutableFlatBuffer(FlatReader):
    """A FlatBuffer edited in place: scalars and offsets patched, vectors appended at the end (offsets point
    forward, so an appended vector is reachable), fields dropped by zeroing their vtable slot."""

    _own_tables = False  # a patch may change a vtable after a table was read: always read the live one

    def __init__(self, data: bytes) -> None:
        super().__init__(bytearray(data))

    def put(self, fmt: str, pos: int, value: int | float) -> None:
        self._need(pos, struct.calcsize("<" + fmt), "a patched value")
        struct.pack_into("<" + fmt, self.buf, pos, value)
        self._vtables.clear()  # the patch may have been a vtable entry or a table's vtable offset

    def drop(self, tab: Table, slot: int) -> None:
        """Make a field absent (in the table's vtable: every table sharing that vtable loses the field too)."""
        vtable = tab.Pos - _SOFFSET.unpack_from(self.buf, tab.Pos)[0]
        if 4 + 2 * slot < _VSIZES.unpack_from(self.buf, vtable)[0]:
            self.put("H", vtable + 4 + 2 * slot, 0)

    def append_vector(self, payload: bytes, count: int) -> int:
        """Append a vector (16-byte aligned elements) and return the position of its length prefix."""
        self.buf += b"\0" * ((-len(self.buf) - 4) % 16)
        pos = len(self.buf)
        self.buf += struct.pack("<I", count) + payload
        return pos

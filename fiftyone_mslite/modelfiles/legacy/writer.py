"""Write a :class:`~.graph.Graph` of current-schema primitives as an ``MSL2`` ``.ms``; patch graph outputs.

Why every attribute is written, defaults included: what a kernel sees must never depend on a default that
might differ between schema versions (v0 and current disagree on several).
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..flatbuf import CorruptFlatBuffer, FlatReader
from . import schema as S
from .graph import Graph, Node, Tensor

_SCALAR_CODES = {"bool": "?", "i8": "b", "u8": "B", "i32": "i", "u32": "I", "i64": "q", "f32": "f", "f64": "d"}
_OFFSET = "U"  # a field holding an object written before its table (a uoffset)
_SIZES = {"?": 1, "b": 1, "B": 1, "i": 4, "I": 4, "f": 4, "q": 8, "d": 8, _OFFSET: 4}
_VECTOR_DTYPES = {"[i32]": "<i4", "[i64]": "<i8", "[f32]": "<f4", "[u32]": "<u4"}
_SMALL_CODES = {"<i4": ("i", 4), "<u4": ("I", 4), "<i8": ("q", 8)}  # struct packs a short list faster than numpy
_U32 = struct.Struct("<I")
_Field = tuple[int, str, Any]  # (slot, struct code or _OFFSET, value)


class _Builder:
    """A back-to-front FlatBuffer builder that packs each table with one ``struct`` call.

    Why not ``flatbuffers.Builder``: it places every scalar with several Python calls (~0.1 ms per node), which
    made upgrading a 100k-node graph take tens of seconds (issue 20). Objects are referred to by their distance
    from the end of the buffer (as in ``flatbuffers.Builder``); the buffer's length is padded to the largest
    alignment used, so an alignment from the end is the same from the start.
    """

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # written back to front
        self.size = 0  # bytes written so far
        self.minalign = 4
        self.vtables: dict[bytes, int] = {}  # identical vtables are shared, as the FlatBuffers builders do
        self.plans: dict[tuple[tuple[int, str], ...], tuple] = {}

    def _pad(self, align: int, extra: int = 0) -> None:
        """Pad so that after `extra` more bytes the size is a multiple of `align`."""
        if align > self.minalign:
            self.minalign = align
        pad = -(self.size + extra) % align
        if pad:
            self.parts.append(bytes(pad))
            self.size += pad

    def _put(self, data: bytes) -> int:
        self.parts.append(data)
        self.size += len(data)
        return self.size

    def vector(self, payload: bytes, count: int, align: int = 4) -> int:
        """A vector (or string) of `count` elements: its data starts `align`-aligned after a u32 length."""
        align = align if align > 4 else 4
        if (self.size + len(payload)) % align or align > self.minalign:  # most vectors need no padding
            self._pad(align, len(payload))
        self.parts += (payload, _U32.pack(count))
        self.size += len(payload) + 4
        return self.size

    def array(self, values: Any, dtype: str) -> int:
        if isinstance(values, (list, tuple)) and len(values) < 64 and dtype in _SMALL_CODES:  # indices, dims
            code, size = _SMALL_CODES[dtype]
            return self.vector(struct.pack(f"<{len(values)}{code}", *values), len(values), size)
        array = np.asarray(values, dtype=dtype).reshape(-1)
        return self.vector(array.tobytes(), len(array), array.itemsize)

    def string(self, text: str) -> int:
        data = text.encode()
        return self.vector(data + b"\0", len(data))

    def offsets(self, targets: Sequence[int]) -> int:
        """A vector of tables (or strings) written before it."""
        self._pad(4, 4 * len(targets))
        end = self.size + 4 * len(targets)  # the first element's distance from the end
        self._put(struct.pack(f"<{len(targets)}I", *(end - 4 * i - t for i, t in enumerate(targets))))
        return self._put(_U32.pack(len(targets)))

    def _plan(self, key: tuple[tuple[int, str], ...]) -> tuple:
        """How a table of these (slot, code) fields is laid out: widest fields first, each naturally aligned."""
        fmt, pos, slots, refs = "<i", 4, {}, []
        order = sorted(range(len(key)), key=lambda i: -_SIZES[key[i][1]])
        for i in order:
            slot, code = key[i]
            pad = -pos % _SIZES[code]
            fmt += f"{pad}x" if pad else ""
            pos += pad
            slots[slot] = pos
            if code == _OFFSET:
                refs.append((i, pos))
            fmt += "I" if code == _OFFSET else code
            pos += _SIZES[code]
        align = max([4] + [_SIZES[code] for _, code in key])
        tail = -pos % align
        fmt, pos = fmt + (f"{tail}x" if tail else ""), pos + tail
        count = max(slots, default=-1) + 1
        vtable = struct.pack(f"<{count + 2}H", 4 + 2 * count, pos, *(slots.get(s, 0) for s in range(count)))
        refs = [(order.index(i), field_pos) for i, field_pos in refs]  # by position in the packed order
        plan = (struct.Struct(fmt), order, refs, align, vtable)
        self.plans[key] = plan
        return plan

    def table(self, fields: Sequence[_Field]) -> int:
        key = tuple([(slot, code) for slot, code, _ in fields])
        packer, order, refs, align, vtable = self.plans.get(key) or self._plan(key)
        if self.size % align:
            self._pad(align)
        ref = self.size + packer.size  # the table's distance from the end
        values = [fields[i][2] for i in order]
        for i, field_pos in refs:
            values[i] = ref - field_pos - values[i]
        shared = self.vtables.get(vtable)
        self.parts.append(packer.pack((ref + len(vtable) if shared is None else shared) - ref, *values))
        self.size = ref
        if shared is None:
            self.vtables[vtable] = self._put(vtable)
        return ref

    def finish(self, root: int, identifier: bytes | None) -> bytes:
        self._pad(self.minalign, 8 if identifier else 4)
        if identifier:
            self._put(identifier)
        self._put(_U32.pack(self.size + 4 - root))
        return b"".join(reversed(self.parts))


def _table(b: _Builder, layout: tuple[S.Field, ...], values: dict[str, Any]) -> int:
    """One table of ``layout``; every given attribute is written, defaults included."""
    unknown = set(values) - {name for name, _, _ in layout}
    if unknown:
        raise ValueError(f"no such fields: {sorted(unknown)}")
    fields: list[_Field] = []
    for slot, (name, kind, _) in enumerate(layout):
        if name not in values:
            continue
        value = values[name]
        if kind in _SCALAR_CODES:
            fields.append((slot, _SCALAR_CODES[kind], value if kind.startswith("f") else int(value)))
        elif kind in _VECTOR_DTYPES:
            fields.append((slot, _OFFSET, b.array(value, _VECTOR_DTYPES[kind])))
        elif kind == "str":
            fields.append((slot, _OFFSET, b.string(value)))
        elif kind == "vec2d":
            fields.append((slot, _OFFSET, _vec2d(b, value)))
    return b.table(fields)


def _vec2d(b: _Builder, rows: Any) -> int:
    row_tables = [b.table([(0, _OFFSET, b.array(row, "<i8"))]) for row in rows]
    return b.table([(0, _OFFSET, b.offsets(row_tables))])


def _tensor(b: _Builder, t: Tensor) -> int:
    quant = [_table(b, S.QUANT_PARAM, q) for q in t.quant_params]
    fields: list[_Field] = [(S.T_DIMS, _OFFSET, b.array(t.dims, "<i4")), (S.T_NAME, _OFFSET, b.string(t.name))]
    if t.data:
        fields.append((S.T_DATA, _OFFSET, b.vector(t.data, len(t.data), 16)))  # aligned as the converter writes
    if quant:
        fields.append((S.T_QUANT, _OFFSET, b.offsets(quant)))
    if t.quant_clusters:
        fields.append((S.T_CLUSTERS, _OFFSET, b.array(t.quant_clusters, "<f4")))
    return b.table([(S.T_NODE_TYPE, "i", S.NODE_VALUE if t.is_const else S.NODE_CNODE), (S.T_DTYPE, "i", t.dtype),
                    (S.T_FORMAT, "i", t.format), *fields])


def _node(b: _Builder, n: Node, primitives: tuple[str, ...], tables: dict) -> int:
    value = _table(b, tables.get(n.op, ()), n.attrs)  # attribute-less tables need no layout
    prim = b.table([(S.P_TYPE, "B", primitives.index(n.op) + 1), (S.P_VALUE, _OFFSET, value)])
    return b.table([(S.N_NAME, _OFFSET, b.string(n.name)), (S.N_PRIMITIVE, _OFFSET, prim),
                    (S.N_INPUTS, _OFFSET, b.array(n.inputs, "<u4")), (S.N_OUTPUTS, _OFFSET, b.array(n.outputs, "<u4")),
                    (S.N_QUANT_TYPE, "i", n.quant_type)])


def write_current(graph: Graph) -> bytes:
    """Serialise ``graph`` (nodes already translated to current primitives) with the ``MSL2`` identifier."""
    return write_graph(graph, S.CURRENT_PRIMITIVES, S.CURRENT_TABLES, S.IDENT_CURRENT)


def write_graph(graph: Graph, primitives: tuple[str, ...], tables: dict[str, tuple[S.Field, ...]],
                identifier: bytes | None) -> bytes:
    """Serialise ``graph`` with the given primitive union and tables (tests also write v0 files with it)."""
    b = _Builder()
    tensors = [_tensor(b, t) for t in graph.tensors]
    nodes = [_node(b, n, primitives, tables) for n in graph.nodes]
    subgraphs = []
    for sub in graph.subgraphs:
        fields = [(S.SG_NAME, _OFFSET, b.string(sub.name))]
        for slot, values in zip((S.SG_INPUTS, S.SG_OUTPUTS, S.SG_NODES, S.SG_TENSORS),
                                (sub.inputs, sub.outputs, sub.nodes, sub.tensors)):
            fields.append((slot, _OFFSET, b.array(values, "<u4")))
        subgraphs.append(b.table(fields))
    root = b.table([
        (S.MG_FMK, "i", graph.fmk), (S.MG_MEMPOOL, "I", 0),
        (S.MG_NAME, _OFFSET, b.string(graph.name)), (S.MG_VERSION, _OFFSET, b.string(graph.version)),
        (S.MG_INPUTS, _OFFSET, b.array(graph.inputs, "<u4")), (S.MG_OUTPUTS, _OFFSET, b.array(graph.outputs, "<u4")),
        (S.MG_NODES, _OFFSET, b.offsets(nodes)), (S.MG_TENSORS, _OFFSET, b.offsets(tensors)),
        (S.MG_SUBGRAPHS, _OFFSET, b.offsets(subgraphs)),
    ])
    return b.finish(root, identifier)


def append_outputs(buf: bytes, tensors: list[int]) -> bytes:
    """``buf`` with ``tensors`` appended to the graph outputs (MetaGraph and main sub-graph); every other byte kept.

    Why patch instead of re-serialising: a current-schema file may hold any of ~200 primitives; appending the two
    new index vectors at the end and re-pointing the two (forward, unsigned) offsets cannot change what any
    operator computes.
    """
    rd = FlatReader(buf)
    meta = rd.root("MetaGraph")
    out = bytearray(buf)
    patches = [(meta, S.MG_OUTPUTS, "MetaGraph.outputIndex")]
    subgraphs = rd.tables(meta, S.MG_SUBGRAPHS, "MetaGraph.subGraph")
    if subgraphs:
        patches.append((subgraphs[0], S.SG_OUTPUTS, "subGraph[0].outputIndices"))
    for tab, slot, what in patches:
        field = tab.Offset(4 + 2 * slot)
        if not field:
            raise CorruptFlatBuffer(f"{what} is missing")
        current = rd.values(tab, slot, "[u32]", what)
        merged = current + [t for t in tensors if t not in current]
        out.extend(b"\0" * (-len(out) % 4))
        start = len(out)
        out.extend(struct.pack(f"<I{len(merged)}I", len(merged), *merged))
        pos = tab.Pos + field
        out[pos:pos + 4] = struct.pack("<I", start - pos)
    return bytes(out)


def tensor_table(t: Tensor) -> bytes:
    """A finished FlatBuffer whose root is one ``Tensor`` table (position-independent: every offset in it is
    relative, so it can be appended to a model file 16-byte aligned and pointed at)."""
    b = _Builder()
    return b.finish(_tensor(b, t), None)

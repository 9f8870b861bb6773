"""Write a :class:`~.graph.Graph` of current-schema primitives as an ``MSL2`` ``.ms``; patch graph outputs.

Why ``ForceDefaults``: every attribute is written explicitly, so what a kernel sees never depends on a default
that might differ between schema versions (v0 and current disagree on several).
"""
from __future__ import annotations

import struct
from typing import Any

import flatbuffers
import numpy as np

from ..flatbuf import CorruptFlatBuffer, FlatReader
from . import schema as S
from .graph import Graph, Node, Tensor

_PREPEND = {"bool": "PrependBoolSlot", "i8": "PrependInt8Slot", "i32": "PrependInt32Slot",
            "i64": "PrependInt64Slot", "f32": "PrependFloat32Slot", "f64": "PrependFloat64Slot"}
_VECTOR_DTYPES = {"[i32]": "<i4", "[i64]": "<i8", "[f32]": "<f4", "[u32]": "<u4"}


def _vector(b: flatbuffers.Builder, values: Any, dtype: str) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))


def _table(b: flatbuffers.Builder, layout: tuple[S.Field, ...], values: dict[str, Any]) -> int:
    """One table of ``layout``; offsets (vectors, strings, sub-tables) are built first, as FlatBuffers requires."""
    unknown = set(values) - {name for name, _, _ in layout}
    if unknown:
        raise ValueError(f"no such fields: {sorted(unknown)}")
    offsets: dict[int, int] = {}
    for slot, (name, kind, _) in enumerate(layout):
        if name not in values or kind in _PREPEND:
            continue
        value = values[name]
        if kind in _VECTOR_DTYPES:
            offsets[slot] = _vector(b, value, _VECTOR_DTYPES[kind])
        elif kind == "str":
            offsets[slot] = b.CreateString(value)
        elif kind == "vec2d":
            offsets[slot] = _vec2d(b, value)
    b.StartObject(len(layout))
    for slot, (name, kind, default) in enumerate(layout):
        if slot in offsets:
            b.PrependUOffsetTRelativeSlot(slot, offsets[slot], 0)
        elif name in values and kind in _PREPEND:
            value = values[name]
            getattr(b, _PREPEND[kind])(slot, value if kind.startswith("f") else int(value), default)
    return b.EndObject()


def _vec2d(b: flatbuffers.Builder, rows: Any) -> int:
    row_tables = []
    for row in rows:
        data = _vector(b, row, "<i8")
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, data, 0)
        row_tables.append(b.EndObject())
    vec = _table_vector(b, row_tables)
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, vec, 0)
    return b.EndObject()


def _table_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _tensor(b: flatbuffers.Builder, t: Tensor) -> int:
    quant = [_table(b, S.QUANT_PARAM, q) for q in t.quant_params]
    offsets = {
        S.T_DIMS: _vector(b, t.dims, "<i4"),
        S.T_NAME: b.CreateString(t.name),
    }
    if t.data:
        b.StartVector(1, len(t.data), 16)  # 16-byte aligned weights, as the converter writes them
        b.head = b.Head() - len(t.data)
        b.Bytes[b.Head():b.Head() + len(t.data)] = t.data
        offsets[S.T_DATA] = b.EndVector()
    if quant:
        offsets[S.T_QUANT] = _table_vector(b, quant)
    if t.quant_clusters:
        offsets[S.T_CLUSTERS] = _vector(b, t.quant_clusters, "<f4")
    b.StartObject(10)
    b.PrependInt32Slot(S.T_NODE_TYPE, S.NODE_VALUE if t.is_const else S.NODE_CNODE, -1)
    b.PrependInt32Slot(S.T_DTYPE, t.dtype, -1)
    b.PrependInt32Slot(S.T_FORMAT, t.format, -1)
    for slot, off in offsets.items():
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    return b.EndObject()


def _node(b: flatbuffers.Builder, n: Node, primitives: tuple[str, ...], tables: dict) -> int:
    value = _table(b, tables.get(n.op, ()), n.attrs)  # attribute-less tables need no layout
    b.StartObject(2)
    b.PrependUint8Slot(S.P_TYPE, primitives.index(n.op) + 1, 0)
    b.PrependUOffsetTRelativeSlot(S.P_VALUE, value, 0)
    prim = b.EndObject()
    name = b.CreateString(n.name)
    inputs = _vector(b, n.inputs, "<u4")
    outputs = _vector(b, n.outputs, "<u4")
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(S.N_NAME, name, 0)
    b.PrependUOffsetTRelativeSlot(S.N_PRIMITIVE, prim, 0)
    b.PrependUOffsetTRelativeSlot(S.N_INPUTS, inputs, 0)
    b.PrependUOffsetTRelativeSlot(S.N_OUTPUTS, outputs, 0)
    b.PrependInt32Slot(S.N_QUANT_TYPE, n.quant_type, -1)
    return b.EndObject()


def write_current(graph: Graph) -> bytes:
    """Serialise ``graph`` (nodes already translated to current primitives) with the ``MSL2`` identifier."""
    return write_graph(graph, S.CURRENT_PRIMITIVES, S.CURRENT_TABLES, S.IDENT_CURRENT)


def write_graph(graph: Graph, primitives: tuple[str, ...], tables: dict[str, tuple[S.Field, ...]],
                identifier: bytes | None) -> bytes:
    """Serialise ``graph`` with the given primitive union and tables (tests also write v0 files with it)."""
    size = sum(len(t.data) for t in graph.tensors)
    b = flatbuffers.Builder(size + 4096 * (len(graph.tensors) + len(graph.nodes)) + 1024)
    b.ForceDefaults(True)
    tensors = [_tensor(b, t) for t in graph.tensors]
    nodes = [_node(b, n, primitives, tables) for n in graph.nodes]
    subgraphs = []
    for sub in graph.subgraphs:
        name = b.CreateString(sub.name)
        vectors = [_vector(b, v, "<u4") for v in (sub.inputs, sub.outputs, sub.nodes, sub.tensors)]
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(S.SG_NAME, name, 0)
        for slot, vec in zip((S.SG_INPUTS, S.SG_OUTPUTS, S.SG_NODES, S.SG_TENSORS), vectors):
            b.PrependUOffsetTRelativeSlot(slot, vec, 0)
        subgraphs.append(b.EndObject())
    offsets = {
        S.MG_NAME: b.CreateString(graph.name),
        S.MG_VERSION: b.CreateString(graph.version),
        S.MG_INPUTS: _vector(b, graph.inputs, "<u4"),
        S.MG_OUTPUTS: _vector(b, graph.outputs, "<u4"),
        S.MG_NODES: _table_vector(b, nodes),
        S.MG_TENSORS: _table_vector(b, tensors),
        S.MG_SUBGRAPHS: _table_vector(b, subgraphs),
    }
    b.StartObject(9)
    b.PrependInt32Slot(S.MG_FMK, graph.fmk, -1)
    b.PrependUint32Slot(S.MG_MEMPOOL, 0, 1)
    for slot, off in offsets.items():
        b.PrependUOffsetTRelativeSlot(slot, off, 0)
    b.Finish(b.EndObject(), file_identifier=identifier)
    return bytes(b.Output())


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
    b = flatbuffers.Builder(len(t.data) + 1024)
    b.ForceDefaults(True)
    b.Finish(_tensor(b, t))
    return bytes(b.Output())

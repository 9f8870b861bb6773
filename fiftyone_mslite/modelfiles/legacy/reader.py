"""Read a ``.ms`` buffer (either schema generation) into a :class:`~.graph.Graph`.

Every offset is checked against the buffer before it is followed, and the flatbuffers runtime's own exceptions
are turned into :class:`CorruptModel`, so a truncated or hostile file fails with a sentence, not a traceback.
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
from flatbuffers import encode
from flatbuffers import number_types as N
from flatbuffers.table import Table

from . import schema as S
from .graph import Graph, Node, SubGraph, Tensor

_SCALARS = {"bool": N.BoolFlags, "i8": N.Int8Flags, "i32": N.Int32Flags, "i64": N.Int64Flags,
            "f32": N.Float32Flags, "f64": N.Float64Flags, "u8": N.Uint8Flags}
_VECTORS = {"[i32]": "<i4", "[i64]": "<i8", "[f32]": "<f4", "[u32]": "<u4"}
_MAX_DIMS = 16


class CorruptModel(Exception):
    """An offset, length or value that no MindSpore Lite writer produces (the caller adds the file name)."""


class FlatReader:
    """Bounds-checked field access on one FlatBuffer."""

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = buf
        self.size = len(buf)

    def _need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise CorruptModel(f"{what} at byte {pos} (+{length}) lies outside the {self.size}-byte file")

    def root(self) -> Table:
        self._need(0, 8, "the root offset")
        return self.table(encode.Get(N.UOffsetTFlags.packer_type, self.buf, 0), "MetaGraph")

    def table(self, pos: int, what: str) -> Table:
        self._need(pos, 4, what)
        vtable = pos - encode.Get(N.SOffsetTFlags.packer_type, self.buf, pos)
        self._need(vtable, 4, f"the vtable of {what}")
        vsize = encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable)
        tsize = encode.Get(N.VOffsetTFlags.packer_type, self.buf, vtable + 2)
        if vsize < 4 or vsize % 2:
            raise CorruptModel(f"the vtable of {what} has an invalid size {vsize}")
        self._need(vtable, vsize, f"the vtable of {what}")
        self._need(pos, max(tsize, 4), what)
        return Table(self.buf, pos)

    def _field(self, tab: Table, slot: int, width: int, what: str) -> int | None:
        off = tab.Offset(4 + 2 * slot)
        if not off:
            return None
        self._need(tab.Pos + off, width, what)
        return tab.Pos + off

    def scalar(self, tab: Table, slot: int, kind: str, default: Any, what: str) -> Any:
        flags = _SCALARS[kind]
        pos = self._field(tab, slot, flags.bytewidth, what)
        return default if pos is None else tab.Get(flags, pos)

    def _vector(self, tab: Table, slot: int, elem: int, what: str) -> tuple[int, int] | None:
        pos = self._field(tab, slot, 4, what)
        if pos is None:
            return None
        start = pos + encode.Get(N.UOffsetTFlags.packer_type, self.buf, pos)
        self._need(start, 4, f"the length of {what}")
        length = encode.Get(N.UOffsetTFlags.packer_type, self.buf, start)
        self._need(start + 4, length * elem, what)
        return start + 4, length

    def array(self, tab: Table, slot: int, kind: str, what: str) -> tuple:
        dtype = np.dtype(_VECTORS[kind])
        vec = self._vector(tab, slot, dtype.itemsize, what)
        if vec is None:
            return ()
        start, length = vec
        return tuple(np.frombuffer(self.buf, dtype, length, start).tolist())

    def raw(self, tab: Table, slot: int, what: str) -> bytes:
        vec = self._vector(tab, slot, 1, what)
        return b"" if vec is None else bytes(self.buf[vec[0]:vec[0] + vec[1]])

    def string(self, tab: Table, slot: int, what: str) -> str:
        return self.raw(tab, slot, what).decode("utf-8", errors="replace")

    def tables(self, tab: Table, slot: int, what: str) -> list[Table]:
        vec = self._vector(tab, slot, 4, what)
        if vec is None:
            return []
        out = []
        for i in range(vec[1]):
            elem = vec[0] + 4 * i
            out.append(self.table(elem + encode.Get(N.UOffsetTFlags.packer_type, self.buf, elem), f"{what}[{i}]"))
        return out

    def sub_table(self, tab: Table, slot: int, what: str) -> Table | None:
        pos = self._field(tab, slot, 4, what)
        if pos is None:
            return None
        return self.table(pos + encode.Get(N.UOffsetTFlags.packer_type, self.buf, pos), what)

    def fields(self, tab: Table, layout: tuple[S.Field, ...], what: str) -> dict[str, Any]:
        """Every field of ``layout`` by name (defaults for absent ones)."""
        out: dict[str, Any] = {}
        for slot, (name, kind, default) in enumerate(layout):
            where = f"{what}.{name}"
            if kind in _SCALARS:
                out[name] = self.scalar(tab, slot, kind, default, where)
            elif kind in _VECTORS:
                out[name] = self.array(tab, slot, kind, where)
            elif kind == "str":
                out[name] = self.string(tab, slot, where)
            else:
                raise ValueError(f"cannot read a {kind} field")
        return out


def _tensor(rd: FlatReader, tab: Table, index: int) -> Tensor:
    what = f"allTensors[{index}]"
    dims = rd.array(tab, S.T_DIMS, "[i32]", f"{what}.dims")
    if len(dims) > _MAX_DIMS:
        raise CorruptModel(f"{what} claims {len(dims)} dimensions")
    quant = tuple(rd.fields(q, S.QUANT_PARAM, f"{what}.quantParams")
                  for q in rd.tables(tab, S.T_QUANT, f"{what}.quantParams"))
    return Tensor(
        name=rd.string(tab, S.T_NAME, f"{what}.name"),
        dtype=rd.scalar(tab, S.T_DTYPE, "i32", 0, f"{what}.dataType"),
        dims=tuple(dims),
        format=rd.scalar(tab, S.T_FORMAT, "i32", 0, f"{what}.format"),
        node_type=rd.scalar(tab, S.T_NODE_TYPE, "i32", 0, f"{what}.nodeType"),
        data=rd.raw(tab, S.T_DATA, f"{what}.data"),
        quant_params=quant,
        quant_clusters=rd.array(tab, S.T_CLUSTERS, "[f32]", f"{what}.quantClusters"),
    )


def _index_list(rd: FlatReader, tab: Table, slot: int, what: str) -> list[int]:
    return list(rd.array(tab, slot, "[u32]", what))


def _v0_node(rd: FlatReader, tab: Table, index: int) -> Node:
    what = f"nodes[{index}]"
    name = rd.string(tab, S.N_NAME, f"{what}.name")
    prim = rd.sub_table(tab, S.N_PRIMITIVE, f"{what}.primitive")
    if prim is None:
        raise CorruptModel(f"{what} ({name or 'unnamed'}) has no primitive")
    type_id = rd.scalar(prim, S.P_TYPE, "u8", 0, f"{what}.primitive.value_type")
    if not 1 <= type_id <= len(S.V0_PRIMITIVES):
        raise CorruptModel(f"{what} ({name or 'unnamed'}) has primitive type {type_id}, unknown to the v0 schema")
    op = S.V0_PRIMITIVES[type_id - 1]
    attrs: dict[str, Any] = {}
    layout = S.V0_TABLES.get(op)
    if layout is not None:
        value = rd.sub_table(prim, S.P_VALUE, f"{what}.primitive.value")
        if value is not None:
            attrs = rd.fields(value, layout, f"{what}.{op}")
        else:
            attrs = {fname: default for fname, _, default in layout}
    return Node(name=name, op=op, attrs=attrs,
                inputs=_index_list(rd, tab, S.N_INPUTS, f"{what}.inputIndex"),
                outputs=_index_list(rd, tab, S.N_OUTPUTS, f"{what}.outputIndex"),
                quant_type=rd.scalar(tab, S.N_QUANT_TYPE, "i32", 0, f"{what}.quantType"))


def read_v0(buf: bytes | memoryview) -> Graph:
    """Parse a legacy-schema buffer; primitives outside ``V0_TABLES`` keep their name and no attributes."""
    try:
        return _read_v0(FlatReader(buf))
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise CorruptModel(f"unreadable FlatBuffer ({exc})") from None


def _read_v0(rd: FlatReader) -> Graph:
    meta = rd.root()
    tensors = [_tensor(rd, t, i) for i, t in enumerate(rd.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors"))]
    nodes = [_v0_node(rd, n, i) for i, n in enumerate(rd.tables(meta, S.MG_NODES, "MetaGraph.nodes"))]
    subgraphs = [
        SubGraph(name=rd.string(g, S.SG_NAME, f"subGraph[{i}].name"),
                 inputs=_index_list(rd, g, S.SG_INPUTS, f"subGraph[{i}].inputIndices"),
                 outputs=_index_list(rd, g, S.SG_OUTPUTS, f"subGraph[{i}].outputIndices"),
                 nodes=_index_list(rd, g, S.SG_NODES, f"subGraph[{i}].nodeIndices"),
                 tensors=_index_list(rd, g, S.SG_TENSORS, f"subGraph[{i}].tensorIndices"))
        for i, g in enumerate(rd.tables(meta, S.MG_SUBGRAPHS, "MetaGraph.subGraph"))
    ]
    graph = Graph(name=rd.string(meta, S.MG_NAME, "MetaGraph.name"),
                  version=rd.string(meta, S.MG_VERSION, "MetaGraph.version"),
                  fmk=rd.scalar(meta, S.MG_FMK, "i32", 0, "MetaGraph.fmkType"),
                  inputs=_index_list(rd, meta, S.MG_INPUTS, "MetaGraph.inputIndex"),
                  outputs=_index_list(rd, meta, S.MG_OUTPUTS, "MetaGraph.outputIndex"),
                  nodes=nodes, tensors=tensors, subgraphs=subgraphs)
    _check_indices(graph)
    return graph


def _check_indices(graph: Graph) -> None:
    count = len(graph.tensors)
    refs = [("MetaGraph.inputIndex", graph.inputs), ("MetaGraph.outputIndex", graph.outputs)]
    refs += [(f"node {n.name or i} inputs", n.inputs) for i, n in enumerate(graph.nodes)]
    refs += [(f"node {n.name or i} outputs", n.outputs) for i, n in enumerate(graph.nodes)]
    for what, indices in refs:
        bad = [i for i in indices if i >= count]
        if bad:
            raise CorruptModel(f"{what} refer to tensor {bad[0]}, but the file holds {count} tensors")
    for i, sub in enumerate(graph.subgraphs):
        if any(n >= len(graph.nodes) for n in sub.nodes) or any(t >= count for t in sub.tensors):
            raise CorruptModel(f"subGraph[{i}] refers to nodes or tensors the file does not hold")
    if not graph.inputs or not graph.outputs:
        raise CorruptModel(f"the graph lists {len(graph.inputs)} inputs and {len(graph.outputs)} outputs")


def tensor_names(buf: bytes | memoryview) -> list[str]:
    """Names of ``allTensors`` in file order (both generations keep the Tensor layout)."""
    try:
        rd = FlatReader(buf)
        meta = rd.root()
        return [rd.string(t, S.T_NAME, f"allTensors[{i}].name")
                for i, t in enumerate(rd.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors"))]
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise CorruptModel(f"unreadable FlatBuffer ({exc})") from None

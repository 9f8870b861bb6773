"""Read a ``.ms`` buffer (either schema generation) into a :class:`~.graph.Graph`.

Every offset is checked against the buffer before it is followed, and the flatbuffers runtime's own exceptions
are turned into :class:`CorruptFlatBuffer`, so a truncated or hostile file fails with a sentence, not a traceback.
"""
from __future__ import annotations

import contextlib
import gc
import struct
from collections.abc import Iterator
from typing import Any

from ..flatbuf import CorruptFlatBuffer, FlatReader, Table
from . import schema as S
from .graph import Graph, Node, SubGraph, Tensor

_MAX_DIMS = 16


def _tensor(rd: FlatReader, tab: Table, index: int) -> Tensor:
    what = f"allTensors[{index}]"
    dims = rd.values(tab, S.T_DIMS, "[i32]", f"{what}.dims")
    if len(dims) > _MAX_DIMS:
        raise CorruptFlatBuffer(f"{what} claims {len(dims)} dimensions")
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
        quant_clusters=rd.values(tab, S.T_CLUSTERS, "[f32]", f"{what}.quantClusters"),
    )


def _index_list(rd: FlatReader, tab: Table, slot: int, what: str) -> list[int]:
    return rd.values(tab, slot, "[u32]", what)


def _node(rd: FlatReader, tab: Table, index: int, primitives: tuple[str, ...],
          tables: dict[str, tuple[S.Field, ...]], open_union: bool) -> Node:
    what = f"nodes[{index}]"
    name = rd.string(tab, S.N_NAME, f"{what}.name")
    prim = rd.sub_table(tab, S.N_PRIMITIVE, f"{what}.primitive")
    if prim is None:
        raise CorruptFlatBuffer(f"{what} ({name or 'unnamed'}) has no primitive")
    type_id = rd.scalar(prim, S.P_TYPE, "u8", 0, f"{what}.primitive.value_type")
    if 1 <= type_id <= len(primitives):
        op = primitives[type_id - 1]
    elif open_union and type_id > len(primitives):
        op = f"{S.UNKNOWN_PRIMITIVE}{type_id}"  # a member appended by a newer release
    else:
        raise CorruptFlatBuffer(f"{what} ({name or 'unnamed'}) has primitive type {type_id}, unknown to the schema")
    attrs: dict[str, Any] = {}
    layout = tables.get(op)
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


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Reading and writing a graph allocates millions of small objects without reference cycles; the cyclic
    collector's repeated passes over them took ~30 % of a 100k-node upgrade. Reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@without_cyclic_gc()
def read_v0(buf: bytes | memoryview) -> Graph:
    """Parse a legacy-schema buffer; primitives outside ``V0_TABLES`` keep their name and no attributes."""
    return _read(buf, S.V0_PRIMITIVES, S.V0_TABLES, open_union=False)


def read_current(buf: bytes | memoryview) -> Graph:
    """Parse a current-schema (``MSL2``) buffer; attributes of primitives outside ``CURRENT_TABLES`` are not read,
    and members appended to the union after ``CURRENT_PRIMITIVES`` are named ``UNKNOWN_PRIMITIVE<type id>``."""
    return _read(buf, S.CURRENT_PRIMITIVES, S.CURRENT_TABLES, open_union=True)


def _read(buf: bytes | memoryview, primitives: tuple[str, ...], tables: dict[str, tuple[S.Field, ...]],
          open_union: bool) -> Graph:
    try:
        rd = FlatReader(buf)
        meta = rd.root("MetaGraph")
        tensors = [_tensor(rd, t, i) for i, t in enumerate(rd.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors"))]
        nodes = [_node(rd, n, i, primitives, tables, open_union)
                 for i, n in enumerate(rd.tables(meta, S.MG_NODES, "MetaGraph.nodes"))]
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
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise CorruptFlatBuffer(f"unreadable FlatBuffer ({exc})") from None
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
            raise CorruptFlatBuffer(f"{what} refer to tensor {bad[0]}, but the file holds {count} tensors")
    for i, sub in enumerate(graph.subgraphs):
        if any(n >= len(graph.nodes) for n in sub.nodes) or any(t >= count for t in sub.tensors):
            raise CorruptFlatBuffer(f"subGraph[{i}] refers to nodes or tensors the file does not hold")
    if not graph.inputs or not graph.outputs:
        raise CorruptFlatBuffer(f"the graph lists {len(graph.inputs)} inputs and {len(graph.outputs)} outputs")


def tensor_names(buf: bytes | memoryview) -> list[str]:
    """Names of ``allTensors`` in file order (both generations keep the Tensor layout)."""
    try:
        rd = FlatReader(buf)
        meta = rd.root("MetaGraph")
        return [rd.string(t, S.T_NAME, f"allTensors[{i}].name")
                for i, t in enumerate(rd.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors"))]
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise CorruptFlatBuffer(f"unreadable FlatBuffer ({exc})") from None

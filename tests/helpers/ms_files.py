"""Byte-level edits of model files for the corruption tests."""


def patch_u32(data: bytes, pos: int, value: int) -> bytes:
    """`data` with the little-endian uint32 at `pos` replaced."""
    return data[:pos] + value.to_bytes(4, "little") + data[pos + 4 :]


def with_node_input(data: bytes, node: int, position: int, tensor: int) -> bytes:
    """A current-schema `.ms` whose node `node` reads tensor `tensor` as its input number `position`."""
    from fiftyone_mslite.modelfiles.flatbuf import FlatReader
    from fiftyone_mslite.modelfiles.legacy import schema as S

    rd = FlatReader(data)
    table = rd.table_in_vector(rd.root("MetaGraph"), S.MG_NODES, node, "MetaGraph.nodes")
    start, length = rd.vector_span(table, S.N_INPUTS, 4, "inputIndex")
    assert position < length
    return patch_u32(data, start + 4 * position, tensor)

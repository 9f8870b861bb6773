"""Pure-Python inspector for MindSpore Lite ``.ms`` model files.

Why: the catalog must tell a user what a ``.ms`` file holds (inputs, outputs, dtypes, layout) and whether a
2.x runtime will load it *before* a MindSpore Lite runtime is installed, and must refuse foreign files with a
message that says what to do instead of a raw ``struct.error``.

A ``.ms`` file is a FlatBuffer whose root table is ``MetaGraph`` from MindSpore's
``mindspore/lite/schema/model.fbs``. Fields are read by their vtable slot, with every offset bounds-checked
against the buffer, so truncated or hostile files raise :class:`MsInspectError` and nothing else.

Schema generations, told apart by the FlatBuffer file identifier (bytes 4..8):

* ``MSL2`` -- the current schema (``model.fbs``, unified operator prototypes, MindSpore Lite >= 1.2).
  2.x runtimes verify buffers with ``schema::VerifyMetaGraphBuffer``, which requires this identifier.
* ``MSL1`` or no identifier -- the legacy schema kept as ``model_v0.fbs`` (namespace
  ``mindspore.schema.v0``, which declares no ``file_identifier`` so that 1.x runtimes built with
  ``ENABLE_V0`` could still verify both old variants). MindSpore 1.0.x converters wrote no identifier,
  1.1.x wrote ``MSL1``. 2.x runtimes dropped the v0 fallback, so these files are reported
  ``schema="v0"``, ``loadable=False``.

``MetaGraph`` and ``Tensor`` keep the same slot order in both generations, so one reader serves both.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flatbuffers import util

from ..errors import MsInspectError
from . import ms_compat
from .flatbuf import CorruptFlatBuffer, FlatReader, Table

__all__ = ["MsInspectError", "MsModelInfo", "MsTensorInfo", "inspect_ms"]

IDENT_CURRENT = "MSL2"
IDENT_LEGACY = "MSL1"

# MetaGraph slots (model.fbs and model_v0.fbs agree): name, version, fmkType, inputIndex, outputIndex,
# mempoolSize, nodes, allTensors, subGraph.
_MG_NAME, _MG_VERSION, _MG_INPUTS, _MG_OUTPUTS, _MG_NODES, _MG_TENSORS, _MG_SUBGRAPHS = 0, 1, 3, 4, 6, 7, 8
# Tensor slots: nodeType, dataType, dims, format, refCount, offset, data, quantParams, quantClusters, name.
_T_DTYPE, _T_DIMS, _T_FORMAT, _T_DATA, _T_QUANT_PARAMS, _T_QUANT_CLUSTERS, _T_NAME = 1, 2, 3, 6, 7, 8, 9
# CNode slots: name, nodeType, primitive, inputIndex, outputIndex, quantType.
_N_NAME, _N_PRIMITIVE, _N_INPUTS, _N_OUTPUTS = 0, 2, 3, 4

# MindSpore TypeId values (mindspore/core/ir/dtype/type_id.h, mindspore/include/api/data_type.h).
# Only ids that are stable across releases are named; bfloat16/complex moved between releases.
_DTYPES: dict[int, str] = {
    12: "string",
    30: "bool",
    32: "int8",
    33: "int16",
    34: "int32",
    35: "int64",
    37: "uint8",
    38: "uint16",
    39: "uint32",
    40: "uint64",
    42: "float16",
    43: "float32",
    44: "float64",
}

# schema Format enum: ops_types.fbs (current) / ops_v0.fbs (legacy, where NC4HW4 = 100).
_FORMATS_V2 = (
    "NCHW",
    "NHWC",
    "NHWC4",
    "HWKC",
    "HWCK",
    "KCHW",
    "CKHW",
    "KHWC",
    "CHWK",
    "HW",
    "HW4",
    "NC",
    "NC4",
    "NC4HW4",
    "NUM_OF_FORMAT",
    "NCDHW",
)
_FORMATS_V0 = dict(enumerate(_FORMATS_V2[:13])) | {100: "NC4HW4"}

# Upper bounds that keep a hostile header from making us loop for minutes over garbage.
_MAX_PADDING = 1 << 20
_MAX_IO = 4096
_MAX_DIMS = 64

_LEGACY_HINT = (
    "it uses the legacy MindSpore Lite schema (model_v0.fbs: identifier 'MSL1' or none, written by "
    "MindSpore Lite 1.0/1.1-era converters), which MindSpore Lite 2.x runtimes refuse to load; upgrade it "
    "(`fiftyone-mslite upgrade FILE -o NEW.ms`; load_model, predict and models fetch do this by themselves)"
)


@dataclass(frozen=True)
class MsTensorInfo:
    """One graph input or output as stored in the file (dims as written; -1 marks a dynamic axis)."""

    name: str
    dims: tuple[int, ...]
    dtype: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dims": list(self.dims), "dtype": self.dtype, "format": self.format}


@dataclass(frozen=True)
class MsModelInfo:
    """What a ``.ms`` file says about itself, read without a MindSpore runtime.

    ``version`` is the converter version string stored in ``MetaGraph.version``; it is empty when the
    converter did not record one (MindSpore Lite 2.0.0's converter leaves it unset).
    ``loadable``: whether MindSpore Lite 2.0.0 loads the file as it is — True, False, or None when a static
    reading cannot decide (`trial_load` decides). ``findings`` lists what 2.0.0 lacks in it and whether the
    bridge rewrites each (`ms_compat.Finding`); ``padding`` counts zero bytes before the FlatBuffer.
    ``hint`` explains why ``loadable`` is not True and what to do; it is empty for loadable files.
    """

    path: Path
    size_bytes: int
    identifier: str
    schema: str
    version: str
    name: str
    inputs: tuple[MsTensorInfo, ...]
    outputs: tuple[MsTensorInfo, ...]
    node_count: int
    loadable: bool | None
    tensor_count: int = 0
    subgraph_count: int = 0
    hint: str = ""
    padding: int = 0
    findings: tuple[ms_compat.Finding, ...] = ()
    ops: tuple[tuple[str, int], ...] = ()
    decided_by: str = "static reading"

    @property
    def bridgeable(self) -> bool:
        """Whether the bridge makes the file runnable (everything 2.0.0 lacks in it has a rewrite)."""
        return self.loadable is not True and (self.schema == "v0" or self.padding > 0 or bool(self.findings)) and \
            all(f.bridged for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (paths as strings, tuples as lists)."""
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "identifier": self.identifier,
            "schema": self.schema,
            "version": self.version,
            "name": self.name,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "node_count": self.node_count,
            "tensor_count": self.tensor_count,
            "subgraph_count": self.subgraph_count,
            "loadable": self.loadable,
            "decided_by": self.decided_by,
            "padding": self.padding,
            "findings": [f.to_dict() for f in self.findings],
            "bridgeable": self.bridgeable,
            "ops": dict(self.ops),
            "hint": self.hint,
        }

    def check_loadable(self) -> MsModelInfo:
        """Raise MsInspectError with the hint when a 2.x runtime would refuse this file; else return self."""
        if self.loadable is False:
            raise MsInspectError(self.hint or f"{self.path.name} cannot be loaded by MindSpore Lite 2.x")
        return self


# Tags of ModelProto fields that may follow ir_version: producer_name, producer_version, domain,
# model_version, doc_string, graph, opset_import, metadata_props, training_info, functions.
_ONNX_NEXT_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0x7A, 0x82})


def _foreign_format(head: bytes, path: Path) -> str | None:
    """Name a well-known non-.ms format from its first bytes (None when it is none of them)."""
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "a TFLite model"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (e.g. a PyTorch .pt checkpoint)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (e.g. a Keras .h5 model)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    suffix = path.suffix.lower()
    if suffix == ".onnx" or (head[0] == 0x08 and 0 < head[1] < 0x20 and head[2] in _ONNX_NEXT_TAGS):
        # ONNX ModelProto: field 1 ir_version (a small varint, tag 0x08) then another ModelProto field.
        # A FlatBuffer starting with 0x08 has root offset 8, i.e. bytes 1..3 are zero.
        return "an ONNX model"
    if suffix == ".mindir" or head[:1] == b"\x0a":
        # MindIR ModelProto: field 1 ir_version is a string (tag 0x0a). A FlatBuffer root offset is
        # 4-aligned, so a real .ms file never starts with 0x0a.
        return "a MindIR (protobuf) model"
    return None


def leading_padding(buf: bytes | memoryview) -> int:
    """How many zero bytes precede the FlatBuffer (files cut out of app packages carry some): the start of the
    first 'MSL1'/'MSL2' identifier at bytes 4..8 of what follows zeros; 0 when there is none."""
    head = bytes(buf[:_MAX_PADDING + 8])
    zeros = len(head) - len(head.lstrip(b"\0"))
    if zeros < 4 or head[4:8] in (b"MSL1", b"MSL2"):
        return 0
    for start in range(max(zeros - 3, 1), zeros + 1):  # the root offset may itself begin with zero bytes
        if head[start + 4:start + 8] in (b"MSL1", b"MSL2"):
            return start
    return 0


def _identifier(buf: memoryview) -> str:
    """The FlatBuffer file identifier when it is printable ASCII, else "" (FlatBuffers without one)."""
    raw = bytes(util.GetBufferIdentifier(buf, 0))
    return raw.decode("ascii") if all(0x20 < c < 0x7F for c in raw) else ""


def _tensor_info(rd: FlatReader, meta: Table, index: int, legacy: bool) -> MsTensorInfo:
    tensor = rd.table_in_vector(meta, _MG_TENSORS, index, "MetaGraph.allTensors")
    what = f"allTensors[{index}]"
    dtype_id = rd.scalar(tensor, _T_DTYPE, "i32", 0, f"{what}.dataType")
    fmt_id = rd.scalar(tensor, _T_FORMAT, "i32", 0, f"{what}.format")
    dims = rd.values(tensor, _T_DIMS, "[i32]", f"{what}.dims", limit=_MAX_DIMS)
    formats = _FORMATS_V0 if legacy else dict(enumerate(_FORMATS_V2))
    return MsTensorInfo(
        name=rd.string(tensor, _T_NAME, f"{what}.name"),
        dims=tuple(dims),
        dtype=_DTYPES.get(dtype_id, f"unknown({dtype_id})"),
        format=formats.get(fmt_id, f"unknown({fmt_id})"),
    )


def _parse(buf: memoryview, path: Path, identifier: str, legacy: bool, padding: int = 0) -> MsModelInfo:
    rd = FlatReader(buf)
    meta = rd.table(rd.u32(0, "root offset"), "MetaGraph")
    version = rd.string(meta, _MG_VERSION, "MetaGraph.version")
    inputs = rd.values(meta, _MG_INPUTS, "[u32]", "MetaGraph.inputIndex", limit=_MAX_IO)
    outputs = rd.values(meta, _MG_OUTPUTS, "[u32]", "MetaGraph.outputIndex", limit=_MAX_IO)
    info = MsModelInfo(
        path=path,
        size_bytes=len(buf) + padding,
        identifier=identifier,
        schema="v0" if legacy else "v2",
        version=version,
        name=rd.string(meta, _MG_NAME, "MetaGraph.name"),
        inputs=tuple(_tensor_info(rd, meta, i, legacy) for i in inputs),
        outputs=tuple(_tensor_info(rd, meta, i, legacy) for i in outputs),
        node_count=rd.vector_len(meta, _MG_NODES, 4, "MetaGraph.nodes"),
        loadable=not legacy,
        tensor_count=rd.vector_len(meta, _MG_TENSORS, 4, "MetaGraph.allTensors"),
        subgraph_count=rd.vector_len(meta, _MG_SUBGRAPHS, 4, "MetaGraph.subGraph"),
        hint=f"{path.name}: {_LEGACY_HINT}" if legacy else "",
        padding=padding,
    )
    if not info.inputs or not info.outputs:
        raise CorruptFlatBuffer(f"the graph lists {len(info.inputs)} inputs and {len(info.outputs)} outputs")
    _check_structure(rd, meta)
    if legacy:
        return replace(info, loadable=False) if not padding else _padded(info)
    return _verdict(info, ms_compat.survey(ms_compat.read_graph(buf)))


def _padded(info: MsModelInfo) -> MsModelInfo:
    detail = (f"{info.padding} zero bytes precede the model (a file taken out of an app package), which "
              "MindSpore Lite 2.0.0 refuses")
    pad = ms_compat.Finding("padding", detail, True, "skipped")
    hint = f"{info.path.name}: {detail}; the bridge skips them (`fiftyone-mslite upgrade FILE -o NEW.ms`; " \
           "load_model, predict and models fetch do this by themselves)"
    return replace(info, loadable=False, findings=(pad, *info.findings), hint=info.hint or hint)


def _verdict(info: MsModelInfo, survey: ms_compat.Survey) -> MsModelInfo:
    """Fold the survey of a current-schema graph into the info: loadable, findings, hint."""
    info = replace(info, findings=tuple(survey.findings), ops=tuple(sorted(survey.ops.items())),
                   loadable=survey.loads)
    if info.padding:
        return _padded(info)
    name = info.path.name
    if survey.refusals:
        hint = f"{name}: {'; '.join(f.detail for f in survey.refusals)}"
    elif survey.findings:
        hint = (f"{name}: {'; '.join(f.detail for f in survey.findings)}; the bridge rewrites it "
                "(`fiftyone-mslite upgrade FILE -o NEW.ms`; load_model, predict and models fetch do this by "
                "themselves)")
    elif survey.undecided:
        hint = f"{name}: a static reading cannot tell whether MindSpore Lite 2.0.0 loads it ({survey.undecided})"
    else:
        hint = ""
    return replace(info, hint=hint)


def _check_structure(rd: FlatReader, meta: Table) -> None:
    """Bounds-check every tensor, node and subgraph the runtime would touch (weights included, not copied).

    Why: a truncated download loses the *end* of the buffer, and the FlatBuffer builder puts the first
    objects it wrote (index vectors, early weights) there; walking everything catches the cut wherever it is.
    """
    for i, tensor in enumerate(rd.tables(meta, _MG_TENSORS, "MetaGraph.allTensors")):
        what = f"allTensors[{i}]"
        rd.vector_len(tensor, _T_DIMS, 4, f"{what}.dims")
        rd.vector_len(tensor, _T_DATA, 1, f"{what}.data")
        rd.vector_len(tensor, _T_QUANT_PARAMS, 4, f"{what}.quantParams")
        rd.vector_len(tensor, _T_QUANT_CLUSTERS, 4, f"{what}.quantClusters")
        rd.vector_len(tensor, _T_NAME, 1, f"{what}.name")
    for i, node in enumerate(rd.tables(meta, _MG_NODES, "MetaGraph.nodes")):
        what = f"nodes[{i}]"
        rd.vector_len(node, _N_NAME, 1, f"{what}.name")
        rd.vector_len(node, _N_INPUTS, 4, f"{what}.inputIndex")
        rd.vector_len(node, _N_OUTPUTS, 4, f"{what}.outputIndex")
        prim_pos = rd.field_pos(node, _N_PRIMITIVE, 4, f"{what}.primitive")
        if prim_pos is not None:
            rd.table(prim_pos + rd.u32(prim_pos, f"{what}.primitive"), f"{what}.primitive")
    for i, graph in enumerate(rd.tables(meta, _MG_SUBGRAPHS, "MetaGraph.subGraph")):
        what = f"subGraph[{i}]"
        rd.vector_len(graph, 0, 1, f"{what}.name")
        for slot in range(1, 5):
            rd.vector_len(graph, slot, 4, f"{what} index vector {slot}")


def inspect_ms(path: str | Path) -> MsModelInfo:
    """Read a ``.ms`` file's header, graph inputs/outputs and schema generation without a runtime.

    The file is memory-mapped, so only the header tables are paged in; weights are never copied.
    Raises MsInspectError for missing, empty, truncated, corrupt or foreign files.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MsInspectError(f"{path}: cannot read the file ({exc.strerror or exc}); check the path") from exc
    if not path.is_file():
        raise MsInspectError(f"{path} is not a regular file; pass the path of a MindSpore Lite .ms model")
    if size < 16:
        found = "empty" if size == 0 else f"only {size} bytes long"
        raise MsInspectError(
            f"{path.name} is {found}, too small to be a MindSpore Lite .ms model; "
            "the download or conversion was probably interrupted: fetch or convert it again"
        )
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                return _inspect_buffer(buf, path)
            finally:
                buf.release()
    except OSError as exc:
        raise MsInspectError(f"{path}: cannot read the file ({exc.strerror or exc}); check it") from exc


def _inspect_buffer(buf: memoryview, path: Path) -> MsModelInfo:
    padding = leading_padding(buf)
    if padding:
        with buf[padding:] as model:
            return _inspect_model(model, path, padding)
    if len(bytes(buf[:8]).lstrip(b"\0")) < 5:
        zeros = len(buf) - len(bytes(buf[:_MAX_PADDING]).lstrip(b"\0"))
        raise MsInspectError(
            f"{path.name} starts with {zeros} zero bytes and no MindSpore Lite model follows them (padding with "
            "nothing behind it): the file was cut out of its package or download wrongly; take it out again or "
            "fetch it from its source")
    return _inspect_model(buf, path, 0)


def _inspect_model(buf: memoryview, path: Path, padding: int) -> MsModelInfo:
    head = bytes(buf[:16])
    identifier = _identifier(buf)
    if identifier not in (IDENT_CURRENT, IDENT_LEGACY):
        foreign = _foreign_format(head, path)
        if foreign is not None:
            raise MsInspectError(
                f"{path.name} is {foreign}, not a MindSpore Lite .ms: "
                "convert it first with `fiftyone-mslite convert`"
            )
        if identifier.startswith("MSL"):
            raise MsInspectError(
                f"{path.name} has the MindSpore Lite identifier {identifier!r}, newer than this inspector "
                f"knows ({IDENT_CURRENT}); upgrade fiftyone-mslite or re-convert with MindSpore Lite 2.x"
            )
        if identifier:
            raise MsInspectError(
                f"{path.name} is not a MindSpore Lite .ms model: its FlatBuffer identifier is "
                f"{identifier!r}, expected {IDENT_CURRENT!r}; "
                "convert the source model with `fiftyone-mslite convert`"
            )
    legacy = identifier != IDENT_CURRENT
    try:
        info = _parse(buf, path, identifier, legacy, padding)
    except (CorruptFlatBuffer, struct.error, IndexError, ValueError, OverflowError) as exc:
        if identifier:
            raise MsInspectError(
                f"{path.name} starts like a MindSpore Lite .ms model (identifier {identifier!r}) but is "
                f"truncated or corrupt: {exc}; download or convert it again"
            ) from None
        raise MsInspectError(
            f"{path.name} is not a MindSpore Lite .ms model (no 'MSL2' identifier at bytes 4..8 and the "
            f"content is no MindSpore Lite graph: {exc}); convert the source model with "
            "`fiftyone-mslite convert`"
        ) from None
    if not identifier and not (info.version.startswith("MindSpore") or path.suffix.lower() == ".ms"):
        # Identifier-less FlatBuffers are only trusted when they say they come from MindSpore.
        raise MsInspectError(
            f"{path.name} is not a MindSpore Lite .ms model (no 'MSL2' identifier at bytes 4..8 and no "
            "MindSpore version string); convert the source model with `fiftyone-mslite convert`"
        )
    return info

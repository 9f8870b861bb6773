"""ms_inspect without a runtime: crafted files (empty, tiny, corrupted, foreign formats, legacy-schema (v0)
FlatBuffers); the real-converter cases are in tests/integration/test_ms_inspect_runtime.py."""

from __future__ import annotations

import random
from pathlib import Path

import flatbuffers
import pytest
from flatbuffers.table import Table
from helpers.ms_files import patch_u32

from fiftyone_mslite.modelfiles.ms_inspect import MsInspectError, MsTensorInfo, inspect_ms

# ---------------------------------------------------------------------------------------------------------
# real files from the converter


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------------------
# crafted FlatBuffers (no converter needed)


def _tensor(b: flatbuffers.Builder, name: str, dims, dtype: int, fmt: int) -> int:
    name_off = b.CreateString(name)
    b.StartVector(4, len(dims), 4)
    for d in reversed(dims):
        b.PrependInt32(d)
    dims_off = b.EndVector()
    b.StartObject(10)  # Tensor: nodeType, dataType, dims, format, refCount, offset, data, quant*, name
    b.PrependInt32Slot(0, 2, 0)
    b.PrependInt32Slot(1, dtype, 0)
    b.PrependUOffsetTRelativeSlot(2, dims_off, 0)
    b.PrependInt32Slot(3, fmt, 0)
    b.PrependUOffsetTRelativeSlot(9, name_off, 0)
    return b.EndObject()


def _uints(b: flatbuffers.Builder, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependUint32(v)
    return b.EndVector()


def _tables(b: flatbuffers.Builder, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def build_metagraph(
    identifier: bytes | None,
    version: str | None,
    *,
    tensors=(("in", [1, 224, 224, 3], 37, 1), ("out", [1, 10], 43, 0)),
    inputs=(0,),
    outputs=(1,),
    name: str = "crafted",
    computes: bool = True,
) -> bytes:
    """A MetaGraph laid out per model.fbs / model_v0.fbs (same slots), finished with `identifier`. With
    `computes`, its one node (an Activation) computes the outputs from the inputs; else the node is empty."""
    b = flatbuffers.Builder(256)
    tensor_offs = [_tensor(b, *t) for t in tensors]
    all_tensors = _tables(b, tensor_offs)
    in_off, out_off = _uints(b, inputs), _uints(b, outputs)
    if computes:
        node_in, node_out = _uints(b, inputs), _uints(b, outputs)
        b.StartObject(2)  # Primitive: value_type, value
        b.PrependUint8Slot(0, 2, 0)  # Activation (attributes absent)
        primitive = b.EndObject()
    b.StartObject(6)  # CNode: name, nodeType, primitive, inputIndex, outputIndex, quantType
    if computes:
        b.PrependUOffsetTRelativeSlot(2, primitive, 0)
        b.PrependUOffsetTRelativeSlot(3, node_in, 0)
        b.PrependUOffsetTRelativeSlot(4, node_out, 0)
    node = b.EndObject()
    nodes = _tables(b, [node])
    name_off = b.CreateString(name)
    version_off = b.CreateString(version) if version is not None else None
    b.StartObject(9)
    b.PrependUOffsetTRelativeSlot(0, name_off, 0)
    if version_off is not None:
        b.PrependUOffsetTRelativeSlot(1, version_off, 0)
    b.PrependInt32Slot(2, 2, 0)
    b.PrependUOffsetTRelativeSlot(3, in_off, 0)
    b.PrependUOffsetTRelativeSlot(4, out_off, 0)
    b.PrependUOffsetTRelativeSlot(6, nodes, 0)
    b.PrependUOffsetTRelativeSlot(7, all_tensors, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=identifier)
    return bytes(b.Output())


def test_crafted_current_file(tmp_path):
    path = _write(tmp_path / "crafted.ms", build_metagraph(b"MSL2", "MindSpore Lite 2.0.0"))
    info = inspect_ms(path)
    assert (info.identifier, info.schema, info.loadable, info.version) == (
        "MSL2",
        "v2",
        True,
        "MindSpore Lite 2.0.0",
    )
    assert info.name == "crafted"
    assert info.inputs == (MsTensorInfo("in", (1, 224, 224, 3), "uint8", "NHWC"),)
    assert info.outputs == (MsTensorInfo("out", (1, 10), "float32", "NCHW"),)
    assert info.node_count == 1 and info.tensor_count == 2


def test_output_nothing_computes_is_not_loadable(tmp_path):
    info = inspect_ms(_write(tmp_path / "empty.ms", build_metagraph(b"MSL2", "MindSpore Lite 2.0.0", computes=False)))
    assert info.loadable is False and not info.bridgeable
    assert [f.kind for f in info.findings] == ["unknown-op", "unreachable-output"]
    assert "graph output 'out' is not computed from the graph inputs" in info.hint


@pytest.mark.parametrize(
    ("dtype", "fmt", "expected"),
    [
        (32, 13, ("int8", "NC4HW4")),
        (34, 0, ("int32", "NCHW")),
        (42, 1, ("float16", "NHWC")),
        (99, 77, ("unknown(99)", "unknown(77)")),
    ],
)
def test_dtype_and_format_names(tmp_path, dtype, fmt, expected):
    data = build_metagraph(b"MSL2", None, tensors=(("x", [1, 4], dtype, fmt), ("y", [1], 43, 0)))
    info = inspect_ms(_write(tmp_path / "t.ms", data))
    assert (info.inputs[0].dtype, info.inputs[0].format) == expected


def test_legacy_msl1_file_is_v0_and_not_loadable(tmp_path):
    legacy = build_metagraph(
        b"MSL1", "MindSpore Lite 1.1.0", tensors=(("in", [1, 3, 32, 32], 43, 100), ("out", [1, 10], 43, 0))
    )
    info = inspect_ms(_write(tmp_path / "old.ms", legacy))
    assert (info.identifier, info.schema, info.loadable) == ("MSL1", "v0", False)
    assert info.version == "MindSpore Lite 1.1.0"
    assert info.inputs[0].format == "NC4HW4"  # ops_v0.fbs: NC4HW4 = 100
    assert "old.ms" in info.hint and "2.x" in info.hint and "fiftyone-mslite upgrade" in info.hint
    assert info.to_dict()["loadable"] is False
    with pytest.raises(MsInspectError, match="old.ms.*legacy"):
        info.check_loadable()


def test_legacy_file_without_identifier_is_v0(tmp_path):
    """MindSpore Lite 1.0 wrote no file identifier; the version string identifies the producer."""
    data = build_metagraph(None, "MindSpore Lite 1.0.0")
    info = inspect_ms(_write(tmp_path / "model.bin", data))
    assert (info.identifier, info.schema, info.loadable) == ("", "v0", False)
    assert info.version == "MindSpore Lite 1.0.0"
    assert info.inputs[0].dims == (1, 224, 224, 3)


def test_identifierless_flatbuffer_without_mindspore_version_is_refused(tmp_path):
    data = build_metagraph(None, "something else")
    with pytest.raises(MsInspectError, match="other.bin is not a MindSpore Lite .ms model"):
        inspect_ms(_write(tmp_path / "other.bin", data))


def test_graph_index_out_of_range(tmp_path):
    data = build_metagraph(b"MSL2", None, inputs=(7,))
    with pytest.raises(MsInspectError, match="allTensors index 7 is out of range"):
        inspect_ms(_write(tmp_path / "idx.ms", data))


def test_graph_without_inputs_is_refused(tmp_path):
    data = build_metagraph(b"MSL2", None, inputs=())
    with pytest.raises(MsInspectError, match="0 inputs"):
        inspect_ms(_write(tmp_path / "noin.ms", data))


def _vector_start(data: bytes, slot: int) -> int:
    """Byte position of the length word of MetaGraph vector field `slot` (via flatbuffers' own Table)."""
    root = Table(data, int.from_bytes(data[:4], "little"))
    return root.Vector(root.Offset(4 + 2 * slot)) - 4


@pytest.mark.parametrize(("slot", "field"), [(7, "allTensors"), (3, "inputIndex"), (6, "nodes")])
def test_huge_vector_length_is_refused(tmp_path, slot, field):
    data = build_metagraph(b"MSL2", None)
    assert inspect_ms(_write(tmp_path / "ok.ms", data)).loadable
    bad = patch_u32(data, _vector_start(data, slot), 0x3FFFFFFF)
    with pytest.raises(MsInspectError, match=f"huge.ms .*corrupt.*{field}"):
        inspect_ms(_write(tmp_path / "huge.ms", bad))


def test_vtable_pointing_outside_the_file(tmp_path):
    data = build_metagraph(b"MSL2", None)
    root = int.from_bytes(data[:4], "little")
    bad = patch_u32(data, root, 0x7FFFFFF0)  # MetaGraph's soffset to its vtable
    with pytest.raises(MsInspectError, match="vtable of MetaGraph"):
        inspect_ms(_write(tmp_path / "vt.ms", bad))


# ---------------------------------------------------------------------------------------------------------
# not .ms at all


@pytest.mark.parametrize("size", [0, 3, 7, 15])
def test_empty_and_tiny_files(tmp_path, size):
    path = _write(tmp_path / "small.ms", b"\x01" * size)
    with pytest.raises(MsInspectError, match="small.ms is (empty|only)") as err:
        inspect_ms(path)
    assert "again" in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MsInspectError, match="nope.ms"):
        inspect_ms(tmp_path / "nope.ms")
    with pytest.raises(MsInspectError, match="not a regular file"):
        inspect_ms(tmp_path)


def test_random_bytes(tmp_path):
    rng = random.Random(1234)
    path = tmp_path / "random.ms"
    for size in [16, 17, 64, 100, 1000, 4096, 65536]:
        for _ in range(20):
            _write(path, bytes(rng.getrandbits(8) for _ in range(size)))
            with pytest.raises(MsInspectError, match="random.ms"):
                inspect_ms(path)
        # Random bytes wearing a valid identifier must fail as "corrupt", not crash.
        data = bytearray(rng.getrandbits(8) for _ in range(size))
        data[4:8] = b"MSL2"
        _write(path, bytes(data))
        with pytest.raises(MsInspectError, match="truncated or corrupt"):
            inspect_ms(path)


def test_onnx_file(tiny_onnx, tmp_path):
    with pytest.raises(MsInspectError, match="tiny.onnx is an ONNX model, not a MindSpore Lite .ms: convert"):
        inspect_ms(tiny_onnx)
    # Renamed to .ms it is still recognised from its content.
    renamed = _write(tmp_path / "renamed.ms", tiny_onnx.read_bytes())
    with pytest.raises(MsInspectError, match="renamed.ms is an ONNX model"):
        inspect_ms(renamed)


def test_mindir_protobuf(tmp_path):
    # MindIR ModelProto starts with field 1 (ir_version, a string): tag 0x0a.
    data = b"\x0a\x05" + b"1.0.0" + b"\x12\x0bMindSpore  " + bytes(40)
    with pytest.raises(MsInspectError, match="net.mindir is a MindIR .*fiftyone-mslite convert"):
        inspect_ms(_write(tmp_path / "net.mindir", data))
    with pytest.raises(MsInspectError, match="MindIR"):
        inspect_ms(_write(tmp_path / "net.ms", data))


def test_tflite_header(tmp_path):
    data = (0x1C).to_bytes(4, "little") + b"TFL3" + bytes(64)
    with pytest.raises(MsInspectError) as err:
        inspect_ms(_write(tmp_path / "x.tflite", data))
    assert str(err.value) == (
        "x.tflite is a TFLite model, not a MindSpore Lite .ms: "
        "convert it first with `fiftyone-mslite convert`"
    )


def test_real_tflite_file(shared_dir):
    path = shared_dir / "mirror/raw.githubusercontent.com/google-coral/test_data/master"
    path = path / "mobilenet_v1_0.25_128_quant.tflite"
    if not path.is_file():
        pytest.skip(f"needs {path}; absent")
    with pytest.raises(MsInspectError, match="is a TFLite model"):
        inspect_ms(path)


@pytest.mark.parametrize(
    ("head", "what"),
    [(b"PK\x03\x04", "ZIP"), (b"\x89HDF\r\n\x1a\n", "HDF5"), (b"\x80\x04\x95", "pickle")],
)
def test_other_foreign_formats(tmp_path, head, what):
    with pytest.raises(MsInspectError, match=what):
        inspect_ms(_write(tmp_path / "m.ms", head + bytes(64)))


def test_unknown_flatbuffer_identifier(tmp_path):
    data = build_metagraph(b"ABCD", None)
    with pytest.raises(MsInspectError, match="identifier is 'ABCD'"):
        inspect_ms(_write(tmp_path / "abcd.ms", data))
    data = build_metagraph(b"MSL3", None)
    with pytest.raises(MsInspectError, match="'MSL3', newer"):
        inspect_ms(_write(tmp_path / "msl3.ms", data))


def test_error_is_a_value_error():
    assert issubclass(MsInspectError, ValueError)

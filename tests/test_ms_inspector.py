"""ms_inspector: real .ms files from the MindSpore Lite 2.0.0 converter (cross-checked with its runtime),
plus crafted files: empty, tiny, truncated, corrupted, foreign formats and legacy-schema (v0) FlatBuffers."""

from __future__ import annotations

import json
import os
import random
import subprocess
import textwrap
from pathlib import Path

import flatbuffers
import numpy as np
import onnx
import pytest
from flatbuffers.table import Table
from onnx import TensorProto, helper, numpy_helper

from fiftyone_mslite.catalog.ms_inspector import MsInspectError, MsModelInfo, MsTensorInfo, inspect_ms

# MindSpore Lite only ships for CPython 3.7: a Python that has it (the runtime's own setting), else the
# dev-machine venv.
MSLITE_PYTHON = Path(os.environ.get("FIFTYONE_MSLITE_RUNTIME_PYTHON", "/nonexistent"))

CONVERT = textwrap.dedent(
    """
    import sys
    import mindspore_lite as m
    c = m.Converter()
    c.save_type = m.ModelType.MINDIR_LITE
    c.convert(m.FmkType.ONNX, sys.argv[1], sys.argv[2])
    """
)

# Model.get_outputs() does not exist in the 2.0.0 Python API: outputs come from one predict on zeros.
RUNTIME_IO = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mindspore_lite as m
    model = m.Model()
    model.build_from_file(sys.argv[1], m.ModelType.MINDIR_LITE, m.Context())
    inputs = model.get_inputs()
    for t in inputs:
        t.set_data_from_numpy(np.zeros(t.shape, dtype=np.float32))
    outputs = model.predict(inputs)
    desc = lambda t: {"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)}
    io = {"inputs": [desc(t) for t in inputs], "outputs": [desc(t) for t in outputs]}
    print("@@JSON@@" + json.dumps(io))
    """
)


# ---------------------------------------------------------------------------------------------------------
# real files from the converter


def _run_py37(python: str, script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", script, *args],
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def mslite_python() -> str:
    """A Python 3.7 with mindspore_lite 2.0.0 (converter and runtime); skip when there is none."""
    if not MSLITE_PYTHON.exists():
        pytest.skip(
            f"needs a Python 3.7 with mindspore_lite 2.0.0 at {MSLITE_PYTHON} "
            "(set FIFTYONE_MSLITE_RUNTIME_PYTHON); absent here"
        )
    probe = subprocess.run(
        [str(MSLITE_PYTHON), "-c", "import mindspore_lite"], capture_output=True, text=True, timeout=120
    )
    if probe.returncode != 0:
        pytest.skip(f"{MSLITE_PYTHON} cannot import mindspore_lite: {probe.stderr[-300:]}")
    return str(MSLITE_PYTHON)


def _convert(python: str, onnx_path: Path, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = _run_py37(python, CONVERT, str(onnx_path), str(out_dir / stem), cwd=out_dir)
    out = out_dir / f"{stem}.ms"
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"converter failed on {onnx_path} (rc={proc.returncode}):\n{proc.stdout[-2000:]}")
    return out


def _runtime_io(python: str, ms_path: Path) -> dict:
    proc = _run_py37(python, RUNTIME_IO, str(ms_path), cwd=ms_path.parent)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@JSON@@")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"runtime failed on {ms_path} (rc={proc.returncode}):\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1][len("@@JSON@@") :])


def _tiny_onnx(path: Path) -> Path:
    """Conv -> Relu -> GlobalAveragePool -> Flatten ("logits"), with a Softmax ("probs") as second output."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    nodes = [
        helper.make_node(
            "Conv",
            ["input_img", "w", "b"],
            ["c"],
            kernel_shape=[3, 3],
            strides=[1, 1],
            dilations=[1, 1],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input_img", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4]),
        ],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return _tiny_onnx(tmp_path_factory.mktemp("tiny_onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_ms(tmp_path_factory, mslite_python, tiny_onnx) -> Path:
    return _convert(mslite_python, tiny_onnx, tmp_path_factory.mktemp("tiny_ms"), "tiny")


@pytest.fixture(scope="session")
def resnet20_ms(tmp_path_factory, mslite_python, shared_dir) -> Path:
    src = shared_dir / "onnx" / "cifar10_resnet20.onnx"
    if not src.is_file():
        pytest.skip(f"needs {src}; absent")
    return _convert(mslite_python, src, tmp_path_factory.mktemp("resnet20"), "cifar10_resnet20")


def test_tiny_real_file(tiny_ms):
    info = inspect_ms(tiny_ms)
    assert info.path == tiny_ms
    assert info.size_bytes == tiny_ms.stat().st_size
    assert (info.identifier, info.schema, info.loadable, info.hint) == ("MSL2", "v2", True, "")
    # The 2.0.0 converter records no converter version (MetaGraph.version is unset) and no graph name.
    assert info.version == ""
    assert info.name == ""
    # ONNX NCHW [1,3,8,8] becomes an NHWC input.
    assert info.inputs == (MsTensorInfo("input_img", (1, 8, 8, 3), "float32", "NHWC"),)
    assert [(t.name, t.dims, t.dtype) for t in info.outputs] == [
        ("logits", (1, 4), "float32"),
        ("probs", (1, 4), "float32"),
    ]
    assert info.node_count >= 4
    assert info.tensor_count > info.node_count
    assert info.subgraph_count == 1
    assert info.check_loadable() is info
    assert json.loads(json.dumps(info.to_dict()))["inputs"][0]["dims"] == [1, 8, 8, 3]


def test_tiny_matches_runtime(tiny_ms, mslite_python):
    info = inspect_ms(tiny_ms)
    rt = _runtime_io(mslite_python, tiny_ms)
    assert [(t.name, list(t.dims)) for t in info.inputs] == [(t["name"], t["shape"]) for t in rt["inputs"]]
    assert [(t.name, list(t.dims)) for t in info.outputs] == [(t["name"], t["shape"]) for t in rt["outputs"]]
    assert all(t["dtype"] == "DataType.FLOAT32" for t in rt["inputs"] + rt["outputs"])


def test_resnet20_real_file(resnet20_ms, mslite_python, shared_dir):
    info = inspect_ms(resnet20_ms)
    src = onnx.load(str(shared_dir / "onnx" / "cifar10_resnet20.onnx"), load_external_data=False)
    assert (info.identifier, info.schema, info.loadable) == ("MSL2", "v2", True)
    assert [t.name for t in info.inputs] == [
        i.name for i in src.graph.input if i.name not in {init.name for init in src.graph.initializer}
    ]
    assert info.inputs[0].dims == (1, 32, 32, 3)
    assert (info.inputs[0].dtype, info.inputs[0].format) == ("float32", "NHWC")
    assert [t.name for t in info.outputs] == [o.name for o in src.graph.output]
    assert info.node_count > 10 and info.tensor_count > 50
    rt = _runtime_io(mslite_python, resnet20_ms)
    assert [(t.name, list(t.dims)) for t in info.inputs] == [(t["name"], t["shape"]) for t in rt["inputs"]]
    assert [t.name for t in info.outputs] == [t["name"] for t in rt["outputs"]]
    assert rt["outputs"][0]["shape"] == [1, 10]
    # The converter may leave an output's shape to the runtime's shape inference: () means "not recorded".
    assert info.outputs[0].dims in ((), (1, 10))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_truncation_of_a_real_file_is_refused(tiny_ms, tmp_path):
    data = tiny_ms.read_bytes()
    cut_file = tmp_path / "cut.ms"
    for cut in range(len(data)):
        _write(cut_file, data[:cut])
        with pytest.raises(MsInspectError):
            inspect_ms(cut_file)


def test_truncations_of_a_larger_real_file_are_refused(resnet20_ms, tmp_path):
    data = resnet20_ms.read_bytes()
    cuts = sorted(
        {*range(0, 600, 7), *range(len(data) - 600, len(data)), *range(0, len(data), len(data) // 97)}
    )
    cut_file = tmp_path / "cut.ms"
    for cut in cuts:
        _write(cut_file, data[:cut])
        with pytest.raises(MsInspectError) as err:
            inspect_ms(cut_file)
        assert "cut.ms" in str(err.value)


def test_corrupted_bytes_never_escape_as_other_errors(tiny_ms, tmp_path):
    """Every byte of a real file flipped in turn: parse or MsInspectError, never struct/Index errors."""
    data = tiny_ms.read_bytes()
    bad = tmp_path / "bad.ms"
    for pos in range(len(data)):
        mutated = bytearray(data)
        mutated[pos] ^= 0xFF
        _write(bad, bytes(mutated))
        try:
            info = inspect_ms(bad)
        except MsInspectError:
            continue
        assert isinstance(info, MsModelInfo)


def _patch_u32(data: bytes, pos: int, value: int) -> bytes:
    return data[:pos] + value.to_bytes(4, "little") + data[pos + 4 :]


@pytest.mark.parametrize("root", [0xFFFFFFF0, 2, 0x7FFFFFFF, 8])
def test_bad_root_offset(tiny_ms, tmp_path, root):
    bad = _write(tmp_path / "root.ms", _patch_u32(tiny_ms.read_bytes(), 0, root))
    with pytest.raises(MsInspectError, match="root.ms .*truncated or corrupt"):
        inspect_ms(bad)


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
) -> bytes:
    """A MetaGraph laid out per model.fbs / model_v0.fbs (same slots), finished with `identifier`."""
    b = flatbuffers.Builder(256)
    tensor_offs = [_tensor(b, *t) for t in tensors]
    all_tensors = _tables(b, tensor_offs)
    in_off, out_off = _uints(b, inputs), _uints(b, outputs)
    b.StartObject(6)  # CNode: name, nodeType, primitive, inputIndex, outputIndex, quantType
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
    assert "old.ms" in info.hint and "2.x" in info.hint and "re-convert" in info.hint
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
    bad = _patch_u32(data, _vector_start(data, slot), 0x3FFFFFFF)
    with pytest.raises(MsInspectError, match=f"huge.ms .*corrupt.*{field}"):
        inspect_ms(_write(tmp_path / "huge.ms", bad))


def test_vtable_pointing_outside_the_file(tmp_path):
    data = build_metagraph(b"MSL2", None)
    root = int.from_bytes(data[:4], "little")
    bad = _patch_u32(data, root, 0x7FFFFFF0)  # MetaGraph's soffset to its vtable
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

"""prepare_onnx: tiny hand-built graphs, checked for exact numerics (onnxruntime) and, where available,
against the real MindSpore Lite 2.0 converter."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fiftyone_mslite.conversion.onnx_fixes import OnnxFixError, prepare_onnx

ort = pytest.importorskip("onnxruntime")

# MindSpore Lite only ships for CPython 3.7: a Python that has it (the runtime's own setting), else the
# dev-machine venv for now.
MSLITE_PYTHON = Path(os.environ.get("FIFTYONE_MSLITE_RUNTIME_PYTHON", "/nonexistent"))
X_SHAPE = [1, 3, 8, 8]


def _model(nodes, initializers=(), out_shape=None, inputs=None) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, X_SHAPE)]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    return model


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _weight(name: str, shape) -> TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def _x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal(X_SHAPE).astype(np.float32)


def _infer(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": _x()})[0]


def _attrs(path: Path, node_index: int = 0) -> dict:
    node = onnx.load(str(path)).graph.node[node_index]
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _bare_conv(tmp_path: Path) -> Path:
    """Conv relying on ONNX defaults for kernel_shape/strides/dilations: valid, but the converter fails."""
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", pads=[1, 1, 1, 1])
    return _save(_model([conv], [_weight("W", [4, 3, 3, 3])], [1, 4, 8, 8]), tmp_path / "conv.onnx")


def _maxpool(tmp_path: Path, dilations, name: str = "pool.onnx") -> Path:
    """MaxPool as torch exports it: explicit dilations, pads and ceil_mode."""
    pool = helper.make_node(
        "MaxPool", ["x"], ["y"], name="pool1", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0],
        dilations=dilations, ceil_mode=0,
    )
    side = 4 if dilations == [1, 1] else 3
    return _save(_model([pool], [], [1, 3, side, side]), tmp_path / name)


def test_conv_without_attributes_gets_the_onnx_defaults(tmp_path):
    source = _bare_conv(tmp_path)
    before = source.read_bytes()

    report = prepare_onnx(source, tmp_path / "work")

    assert report.source == source
    assert report.output.parent == tmp_path / "work"
    assert report.fixes == (
        "Conv 'conv1': added kernel_shape=[3, 3] (from weight W)",
        "Conv 'conv1': added strides=[1, 1] (ONNX default)",
        "Conv 'conv1': added dilations=[1, 1] (ONNX default)",
    )
    assert _attrs(report.output) == {
        "pads": [1, 1, 1, 1], "kernel_shape": [3, 3], "strides": [1, 1], "dilations": [1, 1]
    }
    assert source.read_bytes() == before
    np.testing.assert_array_equal(_infer(report.output), _infer(source))


@pytest.mark.parametrize(
    ("op", "weight_shape", "attrs", "out_shape", "kernel"),
    [
        # grouped, non-square kernel; Conv weight layout is [M, C/group, k1, k2]
        ("Conv", [6, 1, 3, 5], {"group": 3, "strides": [2, 1]}, [1, 6, 3, 4], [3, 5]),
        # ConvTranspose weight layout is [C, M/group, k1, k2]
        ("ConvTranspose", [3, 2, 2, 3], {}, [1, 2, 9, 10], [2, 3]),
    ],
)
def test_kernel_shape_comes_from_weight_spatial_dims(tmp_path, op, weight_shape, attrs, out_shape, kernel):
    node = helper.make_node(op, ["x", "W"], ["y"], name="n", **attrs)
    source = _save(_model([node], [_weight("W", weight_shape)], out_shape), tmp_path / "m.onnx")

    report = prepare_onnx(source, tmp_path / "work")

    assert f"{op} 'n': added kernel_shape={kernel} (from weight W)" in report.fixes
    assert _attrs(report.output)["kernel_shape"] == kernel
    assert _attrs(report.output)["dilations"] == [1, 1]
    np.testing.assert_array_equal(_infer(report.output), _infer(source))


def test_computed_weight_uses_shape_inference(tmp_path):
    const = helper.make_node("Constant", [], ["W"], value=_weight("w", [4, 3, 3, 3]))
    conv = helper.make_node("Conv", ["x", "W"], ["y"], strides=[1, 1])  # unnamed on purpose
    source = _save(_model([const, conv], [], [1, 4, 6, 6]), tmp_path / "m.onnx")

    report = prepare_onnx(source, tmp_path / "work")

    assert report.fixes == (
        "Conv #1 (unnamed): added kernel_shape=[3, 3] (from inferred shape of W)",
        "Conv #1 (unnamed): added dilations=[1, 1] (ONNX default)",
    )
    np.testing.assert_array_equal(_infer(report.output), _infer(source))


def test_weight_with_unknown_spatial_dims_is_a_clear_error(tmp_path):
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, X_SHAPE),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, "k", "k"]),
    ]
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")
    source = _save(_model([conv], [], [1, 4, "h", "w"], inputs), tmp_path / "m.onnx")

    with pytest.raises(OnnxFixError) as err:
        prepare_onnx(source, tmp_path / "work")
    message = str(err.value)
    assert str(source) in message and "Conv 'conv1'" in message and "kernel_shape" in message
    assert not (tmp_path / "work").exists()


def test_maxpool_unit_dilations_are_dropped(tmp_path):
    source = _maxpool(tmp_path, [1, 1])

    report = prepare_onnx(source, tmp_path / "work")

    assert report.fixes == (
        "MaxPool 'pool1': removed dilations=[1, 1] (the ONNX default; the converter rejects the attribute)",
    )
    assert "dilations" not in _attrs(report.output)
    np.testing.assert_array_equal(_infer(report.output), _infer(source))


def test_maxpool_real_dilations_are_a_clear_error(tmp_path):
    source = _maxpool(tmp_path, [2, 2])

    with pytest.raises(OnnxFixError) as err:
        prepare_onnx(source, tmp_path / "work")
    message = str(err.value)
    assert str(source) in message and "MaxPool 'pool1'" in message and "dilations=[2, 2]" in message
    assert "re-export" in message
    assert not (tmp_path / "work").exists()


def test_graph_that_needs_nothing_is_left_alone(tmp_path):
    conv = helper.make_node(
        "Conv", ["x", "W"], ["c"], name="conv1", kernel_shape=[3, 3], strides=[1, 1], dilations=[1, 1]
    )
    pool = helper.make_node("MaxPool", ["c"], ["y"], name="pool1", kernel_shape=[2, 2], strides=[2, 2])
    source = _save(_model([conv, pool], [_weight("W", [4, 3, 3, 3])], [1, 4, 3, 3]), tmp_path / "m.onnx")

    report = prepare_onnx(source, tmp_path / "work")

    assert report.output == report.source == source
    assert report.fixes == ()
    assert not report.changed
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such ONNX file"),
        (b"", "not an ONNX model"),
        (b"\x08\x06garbage\xff\xff", "unreadable ONNX model"),
    ],
    ids=["missing", "empty", "corrupt"],
)
def test_unreadable_file_errors_name_the_file(tmp_path, content, expected):
    source = tmp_path / "model.onnx"
    if content is not None:
        source.write_bytes(content)

    with pytest.raises(OnnxFixError, match=expected) as err:
        prepare_onnx(source, tmp_path / "work")
    assert str(source) in str(err.value)


def test_external_data_is_copied_next_to_the_patched_model(tmp_path):
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", pads=[1, 1, 1, 1])
    model = _model([conv], [_weight("W", [16, 3, 3, 3])], [1, 16, 8, 8])
    source = tmp_path / "src" / "m.onnx"
    source.parent.mkdir()
    onnx.save(model, str(source), save_as_external_data=True, location="m.weights", size_threshold=0)

    for _ in range(2):  # a rerun must overwrite, not append to, the data file
        report = prepare_onnx(source, tmp_path / "work")

    assert len(report.fixes) == 3
    data_files = [p for p in (tmp_path / "work").iterdir() if p != report.output]
    assert [p.stat().st_size for p in data_files] == [16 * 3 * 3 * 3 * 4]
    np.testing.assert_array_equal(_infer(report.output), _infer(source))


def test_missing_external_data_is_a_clear_error(tmp_path):
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")
    source = tmp_path / "m.onnx"
    onnx.save(_model([conv], [_weight("W", [4, 3, 3, 3])], [1, 4, 6, 6]), str(source),
              save_as_external_data=True, location="m.weights", size_threshold=0)
    (tmp_path / "m.weights").unlink()

    with pytest.raises(OnnxFixError, match="external tensor data") as err:
        prepare_onnx(source, tmp_path / "work")
    assert str(source) in str(err.value)


CONVERT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mindspore_lite as mslite

    jobs, x_path, result_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    results = {}
    for onnx_path, out_stem in jobs:
        converter = mslite.Converter()
        converter.save_type = mslite.ModelType.MINDIR_LITE
        try:
            converter.convert(mslite.FmkType.ONNX, onnx_path, out_stem)
        except RuntimeError as exc:
            results[onnx_path] = {"error": str(exc)}
            continue
        context = mslite.Context()
        context.target = ["cpu"]
        model = mslite.Model()
        model.build_from_file(out_stem + ".ms", mslite.ModelType.MINDIR_LITE, context)
        inputs = model.get_inputs()
        x = np.load(x_path)
        if list(inputs[0].shape) != list(x.shape):  # the converter makes 4-D inputs NHWC
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        inputs[0].set_data_from_numpy(x)
        results[onnx_path] = {"y": model.predict(inputs)[0].get_data_to_numpy().tolist()}
    with open(result_path, "w") as f:
        json.dump(results, f)
    """
)


def test_fixes_are_what_the_real_converter_needs(tmp_path):
    if not MSLITE_PYTHON.is_file():
        pytest.skip(f"needs the MindSpore Lite 2.0 runtime (CPython 3.7 venv) at {MSLITE_PYTHON}")
    sources = [_bare_conv(tmp_path), _maxpool(tmp_path, [1, 1])]
    patched = [prepare_onnx(s, tmp_path / "work").output for s in sources]
    (tmp_path / "out").mkdir()
    jobs = [(str(p), str(tmp_path / "out" / f"{i}")) for i, p in enumerate(sources + patched)]
    np.save(tmp_path / "x.npy", _x())
    script = tmp_path / "convert.py"
    script.write_text(CONVERT_SCRIPT)
    result_path = tmp_path / "results.json"

    proc = subprocess.run(
        [str(MSLITE_PYTHON), str(script), json.dumps(jobs), str(tmp_path / "x.npy"), str(result_path)],
        capture_output=True, text=True, timeout=300,
    )
    if "ModuleNotFoundError" in proc.stderr and not result_path.exists():
        pytest.skip(f"{MSLITE_PYTHON} lacks MindSpore Lite: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(result_path.read_text())

    for source, fixed in zip(sources, patched):
        assert "Common error code" in results[str(source)]["error"]
        assert "error" not in results[str(fixed)], results[str(fixed)]
        np.testing.assert_allclose(np.array(results[str(fixed)]["y"]), _infer(source), rtol=1e-5, atol=1e-5)

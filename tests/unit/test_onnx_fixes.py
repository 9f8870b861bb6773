"""prepare_onnx: tiny hand-built graphs, checked for exact numerics (onnxruntime); the real converter's view
is in tests/integration/test_onnx_fixes_converter.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers.onnx_fix_graphs import (
    X_SHAPE,
    bare_conv,
    infer,
    maxpool,
    save_model,
    single_output_model,
    weight,
)
from onnx import TensorProto, helper

from fiftyone_mslite.modelfiles.onnx_fixes import OnnxFixError, prepare_onnx

ort = pytest.importorskip("onnxruntime")













def _attrs(path: Path, node_index: int = 0) -> dict:
    node = onnx.load(str(path)).graph.node[node_index]
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}






def test_conv_without_attributes_gets_the_onnx_defaults(tmp_path):
    source = bare_conv(tmp_path)
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
    np.testing.assert_array_equal(infer(report.output), infer(source))


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
    source = save_model(single_output_model([node], [weight("W", weight_shape)], out_shape), tmp_path / "m.onnx")

    report = prepare_onnx(source, tmp_path / "work")

    assert f"{op} 'n': added kernel_shape={kernel} (from weight W)" in report.fixes
    assert _attrs(report.output)["kernel_shape"] == kernel
    assert _attrs(report.output)["dilations"] == [1, 1]
    np.testing.assert_array_equal(infer(report.output), infer(source))


def test_computed_weight_uses_shape_inference(tmp_path):
    const = helper.make_node("Constant", [], ["W"], value=weight("w", [4, 3, 3, 3]))
    conv = helper.make_node("Conv", ["x", "W"], ["y"], strides=[1, 1])  # unnamed on purpose
    source = save_model(single_output_model([const, conv], [], [1, 4, 6, 6]), tmp_path / "m.onnx")

    report = prepare_onnx(source, tmp_path / "work")

    assert report.fixes == (
        "Conv #1 (unnamed): added kernel_shape=[3, 3] (from inferred shape of W)",
        "Conv #1 (unnamed): added dilations=[1, 1] (ONNX default)",
    )
    np.testing.assert_array_equal(infer(report.output), infer(source))


def test_weight_with_unknown_spatial_dims_is_a_clear_error(tmp_path):
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, X_SHAPE),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3, "k", "k"]),
    ]
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")
    source = save_model(single_output_model([conv], [], [1, 4, "h", "w"], inputs), tmp_path / "m.onnx")

    with pytest.raises(OnnxFixError) as err:
        prepare_onnx(source, tmp_path / "work")
    message = str(err.value)
    assert str(source) in message and "Conv 'conv1'" in message and "kernel_shape" in message
    assert not (tmp_path / "work").exists()


def test_maxpool_unit_dilations_are_dropped(tmp_path):
    source = maxpool(tmp_path, [1, 1])

    report = prepare_onnx(source, tmp_path / "work")

    assert report.fixes == (
        "MaxPool 'pool1': removed dilations=[1, 1] (the ONNX default; the converter rejects the attribute)",
    )
    assert "dilations" not in _attrs(report.output)
    np.testing.assert_array_equal(infer(report.output), infer(source))


def test_maxpool_real_dilations_are_a_clear_error(tmp_path):
    source = maxpool(tmp_path, [2, 2])

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
    graph = single_output_model([conv, pool], [weight("W", [4, 3, 3, 3])], [1, 4, 3, 3])
    source = save_model(graph, tmp_path / "m.onnx")

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
    model = single_output_model([conv], [weight("W", [16, 3, 3, 3])], [1, 16, 8, 8])
    source = tmp_path / "src" / "m.onnx"
    source.parent.mkdir()
    onnx.save(model, str(source), save_as_external_data=True, location="m.weights", size_threshold=0)

    for _ in range(2):  # a rerun must overwrite, not append to, the data file
        report = prepare_onnx(source, tmp_path / "work")

    assert len(report.fixes) == 3
    data_files = [p for p in (tmp_path / "work").iterdir() if p != report.output]
    assert [p.stat().st_size for p in data_files] == [16 * 3 * 3 * 3 * 4]
    np.testing.assert_array_equal(infer(report.output), infer(source))


def test_missing_external_data_is_a_clear_error(tmp_path):
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1")
    source = tmp_path / "m.onnx"
    onnx.save(single_output_model([conv], [weight("W", [4, 3, 3, 3])], [1, 4, 6, 6]), str(source),
              save_as_external_data=True, location="m.weights", size_threshold=0)
    (tmp_path / "m.weights").unlink()

    with pytest.raises(OnnxFixError, match="external tensor data") as err:
        prepare_onnx(source, tmp_path / "work")
    assert str(source) in str(err.value)





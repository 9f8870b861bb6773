"""Small ONNX graphs that need (or do not need) the converter repairs of `modelfiles.onnx_fixes`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

X_SHAPE = [1, 3, 8, 8]


def single_output_model(nodes, initializers=(), out_shape=None, inputs=None) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, X_SHAPE)]
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def weight(name: str, shape) -> TensorProto:
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(shape).astype(np.float32), name)


def example_input() -> np.ndarray:
    return np.random.default_rng(1).standard_normal(X_SHAPE).astype(np.float32)


def infer(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": example_input()})[0]


def bare_conv(tmp_path: Path) -> Path:
    """Conv relying on ONNX defaults for kernel_shape/strides/dilations: valid, but the converter fails."""
    conv = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", pads=[1, 1, 1, 1])
    return save_model(single_output_model([conv], [weight("W", [4, 3, 3, 3])], [1, 4, 8, 8]), tmp_path / "conv.onnx")


def maxpool(tmp_path: Path, dilations, name: str = "pool.onnx") -> Path:
    """MaxPool as torch exports it: explicit dilations, pads and ceil_mode."""
    pool = helper.make_node(
        "MaxPool", ["x"], ["y"], name="pool1", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0],
        dilations=dilations, ceil_mode=0,
    )
    side = 4 if dilations == [1, 1] else 3
    return save_model(single_output_model([pool], [], [1, 3, side, side]), tmp_path / name)

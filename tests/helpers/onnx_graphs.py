"""Tiny ONNX classifiers built in the tests, with a numpy reference of the same math."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ONNX_TYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


@dataclass
class TinyNet:
    """Conv3x3(+bias) → ReLU → global average pool → Gemm → Softmax, on [N, 3, 8, 8] input."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    dtype: str = "float32"

    @classmethod
    def random(cls, seed: int = 0, dtype: str = "float32", classes: int = 5) -> TinyNet:
        rng = np.random.default_rng(seed)
        return cls(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32),
                   rng.normal(0, 1.0, (4, classes)).astype(np.float32),
                   rng.normal(0, 0.1, classes).astype(np.float32), dtype)

    def reference(self, x_nchw: np.ndarray) -> np.ndarray:
        x = x_nchw.astype(np.float64)
        if self.dtype != "float32":
            x = x / 255.0
        n, _, h, w = x.shape
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        conv = np.zeros((n, 4, h, w))
        for i in range(3):
            for j in range(3):
                conv += np.einsum("nchw,oc->nohw", padded[:, :, i:i + h, j:j + w], self.w1[:, :, i, j])
        conv += self.b1[None, :, None, None]
        pooled = np.maximum(conv, 0).mean(axis=(2, 3))
        logits = pooled @ self.w2 + self.b2
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path, batch: int | str = 1, conv_attrs: bool = True) -> Path:
        nodes, src = [], "x"
        if self.dtype == "uint8":
            nodes += [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
                      helper.make_node("Mul", ["xf", "scale"], ["xs"])]
            src = "xs"
        elif self.dtype == "int8":  # MindSpore Lite's CPU Cast has no int8 kernel: dequantize instead
            nodes.append(helper.make_node("DequantizeLinear", ["x", "scale", "zero"], ["xs"]))
            src = "xs"
        attrs = {"pads": [1, 1, 1, 1]}
        if conv_attrs:
            attrs.update(kernel_shape=[3, 3], strides=[1, 1], dilations=[1, 1])
        nodes += [
            helper.make_node("Conv", [src, "w1", "b1"], ["c"], name="conv1", **attrs),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["g"]),
            helper.make_node("Flatten", ["g"], ["f"]),
            helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ]
        inits = [numpy_helper.from_array(a, n) for a, n in
                 ((self.w1, "w1"), (self.b1, "b1"), (self.w2, "w2"), (self.b2, "b2"))]
        if self.dtype != "float32":
            inits.append(numpy_helper.from_array(np.array(1 / 255.0, np.float32), "scale"))
            inits.append(numpy_helper.from_array(np.array(0, np.int8), "zero"))
        graph = helper.make_graph(
            nodes, "tiny", [helper.make_tensor_value_info("x", _ONNX_TYPES[self.dtype], [batch, 3, 8, 8])],
            [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, self.w2.shape[1]])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
        model.ir_version = 6
        onnx.save(model, str(path))
        return path


def random_batch(n: int, dtype: str = "float32", seed: int = 1) -> np.ndarray:
    """NCHW batch for TinyNet."""
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.normal(0, 1, (n, 3, 8, 8)).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, 0), info.max + 1, (n, 3, 8, 8)).astype(dtype)


def tiny_two_output_onnx(path: Path) -> Path:
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

"""The legacy (v0) upgrader against real MindSpore Lite 2.0.0: real 2020 files and one-node graphs per op.

Per-op cases build a v0 graph with random weights, upgrade it, run it on MindSpore Lite 2.0.0 (all cases in one
worker process, one thread) and compare with helpers.numpy_ops, a reference of each op's documented semantics.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import numpy_ops as ref
from helpers.legacy_v0 import INT8, KHWC, NCHW, V0Graph, run_models

from fiftyone_mslite.modelfiles.legacy import ops
from fiftyone_mslite.modelfiles.legacy.reader import read_v0
from fiftyone_mslite.modelfiles.legacy.writer import write_current
from fiftyone_mslite.modelfiles.upgrade import upgrade_ms

RNG = np.random.default_rng(20201)
ACT_IDS = {"RELU": 1, "SIGMOID": 2, "RELU6": 3, "ELU": 4, "LEAKY_RELU": 5, "SOFTPLUS": 9, "TANH": 10, "HSWISH": 12,
           "HSIGMOID": 13, "HARD_TANH": 16, "SWISH": 18}
PAD_MODES = {"pad": 0, "same": 1, "valid": 2}

Case = Callable[[], tuple[V0Graph, list[np.ndarray], list[np.ndarray]]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn
    return register


def rand(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def unary(op: str, x: np.ndarray, out_shape: tuple[int, ...], expected: np.ndarray, fmt: int = 1, **attrs):
    g = V0Graph()
    i = g.input(x.shape, fmt)
    o = g.activation(out_shape, fmt)
    g.node(op, [i], [o], **attrs)
    g.outputs = [o]
    return g, [x], [expected]


def window_attrs(k, s, pads, mode, d=(1, 1)):
    return dict(kernelH=k[0], kernelW=k[1], strideH=s[0], strideW=s[1], dilateH=d[0], dilateW=d[1],
                padUp=pads[0], padDown=pads[1], padLeft=pads[2], padRight=pads[3], padMode=PAD_MODES[mode])


def ref_pads(x, k, s, pads, mode, d=(1, 1)):
    if mode == "same":
        return ref.same_pads(x.shape[1], k[0], s[0], d[0]) + ref.same_pads(x.shape[2], k[1], s[1], d[1])
    return (0, 0, 0, 0) if mode == "valid" else pads


def conv_case(name, k=(3, 3), s=(1, 1), pads=(1, 1, 1, 1), mode="pad", d=(1, 1), group=1, act=0, bias=True,
              cin=4, cout=6, hw=(9, 8)):
    @case(name)
    def build():
        x = rand(1, *hw, cin)
        w = rand(cout, *k, cin // group, scale=0.3)
        b = rand(cout)
        expected = ref.conv2d(x, w, b if bias else None, s, ref_pads(x, k, s, pads, mode, d), d, group)
        if act == 1:
            expected = np.maximum(expected, 0)
        elif act == 3:
            expected = np.clip(expected, 0, 6)
        g = V0Graph()
        inputs = [g.input(x.shape), g.const(w, KHWC)] + ([g.const(b)] if bias else [])
        o = g.activation((1, -1, -1, cout))
        g.node("Conv2D", inputs, [o], group=group, channelIn=cin, channelOut=cout, hasBias=bias,
               activationType=act, **window_attrs(k, s, pads, mode, d))
        g.outputs = [o]
        return g, [x], [expected]


conv_case("conv_3x3_pad1")
conv_case("conv_stride2_asym_pads", s=(2, 2), pads=(0, 1, 1, 0))
conv_case("conv_same_stride2", s=(2, 2), mode="same", hw=(9, 7))
conv_case("conv_valid_5x3", k=(5, 3), pads=(0, 0, 0, 0), mode="valid")
conv_case("conv_dilation2", d=(2, 2), pads=(2, 2, 2, 2))
conv_case("conv_group2_relu", group=2, act=1)
conv_case("conv_1x1_relu6_nobias", k=(1, 1), pads=(0, 0, 0, 0), act=3, bias=False)


def depthwise_case(name, k=(3, 3), s=(1, 1), pads=(1, 1, 1, 1), mode="pad", act=0, c=8):
    @case(name)
    def build():
        x = rand(1, 10, 9, c)
        w = rand(c, *k, 1, scale=0.5)
        b = rand(c)
        expected = ref.conv2d(x, w, b, s, ref_pads(x, k, s, pads, mode), group=c)
        if act == 3:
            expected = np.clip(expected, 0, 6)
        g = V0Graph()
        o = g.activation((1, -1, -1, c))
        g.node("DepthwiseConv2D", [g.input(x.shape), g.const(w, KHWC), g.const(b)], [o], channelMultiplier=1,
               activationType=act, **window_attrs(k, s, pads, mode))
        g.outputs = [o]
        return g, [x], [expected]


depthwise_case("dwconv_3x3")
depthwise_case("dwconv_stride2_same_relu6", s=(2, 2), mode="same", act=3)
depthwise_case("dwconv_5x5_valid", k=(5, 5), pads=(0, 0, 0, 0), mode="valid")


def dedepthwise_case(name, k, out_hw, pads=(0, 0, 0, 0)):
    @case(name)
    def build():
        x, w = rand(1, 5, 4, 6), rand(6, *k, 1)
        g = V0Graph()
        o = g.activation((1, *out_hw, 6))
        g.node("DeDepthwiseConv2D", [g.input(x.shape), g.const(w, KHWC)], [o], channelMultiplier=1,
               **window_attrs(k, (2, 2), pads, "pad"))
        g.outputs = [o]
        return g, [x], [ref.deconv2d_depthwise(x, w, pads=pads)]


dedepthwise_case("dedwconv_2x2_stride2", (2, 2), (10, 8))
dedepthwise_case("dedwconv_3x3_stride2_pad1", (3, 3), (9, 7), pads=(1, 1, 1, 1))


@case("deconv_2x2_stride2")
def _deconv():
    x, w = rand(1, 4, 3, 3), rand(3, 2, 2, 5)  # weights [in, kh, kw, out]
    expected = np.zeros((1, 8, 6, 5))
    for i in range(2):
        for j in range(2):
            expected[:, i::2, j::2] = x @ w[:, i, j, :]
    g = V0Graph()
    o = g.activation((1, 8, 6, 5))
    g.node("DeConv2D", [g.input(x.shape), g.const(w, KHWC)], [o], group=1, channelIn=3, channelOut=5,
           **window_attrs((2, 2), (2, 2), (0, 0, 0, 0), "pad"))
    g.outputs = [o]
    return g, [x], [expected]


def pool_case(name, mode, k=(3, 3), s=(2, 2), pads=(1, 1, 1, 1), pad_mode="pad", global_=False, ceil=False, act=0):
    @case(name)
    def build():
        x = rand(1, 9, 8, 5)
        if global_:
            expected = x.max(axis=(1, 2), keepdims=True) if mode == "max" else x.mean(axis=(1, 2), keepdims=True)
        else:
            p = ref_pads(x, k, s, pads, pad_mode)
            expected = ref.pool2d(x, k, s, p, mode, ceil)
        if act == 1:
            expected = np.maximum(expected, 0)
        attrs = dict(poolingMode=0 if mode == "max" else 1, windowH=k[0], windowW=k[1], strideH=s[0], strideW=s[1],
                     padUp=pads[0], padDown=pads[1], padLeft=pads[2], padRight=pads[3], padMode=PAD_MODES[pad_mode],
                     roundMode=1 if ceil else 0, activationType=act)
        return unary("Pooling", x, (1, -1, -1, 5), expected, **attrs, **{"global": global_})


pool_case("maxpool_3x3_s2_pad1", "max")
pool_case("avgpool_3x3_s2_pad1", "avg")
pool_case("maxpool_2x2_valid", "max", k=(2, 2), pads=(0, 0, 0, 0), pad_mode="valid")
pool_case("avgpool_same_relu", "avg", pad_mode="same", act=1)
pool_case("maxpool_ceil", "max", k=(2, 2), pads=(0, 0, 0, 0), ceil=True)
pool_case("global_avgpool", "avg", global_=True)
pool_case("global_maxpool", "max", global_=True)

for _act, _attrs in {"RELU": {}, "RELU6": {}, "SIGMOID": {}, "TANH": {}, "HSWISH": {}, "HSIGMOID": {},
                     "LEAKY_RELU": {"alpha": 0.1}, "HARD_TANH": {"min_val": -0.5, "max_val": 0.7}, "SWISH": {},
                     "ELU": {"alpha": 0.8}, "SOFTPLUS": {}}.items():
    def _build(act=_act, attrs=_attrs):
        x = rand(1, 4, 3, 5, scale=3)
        full = {"alpha": 0.2, "min_val": -1.0, "max_val": 1.0} | attrs
        return unary("Activation", x, x.shape, ref.ACTIVATIONS[act](x.astype(np.float64), full), type=ACT_IDS[act],
                     **attrs)
    CASES[f"activation_{_act.lower()}"] = _build


@case("leaky_relu_primitive")
def _leaky():
    x = rand(1, 3, 3, 4, scale=2)
    return unary("LeakyReLU", x, x.shape, np.where(x > 0, x, 0.3 * x), negativeSlope=0.3)


def binary_case(name, op, fn, b_shape=(1, 1, 1, 5), act=0, const=True):
    @case(name)
    def build():
        a, b = rand(1, 4, 3, 5), rand(*b_shape)
        if op in ("RealDiv", "Div"):
            b = np.abs(b) + 0.5
        expected = fn(a.astype(np.float64), b)
        expected = np.maximum(expected, 0) if act else expected
        expected = np.minimum(expected, 6) if act == 3 else expected
        g = V0Graph()
        ia = g.input(a.shape)
        ib = g.const(b) if const else g.input(b.shape)
        o = g.activation(a.shape)
        attrs = {"activationType": act} if op in ("Add", "Sub", "Mul", "Div") else {}
        g.node(op, [ia, ib], [o], **attrs)
        g.outputs = [o]
        return g, [a] if const else [a, b], [expected]


binary_case("add_broadcast", "Add", np.add)
binary_case("add_relu_two_inputs", "Add", np.add, b_shape=(1, 4, 3, 5), act=1, const=False)
binary_case("sub_relu", "Sub", np.subtract, act=1)
binary_case("mul_nchw_style_broadcast", "Mul", np.multiply, b_shape=(1, 1, 3, 1))
binary_case("mul_relu6", "Mul", np.multiply, act=3)
binary_case("realdiv", "RealDiv", np.divide)
binary_case("div_relu", "Div", np.divide, act=1)
binary_case("maximum", "Maximum", np.maximum)
binary_case("minimum_two_inputs", "Minimum", np.minimum, b_shape=(1, 4, 3, 5), const=False)


@case("prelu_per_channel")
def _prelu():
    x, slope = rand(1, 4, 3, 5), np.abs(rand(5)) * 0.3
    g = V0Graph()
    o = g.activation(x.shape)
    g.node("PReLU", [g.input(x.shape), g.const(slope)], [o], channelShared=False)
    g.outputs = [o]
    return g, [x], [np.where(x > 0, x, slope * x)]


@case("fullconnection_bias_relu")
def _fc():
    x, w, b = rand(2, 6), rand(4, 6), rand(4)
    g = V0Graph()
    o = g.activation((2, 4))
    g.node("FullConnection", [g.input(x.shape), g.const(w), g.const(b)], [o], hasBias=True, activationType=1)
    g.outputs = [o]
    return g, [x], [np.maximum(x @ w.T + b, 0)]


@case("matmul_transpose_b")
def _matmul():
    a, b = rand(3, 5), rand(4, 5)
    g = V0Graph()
    o = g.activation((3, 4))
    g.node("MatMul", [g.input(a.shape), g.const(b)], [o], transposeB=True)
    g.outputs = [o]
    return g, [a], [a @ b.T]


@case("matmul_transpose_a")
def _matmul_a():
    a, b = rand(5, 3), rand(5, 4)
    g = V0Graph()
    o = g.activation((3, 4))
    g.node("MatMul", [g.input(a.shape), g.const(b)], [o], transposeA=True)
    g.outputs = [o]
    return g, [a], [a.T @ b]


@case("biasadd")
def _biasadd():
    x, b = rand(1, 3, 4, 6), rand(6)
    g = V0Graph()
    o = g.activation(x.shape)
    g.node("BiasAdd", [g.input(x.shape), g.const(b)], [o])
    g.outputs = [o]
    return g, [x], [x + b]


@case("scale_axis3_offset")
def _scale():
    x, s, b = rand(1, 3, 4, 6), rand(6), rand(6)
    g = V0Graph()
    o = g.activation(x.shape)
    g.node("Scale", [g.input(x.shape), g.const(s), g.const(b)], [o], axis=3)
    g.outputs = [o]
    return g, [x], [x * s + b]


@case("batchnorm")
def _bn():
    x, mean, var = rand(1, 3, 4, 6), rand(6), np.abs(rand(6)) + 0.5
    g = V0Graph()
    o = g.activation(x.shape)
    g.node("BatchNorm", [g.input(x.shape), g.const(mean), g.const(var)], [o], epsilon=1e-3)
    g.outputs = [o]
    return g, [x], [(x - mean) / np.sqrt(var + 1e-3)]


@case("fused_batchnorm")
def _fbn():
    x, scale, bias, mean, var = rand(1, 3, 4, 6), rand(6), rand(6), rand(6), np.abs(rand(6)) + 0.5
    g = V0Graph()
    o = g.activation(x.shape)
    g.node("FusedBatchNorm", [g.input(x.shape)] + [g.const(a) for a in (scale, bias, mean, var)], [o], epsilon=1e-4)
    g.outputs = [o]
    return g, [x], [scale * (x - mean) / np.sqrt(var + 1e-4) + bias]


@case("mean_hw_keepdims")
def _mean():
    x = rand(1, 4, 3, 5)
    return unary("Mean", x, (1, 1, 1, 5), x.mean(axis=(1, 2), keepdims=True), axis=(1, 2), keepDims=True)


for _mode, (_id, _fn) in {"mean": (0, np.mean), "max": (1, np.max), "min": (2, np.min), "prod": (3, np.prod),
                          "sum": (4, np.sum)}.items():
    def _build(mode_id=_id, fn=_fn):
        x = rand(1, 4, 3, 5)
        return unary("Reduce", x, (1, 5), fn(x.astype(np.float64), axis=(1, 2)), axes=(1, 2), keepDims=0, mode=mode_id)
    CASES[f"reduce_{_mode}"] = _build


@case("concat_axis3")
def _concat():
    a, b = rand(1, 2, 3, 4), rand(1, 2, 3, 2)
    g = V0Graph()
    o = g.activation((1, 2, 3, 6))
    g.node("Concat", [g.input(a.shape), g.input(b.shape)], [o], axis=3)
    g.outputs = [o]
    return g, [a, b], [np.concatenate([a, b], axis=3)]


@case("concat_nchw_axis1")
def _concat1():
    a, b = rand(1, 2, 3, 4), rand(1, 3, 3, 4)
    g = V0Graph()
    o = g.activation((1, 5, 3, 4), NCHW)
    g.node("Concat", [g.input(a.shape, NCHW), g.input(b.shape, NCHW)], [o], axis=1)
    g.outputs = [o]
    return g, [a, b], [np.concatenate([a, b], axis=1)]


@case("split_sizes")
def _split():
    x = rand(1, 3, 4, 7)
    g = V0Graph()
    outs = [g.activation((1, 3, 4, n)) for n in (2, 5)]
    g.node("Split", [g.input(x.shape)], outs, numberSplit=2, sizeSplits=(2, 5), splitDim=3)
    g.outputs = outs
    return g, [x], [x[..., :2], x[..., 2:]]


@case("slice_attr")
def _slice():
    x = rand(1, 5, 6, 4)
    return unary("Slice", x, (1, 3, 2, 4), x[:, 1:4, 2:4, :], begin=(0, 1, 2, 0), size=(1, 3, 2, 4))


@case("stridedslice_attr")
def _strided():
    x = rand(1, 7, 6, 4)
    return unary("StridedSlice", x, (1, 3, 3, 2), x[:, 1:7:2, 0:6:2, 1:3], begin=(0, 1, 0, 1), end=(1, 7, 6, 3),
                 stride=(1, 2, 2, 1))


@case("stridedslice_masks")
def _strided_masks():
    x = rand(1, 7, 6, 4)
    return unary("StridedSlice", x, (1, 6, 4), x[:, 1:, 2], begin=(0, 1, 2, 0), end=(1, 0, 3, 4),
                 stride=(1, 1, 1, 1), endMask=2, shrinkAxisMask=4)


@case("reshape_attr")
def _reshape():
    x = rand(1, 4, 3, 2)
    return unary("Reshape", x, (1, 12, 2), x.reshape(1, 12, 2), shape=(1, -1, 2))


@case("flatten")
def _flatten():
    x = rand(2, 3, 2, 2)
    return unary("Flatten", x, (2, 12), x.reshape(2, 12))


@case("squeeze")
def _squeeze():
    x = rand(1, 1, 3, 1)
    return unary("Squeeze", x, (1, 3), x.reshape(1, 3), axis=(1, 3))


@case("unsqueeze")
def _unsqueeze():
    x = rand(2, 3)
    return unary("Unsqueeze", x, (2, 1, 3), x[:, None, :], axis=(1,))


@case("expanddims")
def _expand():
    x = rand(2, 3)
    return unary("ExpandDims", x, (2, 3, 1), x[:, :, None], dim=2)


@case("transpose_perm")
def _transpose():
    x = rand(2, 3, 4)
    return unary("Transpose", x, (4, 2, 3), x.transpose(2, 0, 1), perm=(2, 0, 1))


@case("permute")
def _permute():
    x = rand(1, 2, 3, 4)
    return unary("Permute", x, (1, 3, 4, 2), x.transpose(0, 2, 3, 1), order=(0, 2, 3, 1))


@case("nchw2nhwc")
def _nchw2nhwc():
    x = rand(1, 2, 3, 4)
    return unary("Nchw2Nhwc", x, (1, 3, 4, 2), x.transpose(0, 2, 3, 1), fmt=NCHW)


@case("nhwc2nchw")
def _nhwc2nchw():
    x = rand(1, 2, 3, 4)
    return unary("Nhwc2Nchw", x, (1, 4, 2, 3), x.transpose(0, 3, 1, 2))


@case("pad_constant")
def _pad():
    x = rand(1, 3, 4, 2)
    pads = (0, 0, 1, 2, 2, 0, 0, 0)
    return unary("Pad", x, (1, 6, 6, 2), np.pad(x, np.reshape(pads, (4, 2)), constant_values=0.5), paddings=pads,
                 paddingMode=0, constantValue=0.5)


@case("pad_reflect")
def _pad_reflect():
    x = rand(1, 4, 5, 2)
    pads = (0, 0, 1, 2, 2, 1, 0, 0)
    return unary("Pad", x, (1, 7, 8, 2), np.pad(x, np.reshape(pads, (4, 2)), mode="reflect"), paddings=pads,
                 paddingMode=1)


@case("softmax_last")
def _softmax():
    x = rand(1, 10, 2, scale=2)
    return unary("SoftMax", x, x.shape, ref.softmax(x, -1), axis=-1)


@case("softmax_axis1")
def _softmax1():
    x = rand(2, 5, 3)
    return unary("SoftMax", x, x.shape, ref.softmax(x, 1), axis=1)


@case("resize_nearest")
def _resize_nearest():
    x = rand(1, 3, 4, 2)
    return unary("Resize", x, (1, 6, 8, 2), ref.resize_nearest_asymmetric(x, 6, 8), method=1, newHeight=6,
                 newWidth=8)


@case("resize_linear_align_corners")
def _resize_linear():
    x = rand(1, 3, 4, 2)
    return unary("Resize", x, (1, 5, 7, 2), ref.resize_linear(x, 5, 7, True), method=0, newHeight=5, newWidth=7,
                 alignCorners=True)


@case("resize_linear_asymmetric")
def _resize_linear_asym():
    x = rand(1, 3, 4, 2)
    return unary("Resize", x, (1, 6, 8, 2), ref.resize_linear(x, 6, 8, False), method=0, newHeight=6, newWidth=8)


@case("shape")
def _shape():
    x = rand(2, 3, 5)
    g, inputs, _ = unary("Shape", x, (3,), np.array([2, 3, 5]))
    g.tensors[g.outputs[0]].dtype = 34
    return g, inputs, [np.array([2, 3, 5])]


@case("cast_to_int32")
def _cast():
    x = rand(1, 6, scale=5)
    g, inputs, _ = unary("Cast", x, x.shape, None, srcT=43, dstT=34)
    g.tensors[g.outputs[0]].dtype = 34
    return g, inputs, [x.astype(np.int32)]


def quant(scale: float, zero: int = 0, bits: int = 8) -> dict:
    return {"scale": scale, "zero_point": zero, "min": 0.0, "max": 0.0, "narrow_range": True, "num_bits": bits,
            "inited": True, "var_corr": 1.0, "mean_corr": 0.0, "dst_dtype": 32}


@case("quantdtypecast_float_to_int8")
def _qcast():
    x = rand(1, 8, scale=2)
    g, inputs, _ = unary("QuantDTypeCast", x, x.shape, None, srcT=43, dstT=INT8)
    out = g.tensors[g.outputs[0]]
    out.dtype, out.quant_params = INT8, (quant(0.05, 3),)
    return g, inputs, [np.clip(np.round(x / 0.05) + 3, -128, 127)]


@case("conv_int8_weights_per_channel")
def _conv_perchannel():
    x = rand(1, 6, 5, 3)
    q = RNG.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    scales = [0.01, 0.02, 0.005, 0.03]
    w = q.astype(np.float64) * np.array(scales)[:, None, None, None]
    g = V0Graph()
    o = g.activation((1, 6, 5, 4))
    g.node("Conv2D", [g.input(x.shape), g.const(q, KHWC, quant=tuple(quant(s) for s in scales))], [o], quant_type=2,
           group=1, channelIn=3, channelOut=4, **window_attrs((3, 3), (1, 1), (1, 1, 1, 1), "pad"))
    g.outputs = [o]
    return g, [x], [ref.conv2d(x, w, None, pads=(1, 1, 1, 1))]


@pytest.fixture(scope="module")
def op_results(runtime_python, tmp_path_factory) -> dict[str, tuple[list[np.ndarray], list[np.ndarray] | str]]:
    """Every case upgraded and run in one MindSpore Lite process: name -> (expected, outputs or error)."""
    folder = tmp_path_factory.mktemp("legacy-ops")
    jobs, expected = [], {}
    for name, build in CASES.items():
        graph, inputs, outputs = build()
        src = graph.save(folder / f"{name}.v0.ms")
        upgrade_ms(src, folder / f"{name}.ms")
        jobs.append((folder / f"{name}.ms", inputs))
        expected[name] = outputs
    results = run_models(runtime_python, jobs)
    return {name: (expected[name], result) for name, result in zip(CASES, results)}


@pytest.mark.parametrize("name", list(CASES))
def test_op_matches_numpy_reference(op_results, name):
    expected, got = op_results[name]
    assert not isinstance(got, str), f"MindSpore Lite 2.0.0 refused the upgraded {name}: {got}"
    assert len(got) == len(expected)
    for want, have in zip(expected, got):
        want = np.asarray(want)
        assert have.shape == want.shape, f"{name}: shape {have.shape}, expected {want.shape}"
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        assert np.abs(have.astype(np.float64) - want).max() <= tol, f"{name}: max |diff| {np.abs(have - want).max()}"


# -- the real 2020 files ---------------------------------------------------------------------------------------


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def legacy_dir(shared_dir) -> Path:
    return shared_dir / "legacy-ms"


def test_mobilefacenet_reproduces_reference(legacy_dir, runtime_python, tmp_path, record_property):
    report = upgrade_ms(legacy_dir / "mobilefacenet0924.ms", tmp_path / "mobilefacenet.ms")
    assert report.op_counts["Conv2D"] == 34 and sum(report.op_counts.values()) == 301
    x = np.fromfile(legacy_dir / "facenet_input.f32", np.float32).reshape(1, 112, 112, 3)
    (result,) = run_models(runtime_python, [(tmp_path / "mobilefacenet.ms", [x])])
    assert not isinstance(result, str), result
    want = np.fromfile(legacy_dir / "facenet_output.f32", np.float32)
    err = relative_error(result[0].reshape(-1), want)
    record_property("mobilefacenet_max_rel_error", err)
    print(f"MobileFaceNet: max|diff| / max|ref| = {err:.3g}")
    assert result[0].shape == (1, 128, 1, 1)
    assert err <= 1e-3


RETINA_LEVELS = {"stride 8": slice(0, 7680), "stride 16": slice(7680, 9600), "stride 32": slice(9600, 10080)}


def retina_reference(legacy_dir: Path) -> list[np.ndarray]:
    """loc, conf, landmarks as [10080, C]: the files store each output channel-planar ([C, 10080])."""
    return [np.fromfile(legacy_dir / f"retinaface_out_{i}.f32", np.float32).reshape(c, -1).T
            for i, c in enumerate((4, 2, 10))]


def run_retina(legacy_dir: Path, python: str, model: Path) -> list[np.ndarray]:
    x = np.fromfile(legacy_dir / "retinaface_input.f32", np.float32).reshape(1, 640, 380, 3)
    (result,) = run_models(python, [(model, [x])])
    assert not isinstance(result, str), result
    return [r[0] for r in result]


def test_retinaface_upgrade_matches_where_the_reference_runtime_was_sound(legacy_dir, runtime_python, tmp_path,
                                                                         record_property):
    """The stride-32 level never passes through the first transposed convolution: it reproduces the reference.

    The stride-8/16 levels do not: the reference was computed with that layer acting as nearest-neighbour 2x
    upsampling (all-ones weights, see the next test), while the file stores MindSpore's untrained default
    initialisation there (see test_retinaface_upsamplers_differ_only_in_their_weight_values). MindSpore Lite 1.0's
    code runs the stored weights, so the upgrader keeps them.
    """
    upgrade_ms(legacy_dir / "retinaface0924.ms", tmp_path / "retinaface.ms")
    got = run_retina(legacy_dir, runtime_python, tmp_path / "retinaface.ms")
    for name, have, want in zip(("loc", "conf", "landmarks"), got, retina_reference(legacy_dir)):
        assert have.shape == want.shape
        rows = RETINA_LEVELS["stride 32"]
        err = relative_error(have[rows], want[rows])
        record_property(f"retinaface_{name}_stride32_max_rel_error", err)
        print(f"RetinaFace {name} (stride 32): {err:.3g}; whole output: {relative_error(have, want):.3g}")
        assert err <= 1e-3


def test_retinaface_reproduces_reference_with_the_2020_runtimes_deconv_weights(legacy_dir, runtime_python, tmp_path,
                                                                              record_property):
    """Give the first DeDepthwiseConv2D the second one's (all-ones) weights: all three outputs match the reference."""
    graph = read_v0((legacy_dir / "retinaface0924.ms").read_bytes())
    first, second = [n for n in graph.nodes if n.op == "DeDepthwiseConv2D"]
    graph.tensors[first.inputs[1]].data = graph.tensors[second.inputs[1]].data
    (tmp_path / "retinaface.ms").write_bytes(write_current(ops.translate(graph)))
    got = run_retina(legacy_dir, runtime_python, tmp_path / "retinaface.ms")
    for name, have, want in zip(("loc", "conf", "landmarks"), got, retina_reference(legacy_dir)):
        err = relative_error(have, want)
        record_property(f"retinaface_{name}_max_rel_error", err)
        print(f"RetinaFace {name}: max|diff| / max|ref| = {err:.3g}")
        assert err <= 1e-3



def test_retinaface_upsamplers_differ_only_in_their_weight_values(legacy_dir):
    """The two DeDepthwiseConv2D nodes are identical but for the weight values, which pass through unchanged.

    Same attributes, same weight tensor metadata (dims, KHWC format, float32, const, no quantization), each weight
    consumed by its own node only. The second layer's weights are all ones; the first's have the statistics of
    MindSpore's default ``nn.Conv2dTranspose`` initialiser (``weight_init='normal'``, N(0, 0.01)), i.e. untrained.
    """
    graph = read_v0((legacy_dir / "retinaface0924.ms").read_bytes())
    first, second = [n for n in graph.nodes if n.op == "DeDepthwiseConv2D"]
    assert first.attrs == second.attrs and first.quant_type == second.quant_type == 0
    assert first.attrs["channelMultiplier"] == 1 and (first.attrs["kernelH"], first.attrs["strideH"]) == (2, 2)
    w1, w2 = graph.tensors[first.inputs[1]], graph.tensors[second.inputs[1]]
    for w in (w1, w2):
        assert (w.dims, w.format, w.dtype, w.node_type, w.quant_params) == ((64, 2, 2, 1), 7, 43, 0, ())
    for index in (first.inputs[1], second.inputs[1]):
        assert sum(index in n.inputs for n in graph.nodes) == 1
    stored = np.frombuffer(w1.data, "<f4")
    assert np.all(np.frombuffer(w2.data, "<f4") == 1.0)
    assert abs(stored.mean()) < 0.003 and 0.008 < stored.std() < 0.012 and np.abs(stored).max() < 0.05
    upgraded = ops.translate(graph)
    assert upgraded.tensors[first.inputs[1]].data == w1.data  # constant data passes through unchanged

# -- graph surgery on a current-schema file --------------------------------------------------------------------


def test_added_output_equals_the_onnx_model_with_that_tensor_marked_as_output(runtime_python, tmp_path):
    """Expose the ReLU'd conv features of a converted TinyNet; the 2.0.0 converter names that tensor 'conv1'."""
    import onnx
    from helpers.onnx_graphs import TinyNet

    from fiftyone_mslite.modelfiles.convert import convert_model

    net = TinyNet.random(seed=3)
    plain = net.save(tmp_path / "tiny.onnx")
    convert_model(plain, tmp_path / "tiny.ms")
    marked = onnx.load(str(plain))
    marked.graph.output.append(onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [1, 4, 8, 8]))
    onnx.save(marked, str(tmp_path / "tiny_marked.onnx"))
    convert_model(tmp_path / "tiny_marked.onnx", tmp_path / "tiny_marked.ms")

    report = upgrade_ms(tmp_path / "tiny.ms", tmp_path / "tiny_features.ms", add_outputs=("conv1",))
    assert report.added_outputs == ("conv1",)
    x = np.random.default_rng(5).normal(size=(1, 8, 8, 3)).astype(np.float32)
    surgery, reference = run_models(runtime_python, [(tmp_path / "tiny_features.ms", [x]),
                                                     (tmp_path / "tiny_marked.ms", [x])])
    assert not isinstance(surgery, str) and not isinstance(reference, str)
    probs, features = surgery
    ref_probs, ref_features = sorted(reference, key=lambda a: a.size)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-6)
    assert features.shape == (1, 8, 8, 4)  # the internal NHWC layout; the ONNX-marked output is NCHW
    np.testing.assert_allclose(features.transpose(0, 3, 1, 2), ref_features.reshape(1, 4, 8, 8), atol=1e-5)
    expected = np.maximum(ref.conv2d(x, net.w1.transpose(0, 2, 3, 1), net.b1, pads=(1, 1, 1, 1)), 0)
    np.testing.assert_allclose(features, expected, atol=1e-4)

"""Per-operator translation of legacy (v0) primitives into current ones.

The rule for every operator: the current primitive and the input tensors written here must make MindSpore Lite
build the same kernel parameters as its v0 populate function (``src/ops/populate/v0/*_populate_v0.cc``) and
compat layer (``src/ops/compat/v0/``, which turned attributes such as Reshape's shape into const input tensors)
built from the v0 primitive. Constant data passes through untouched, as it did in the 1.x runtimes that ran v0
files. A variant whose meaning is not certain (e.g. a depthwise channel multiplier) is refused, never guessed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import schema as S
from .graph import Graph, Node, SubGraph, Tensor

INT32, _FLOAT32 = 34, 43  # MindSpore TypeIds
_QUANT_DTYPES = {32: "<i1", 33: "<i2", 37: "<u1"}  # int8, int16, uint8
_WEIGHT_QUANT = 2

# Activation types the 2.0 Activation kernel accepts (v0 and current agree on these numbers).
_ACTIVATIONS = {1: "RELU", 2: "SIGMOID", 3: "RELU6", 4: "ELU", 5: "LEAKY_RELU", 9: "SOFTPLUS", 10: "TANH",
                12: "HSWISH", 13: "HSIGMOID", 16: "HARD_TANH", 18: "SWISH"}
_LEAKY_RELU = 5
_REDUCE_MODES = {0: "mean", 1: "max", 2: "min", 3: "prod", 4: "sum", 5: "sum-square", 6: "abs-sum"}
_POOL_MAX, _POOL_MEAN = 0, 1
_RESIZE_METHODS = {0: "linear", 1: "nearest", 2: "cubic"}
_ALIGN_CORNERS, _ASYMMETRIC = 1, 0
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class Refused(Exception):
    """This node cannot be translated faithfully; the message says why (collected per node by the caller)."""


@dataclass
class Translation:
    """The current primitive for one v0 node; ``then_activation`` appends an Activation node after it."""

    op: str
    attrs: dict[str, Any]
    inputs: list[int]
    then_activation: int = S.ACT_NONE


@dataclass
class _Context:
    """The tensors being written: the source's, plus the const tensors the translation adds."""

    tensors: list[Tensor]
    added: dict[int, list[int]] = field(default_factory=dict)  # node index -> new tensor indices
    node_index: int = 0

    def dims(self, index: int) -> tuple[int, ...]:
        return self.tensors[index].dims

    def const(self, node: Node, what: str, values: Any, scalar: bool = False, dtype: str = "<i4",
              type_id: int = INT32) -> int:
        array = np.asarray(values, dtype=dtype)
        dims = () if scalar else tuple(array.shape) or (1,)
        self.tensors.append(Tensor(name=f"{node.name}/{what}", dtype=type_id, dims=dims, format=S.FORMAT_NHWC,
                                   node_type=S.NODE_VALUE, data=array.tobytes()))
        self.added.setdefault(self.node_index, []).append(len(self.tensors) - 1)
        return len(self.tensors) - 1


def _check_ranges(node: Node) -> None:
    """Every 64-bit integer attribute must fit int32: the v0 runtime read them all as int (compat layer and
    populate functions), and the translations turn several (Reshape.shape, Permute.order) into int32 tensors."""
    for name, kind, default in S.V0_TABLES.get(node.op, ()):
        if kind in ("i64", "[i64]"):
            value = node.attrs.get(name, default)
            bad = [v for v in (value if kind == "[i64]" else (value,)) if not _INT32_MIN <= v <= _INT32_MAX]
            if bad:
                raise Refused(f"has attribute {name} = {bad[0]}, outside the int32 range the v0 runtime read it in")


def _fused_act(value: int) -> int:
    """Conv, pooling and FullConnection kernels applied only ReLU/ReLU6 (v0 populate: anything else -> none)."""
    return value if value in (S.ACT_RELU, S.ACT_RELU6) else S.ACT_NONE


def _pad_mode(value: int) -> int:
    return {S.V0_PAD_SAME_UPPER: S.PAD_SAME, S.V0_PAD_VALID: S.PAD_VALID}.get(value, S.PAD_PAD)


def _need_inputs(node: Node, *counts: int) -> None:
    if len(node.inputs) not in counts:
        raise Refused(f"has {len(node.inputs)} inputs, expected {' or '.join(map(str, counts))}")


def _weight(node: Node, ctx: _Context) -> tuple[int, ...]:
    dims = ctx.dims(node.inputs[1])
    if len(dims) != 4 or not ctx.tensors[node.inputs[1]].is_const:
        raise Refused(f"has a weight of shape {list(dims)} that is not a constant 4-D tensor")
    return dims


def _window(node: Node, a: dict[str, Any], kh: str, kw: str, dilation: bool = True) -> dict[str, Any]:
    values = [a[kh], a[kw], a["strideH"], a["strideW"]] + ([a["dilateH"], a["dilateW"]] if dilation else [])
    if min(values) < 1:
        raise Refused(f"has a kernel/stride/dilation below 1 ({values})")
    pads = [a["padUp"], a["padDown"], a["padLeft"], a["padRight"]]
    if min(pads) < 0:
        raise Refused(f"has negative padding {pads}")
    out = {"kernel_size": [a[kh], a[kw]], "pad_mode": _pad_mode(a["padMode"]), "format": S.FORMAT_NHWC}
    if dilation:
        out |= {"stride": [a["strideH"], a["strideW"]], "dilation": [a["dilateH"], a["dilateW"]], "pad_list": pads}
    else:
        out |= {"strides": [a["strideH"], a["strideW"]], "pad": pads}
    return out


def _conv(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 2, 3)
    a = node.attrs
    out_c, kh, kw, in_c = _weight(node, ctx)
    if (kh, kw) != (a["kernelH"], a["kernelW"]):
        raise Refused(f"declares a {a['kernelH']}x{a['kernelW']} kernel but holds {kh}x{kw} weights")
    # nnacl's Conv2dInferShape takes group 0 as one group per output channel, as the v0 runtime did.
    group = a["group"] or out_c
    attrs = _window(node, a, "kernelH", "kernelW") | {
        "mode": 1, "group": group, "in_channel": in_c * group, "out_channel": out_c,
        "activation_type": _fused_act(a["activationType"])}
    return Translation("Conv2DFusion", attrs, node.inputs)


def _depthwise(node: Node, ctx: _Context, op: str) -> Translation:
    """DepthwiseConv2D / DeDepthwiseConv2D: one group per channel, weights [C, kh, kw, 1] as the kernels read them."""
    _need_inputs(node, 2, 3)
    a = node.attrs
    channels, kh, kw, one = _weight(node, ctx)
    if a["channelMultiplier"] not in (0, 1) or one != 1:
        raise Refused(f"has channel multiplier {a['channelMultiplier']} (weights {[channels, kh, kw, one]}); "
                      "only multiplier 1 is supported")
    if a["channelIn"] not in (0, channels) or (kh, kw) != (a["kernelH"], a["kernelW"]):
        raise Refused(f"declares channelIn {a['channelIn']}, kernel {a['kernelH']}x{a['kernelW']} but holds "
                      f"weights {[channels, kh, kw, one]}")
    attrs = _window(node, a, "kernelH", "kernelW") | {
        "mode": 1, "group": channels, "in_channel": channels, "out_channel": channels,
        "activation_type": _fused_act(a["activationType"])}
    if op == "Conv2dTransposeFusion":
        attrs["output_paddings"] = [0, 0]
    return Translation(op, attrs, node.inputs)


def _deconv(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 2, 3)
    a = node.attrs
    if a["group"] > 1:
        raise Refused(f"is a grouped deconvolution (group {a['group']}), which the v0 runtime ran as group 1")
    in_c, kh, kw, out_c = _weight(node, ctx)  # deconvolution weights are [in, kh, kw, out]
    if (kh, kw) != (a["kernelH"], a["kernelW"]):
        raise Refused(f"declares a {a['kernelH']}x{a['kernelW']} kernel but holds {kh}x{kw} weights")
    attrs = _window(node, a, "kernelH", "kernelW") | {
        "mode": 1, "group": 1, "in_channel": in_c, "out_channel": out_c,
        "activation_type": _fused_act(a["activationType"]), "output_paddings": [0, 0]}
    return Translation("Conv2dTransposeFusion", attrs, node.inputs)


def _pooling(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 1)
    a = node.attrs
    if a["poolingMode"] not in (_POOL_MAX, _POOL_MEAN):
        raise Refused(f"has pooling mode {a['poolingMode']}")
    if a["avgMode"]:
        raise Refused(f"has avgMode {a['avgMode']}, which the current average-pooling kernel does not offer")
    if a["global"]:
        window = {"kernel_size": [1, 1], "strides": [1, 1], "pad": [0, 0, 0, 0], "pad_mode": S.PAD_PAD,
                  "format": S.FORMAT_NHWC}
    else:
        window = _window(node, a, "windowH", "windowW", dilation=False)
    attrs = window | {"round_mode": a["roundMode"], "global": bool(a["global"]),
                      "activation_type": _fused_act(a["activationType"])}
    return Translation("MaxPoolFusion" if a["poolingMode"] == _POOL_MAX else "AvgPoolFusion", attrs, node.inputs)


def _activation(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 1)
    a = node.attrs
    if a["type"] not in _ACTIVATIONS:
        raise Refused(f"has activation type {a['type']}, which no MindSpore Lite CPU kernel computes")
    attrs = {"activation_type": a["type"], "alpha": a["alpha"], "min_val": a["min_val"], "max_val": a["max_val"],
             "approximate": False, "beta": 0.0}
    return Translation("Activation", attrs, node.inputs)


def _leaky_relu(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 1)
    attrs = {"activation_type": _LEAKY_RELU, "alpha": node.attrs["negativeSlope"], "min_val": 0.0, "max_val": 0.0,
             "approximate": False, "beta": 0.0}
    return Translation("Activation", attrs, node.inputs)


def _prelu(node: Node, ctx: _Context) -> Translation:
    _need_inputs(node, 1, 2)
    inputs = list(node.inputs)
    if len(inputs) == 1:
        if not node.attrs["slope"]:
            raise Refused("has neither a slope input nor a slope attribute")
        inputs.append(ctx.const(node, "slope", node.attrs["slope"], dtype="<f4", type_id=_FLOAT32))
    return Translation("PReLUFusion", {"channel_shared": bool(node.attrs["channelShared"])}, inputs)


def _arithmetic(op: str, with_activation: bool) -> Callable[[Node, _Context], Translation]:
    def rule(node: Node, ctx: _Context) -> Translation:
        _need_inputs(node, 2)
        if not with_activation:
            return Translation(op, {}, node.inputs)
        # The fused activation becomes its own node: 2.0.0's broadcasting Sub/Div kernels skip a fused ReLU.
        act = node.attrs["activationType"]
        if act not in (S.ACT_NONE, S.ACT_RELU, S.ACT_RELU6):
            raise Refused(f"has fused activation type {act}")
        return Translation(op, {"activation_type": S.ACT_NONE}, node.inputs, then_activation=act)
    return rule


def _with_tensor(op: str, attr: str, what: str, scalar: bool = False,
                 attrs: Callable[[dict[str, Any]], dict[str, Any]] = lambda a: {}) -> Callable:
    """Ops whose v0 attribute became a const int32 input (compat layer), when the node has no such input yet."""
    def rule(node: Node, ctx: _Context) -> Translation:
        _need_inputs(node, 1, 2)
        inputs = list(node.inputs)
        if len(inputs) == 1:
            value = node.attrs[attr]
            if not scalar and not len(value):
                raise Refused(f"has no {attr} attribute and no {what} input")
            inputs.append(ctx.const(node, what, value, scalar=scalar))
        return Translation(op, attrs(node.attrs), inputs)
    return rule


def _fixed_perm(perm: list[int]) -> Callable[[Node, _Context], Translation]:
    def rule(node: Node, ctx: _Context) -> Translation:
        _need_inputs(node, 1)
        if len(ctx.dims(node.inputs[0])) != 4:
            raise Refused(f"transposes a {len(ctx.dims(node.inputs[0]))}-D tensor; the v0 kernel took 4-D only")
        return Translation("Transpose", {}, [node.inputs[0], ctx.const(node, "perm", perm)])
    return rule


def _reduce(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    if a["mode"] not in _REDUCE_MODES:
        raise Refused(f"has reduce mode {a['mode']}")
    attrs = {"keep_dims": bool(a["keepDims"]), "mode": a["mode"], "reduce_to_end": bool(a["reduceToEnd"]),
             "coeff": a["coeff"]}
    return _with_tensor("ReduceFusion", "axes", "axes", attrs=lambda _: attrs)(node, ctx)


def _mean(node: Node, ctx: _Context) -> Translation:
    attrs = {"keep_dims": bool(node.attrs["keepDims"]), "mode": 0, "reduce_to_end": False, "coeff": 1.0}
    return _with_tensor("ReduceFusion", "axis", "axes", attrs=lambda _: attrs)(node, ctx)


def _slice(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 1, 3)
    inputs = list(node.inputs)
    if len(inputs) == 1:
        if len(a["begin"]) != len(a["size"]) or not a["begin"]:
            raise Refused(f"has begin {list(a['begin'])} and size {list(a['size'])} of different lengths")
        inputs += [ctx.const(node, "begin", a["begin"]), ctx.const(node, "size", a["size"])]
    axes = a["axes"] or list(range(max(len(a["begin"]), len(ctx.dims(node.inputs[0])))))
    return Translation("SliceFusion", {"axes": list(axes)}, inputs)


def _strided_slice(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 1, 2, 3, 4)
    inputs = list(node.inputs)
    for what in ("begin", "end", "stride")[len(inputs) - 1:]:
        if not a[what]:
            raise Refused(f"has no {what} attribute and no {what} input")
        inputs.append(ctx.const(node, what, a[what]))
    masks = ("beginMask", "endMask", "ellipsisMask", "newAxisMask", "shrinkAxisMask")
    names = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    return Translation("StridedSlice", {n: a[m] for n, m in zip(names, masks)}, inputs)


def _split(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 1)
    count = a["numberSplit"] or len(node.outputs)
    if count != len(node.outputs) or (a["sizeSplits"] and len(a["sizeSplits"]) != count):
        raise Refused(f"splits into {count} parts ({list(a['sizeSplits'])}) but has {len(node.outputs)} outputs")
    return Translation("Split", {"output_num": count, "size_splits": list(a["sizeSplits"]), "axis": a["splitDim"]},
                       node.inputs)


def _pad(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 1, 2)
    inputs = list(node.inputs)
    if len(inputs) == 1:
        if not a["paddings"] or len(a["paddings"]) % 2:
            raise Refused(f"has paddings {list(a['paddings'])}")
        inputs.append(ctx.const(node, "paddings", np.reshape(a["paddings"], (-1, 2))))
    return Translation("PadFusion", {"padding_mode": a["paddingMode"], "constant_value": a["constantValue"]},
                       inputs)


def _resize(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 1, 2)
    if a["method"] not in _RESIZE_METHODS:
        raise Refused(f"has resize method {a['method']}")
    # v0 populate: coordinate mode = alignCorners ? ALIGN_CORNERS : ASYMMETRIC; nearest mode and cubic
    # coefficient were left zero.
    attrs = {"format": S.FORMAT_NHWC, "method": a["method"], "new_height": a["newHeight"],
             "new_width": a["newWidth"], "preserve_aspect_ratio": bool(a["preserveAspectRatio"]),
             "coordinate_transform_mode": _ALIGN_CORNERS if a["alignCorners"] else _ASYMMETRIC,
             "cubic_coeff": 0.0, "exclude_outside": 0, "extrapolation_value": 0.0, "nearest_mode": 0}
    return Translation("Resize", attrs, node.inputs)


def _simple(op: str, inputs: tuple[int, ...], attrs: Callable[[dict[str, Any]], dict[str, Any]] = lambda a: {}):
    def rule(node: Node, ctx: _Context) -> Translation:
        _need_inputs(node, *inputs)
        return Translation(op, attrs(node.attrs), node.inputs)
    return rule


def _full_connection(node: Node, ctx: _Context) -> Translation:
    a = node.attrs
    _need_inputs(node, 3 if a["hasBias"] else 2)
    attrs = {"has_bias": bool(a["hasBias"]), "use_axis": bool(a["useAxis"]), "axis": a["axis"],
             "activation_type": _fused_act(a["activationType"])}
    return Translation("FullConnection", attrs, node.inputs)


RULES: dict[str, Callable[[Node, _Context], Translation]] = {
    "Conv2D": _conv,
    "DepthwiseConv2D": lambda n, c: _depthwise(n, c, "Conv2DFusion"),
    "DeDepthwiseConv2D": lambda n, c: _depthwise(n, c, "Conv2dTransposeFusion"),
    "DeConv2D": _deconv,
    "FullConnection": _full_connection,
    "MatMul": _simple("MatMulFusion", (2,), lambda a: {"transpose_a": a["transposeA"], "transpose_b": a["transposeB"],
                                                      "activation_type": S.ACT_NONE}),
    "BiasAdd": _simple("BiasAdd", (2,), lambda a: {"format": S.FORMAT_NHWC}),
    "Add": _arithmetic("AddFusion", True),
    "Sub": _arithmetic("SubFusion", True),
    "Mul": _arithmetic("MulFusion", True),
    "Div": _arithmetic("DivFusion", True),
    "RealDiv": _arithmetic("RealDiv", False),
    "Maximum": _arithmetic("Maximum", False),
    "Minimum": _arithmetic("Minimum", False),
    "Activation": _activation,
    "LeakyReLU": _leaky_relu,
    "PReLU": _prelu,
    "Pooling": _pooling,
    "Mean": _mean,
    "Reduce": _reduce,
    "Concat": _simple("Concat", tuple(range(1, 65)), lambda a: {"axis": a["axis"]}),
    "Split": _split,
    "Slice": _slice,
    "StridedSlice": _strided_slice,
    "Reshape": _with_tensor("Reshape", "shape", "shape"),
    "Flatten": _simple("Flatten", (1,), lambda a: {"axis": 1}),
    "Squeeze": _simple("Squeeze", (1,), lambda a: {"axis": list(a["axis"])}),
    "Unsqueeze": _simple("Unsqueeze", (1,), lambda a: {"axis": list(a["axis"])}),
    "ExpandDims": _with_tensor("ExpandDims", "dim", "dim", scalar=True),
    "Transpose": _with_tensor("Transpose", "perm", "perm"),
    "Permute": _with_tensor("Transpose", "order", "perm"),
    "Nchw2Nhwc": _fixed_perm([0, 2, 3, 1]),
    "Nhwc2Nchw": _fixed_perm([0, 3, 1, 2]),
    "Pad": _pad,
    "Scale": _simple("ScaleFusion", (2, 3), lambda a: {"axis": a["axis"], "activation_type": a["activationType"]}),
    "BatchNorm": _simple("BatchNorm", (3,), lambda a: {"epsilon": a["epsilon"], "format": S.FORMAT_NHWC,
                                                      "is_training": False}),
    "FusedBatchNorm": _simple("FusedBatchNorm", (5,), lambda a: {"epsilon": a["epsilon"], "momentum": a["momentum"],
                                                                "mode": 0}),
    "SoftMax": _simple("Softmax", (1,), lambda a: {"axis": [a["axis"]]}),
    "Resize": _resize,
    "Shape": _simple("Shape", (1,)),
    "Cast": _with_tensor("Cast", "dstT", "dst_type", scalar=True),
    "QuantDTypeCast": _simple("QuantDTypeCast", (1,), lambda a: {"src_t": a["srcT"], "dst_t": a["dstT"], "axis": 0}),
}
SUPPORTED = frozenset(RULES)


@dataclass(frozen=True)
class Problem:
    """One node that cannot be upgraded."""

    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} '{self.node}': {self.reason}"


class UnsupportedGraph(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def _dequantize_weights(node: Node, ctx: _Context) -> int:
    """Weight-quantized nodes (v0 ``QuantType.WeightQuant``): the int8/int16 weights become float32.

    The v0 runtime dequantized such weights at load time, value = (q - zero_point) * scale per tensor or per
    output channel (axis 0); 2.0.0 fails to pack dequantized weights of an upgraded file, so the upgrade does it.
    Returns the node's new quant type (none).
    """
    for index in node.inputs[1:]:
        t = ctx.tensors[index]
        if not t.is_const or t.dtype not in _QUANT_DTYPES:
            continue
        if t.quant_clusters:
            raise Refused("has clustered (k-means) weight quantization")
        q = np.frombuffer(t.data, _QUANT_DTYPES[t.dtype]).astype(np.float64)
        params = t.quant_params
        if len(params) not in (1, t.dims[0] if t.dims else 1):
            raise Refused(f"has {len(params)} quantization parameters for a weight of shape {list(t.dims)}")
        scale = np.array([p["scale"] for p in params]).reshape(-1, *([1] * max(len(t.dims) - 1, 0)))
        zero = np.array([p["zero_point"] for p in params]).reshape(scale.shape)
        values = (q.reshape(t.dims or (1,)) - zero) * scale
        ctx.tensors[index] = Tensor(t.name, _FLOAT32, t.dims, t.format, t.node_type,
                                    values.astype("<f4").tobytes())
    return 0


def tensor_name(tensor: Tensor, index: int, taken: set[str]) -> str:
    """The tensor's own name, or its index (how v0 tools showed unnamed tensors), made unique."""
    name = tensor.name or str(index)
    return name if name not in taken else f"{name}#{index}"


def problems_of(graph: Graph) -> list[Problem]:
    """Every node that cannot be translated, without building anything (for summaries)."""
    try:
        translate(graph)
    except UnsupportedGraph as exc:
        return exc.problems
    return []


def translate(graph: Graph) -> Graph:
    """The current-schema equivalent of a v0 ``graph``; raises UnsupportedGraph listing every refused node."""
    taken: set[str] = set()
    tensors = []
    for i, t in enumerate(graph.tensors):
        name = tensor_name(t, i, taken)
        taken.add(name)
        fmt = S.CURRENT_FORMAT_NC4HW4 if t.format == S.V0_FORMAT_NC4HW4 else t.format
        tensors.append(Tensor(name, t.dtype, t.dims, fmt, t.node_type, t.data, t.quant_params, t.quant_clusters))
    ctx = _Context(tensors)
    nodes: list[Node] = []
    problems: list[Problem] = []
    new_index: dict[int, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        name = node.name or f"{node.op}-{i}"
        node = Node(name, node.op, node.attrs, node.inputs, node.outputs, node.quant_type)
        ctx.node_index = i
        rule = RULES.get(node.op)
        if rule is None:
            problems.append(Problem(name, node.op, "no translation to the current schema"))
            continue
        try:
            _check_ranges(node)
            tr = rule(node, ctx)
            quant_type = _dequantize_weights(node, ctx) if node.quant_type == _WEIGHT_QUANT else node.quant_type
        except Refused as exc:
            problems.append(Problem(name, node.op, str(exc)))
            continue
        new_index[i] = [len(nodes)]
        outputs = list(node.outputs)
        if tr.then_activation != S.ACT_NONE:
            first = ctx.tensors[outputs[0]]
            ctx.tensors.append(Tensor(f"{name}/before_activation", first.dtype, first.dims, first.format, S.NODE_CNODE))
            ctx.added.setdefault(i, []).append(len(ctx.tensors) - 1)
            nodes.append(Node(name, tr.op, tr.attrs, tr.inputs, [len(ctx.tensors) - 1], quant_type))
            attrs = {"activation_type": tr.then_activation, "alpha": 0.0, "min_val": 0.0, "max_val": 0.0,
                     "approximate": False, "beta": 0.0}
            new_index[i].append(len(nodes))
            nodes.append(Node(f"{name}/activation", "Activation", attrs, [len(ctx.tensors) - 1], outputs, quant_type))
        else:
            nodes.append(Node(name, tr.op, tr.attrs, tr.inputs, outputs, quant_type))
    if problems:
        raise UnsupportedGraph(problems)
    subgraphs = [SubGraph(s.name, s.inputs, s.outputs, [k for n in s.nodes for k in new_index[n]],
                          s.tensors + [t for n in s.nodes for t in ctx.added.get(n, [])]) for s in graph.subgraphs]
    if not subgraphs:
        subgraphs = [SubGraph("subgraph_0_main_graph", list(graph.inputs), list(graph.outputs),
                              list(range(len(nodes))), list(range(len(ctx.tensors))))]
    return Graph(graph.name, graph.version, graph.fmk, list(graph.inputs), list(graph.outputs), nodes, ctx.tensors,
                 subgraphs)

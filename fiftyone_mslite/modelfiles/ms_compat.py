"""What MindSpore Lite 2.0.0 (our runtime) reads, and a static survey of a current-schema ``.ms`` against it.

Why: a file written by another converter release may hold things 2.0.0 cannot run — operators it has no type or
kernel for, weight encodings it fails on, training or device-offline nodes, outputs that nothing computes. The
survey names each, says whether the bridge (`bridge.py`) rewrites it, and gives `inspect` a verdict that is never
"loads" for a file 2.0.0 refuses: where the reading cannot decide, the verdict is None (a trial load decides).

Facts about 2.0.0 come from the wheel itself: the primitive union (``legacy/schema.CURRENT_PRIMITIVES``, read
from its compiled ``EnumNamesPrimitiveType``), the weight compression types it names (``FSE_INT`` is its last), and
trial loads of the corpus files (docs/model-files.md): its CPU build has no kernel for gradient, optimizer or loss
ops, and its shared weight packing fails on every weight-quantized convolution ("pack weight is nullptr").
"""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelFileError
from . import ms_weights as W
from .flatbuf import CorruptFlatBuffer, FlatReader, Table
from .legacy import schema as S
from .ms_training import cut_inference_graph

RUNTIME_VERSION = (2, 0, 0)
# Members appended to the union after 2.0.0 (mindspore-lite master's ops.fbs), for naming them in messages.
# Tensor slots beyond model_v0's ten: enableHuffmanCode, weightQuantCompressType, externalData.
T_HUFFMAN, T_COMPRESS, T_EXTERNAL = 10, 11, 12
N_QUANT_TYPE = 5
COMPRESS_TYPES = W.COMPRESS_TYPES
RUNTIME_COMPRESS_TYPES = 6  # 2.0.0 names NONE .. FSE_INT
QUANT_WEIGHT_TYPES = (2, 4)  # QuantType WeightQuant (deprecated) and QUANT_WEIGHT
CUSTOM_THIRD_PARTY = "ThirdPartyModel"

# Optimizers, gradients and losses: MindSpore Lite's inference build has no kernel for them (2.0.0 stops at
# "parameter generator is nullptr"); they only occur in training graphs (on-device training exports).
_TRAINING_OPS = frozenset({
    "Adam", "AdamWeightDecay", "SGD", "ApplyMomentum", "Assign", "AssignAdd",
    "SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "SigmoidCrossEntropyWithLogits",
    "BinaryCrossEntropy", "SmoothL1Loss", "NLLLoss", "Conv2DBackpropFilterFusion", "Conv2DBackpropInputFusion",
    "DeConv2DGradFilter", "LSTMGradData", "LSTMGradWeight",
})
# Ops seen loading in 2.0.0 in files of other converter releases (the corpus and the v0 upgrader's output):
# a file made only of these, with no other finding, loads. Anything else from another release is undecided.
VERIFIED_OPS = frozenset({
    "Activation", "AddFusion", "AvgPoolFusion", "BatchNorm", "BiasAdd", "Cast", "Concat", "Conv2DFusion",
    "Conv2dTransposeFusion", "DivFusion", "ExpandDims", "Flatten", "FullConnection", "FusedBatchNorm", "LeakyRelu",
    "MatMulFusion", "MaxPoolFusion", "Maximum", "Minimum", "MulFusion", "PReLUFusion", "PadFusion",
    "QuantDTypeCast", "RealDiv", "ReduceFusion", "Reshape", "Resize", "Rsqrt", "ScaleFusion", "Shape", "SliceFusion",
    "Softmax", "Split", "Squeeze", "StridedSlice", "SubFusion", "Transpose", "Unsqueeze",
})

_NO_INDEX = 0xFFFFFFFF


def is_training_op(op: str) -> bool:
    return op in _TRAINING_OPS or op.endswith("Grad")


def op_name(type_id: int) -> str:
    """The primitive's name for a union index, across releases (``#N`` when no known release has it)."""
    known = S.CURRENT_PRIMITIVES
    return known[type_id - 1] if 1 <= type_id <= len(known) else f"#{type_id}"


@dataclass
class MsTensor:
    """A ``Tensor`` table as far as compatibility goes; ``table`` is where it lies in the buffer."""

    name: str
    dtype: int
    dims: tuple[int, ...]
    data_len: int
    quant_count: int
    clusters: int
    huffman: bool
    compress: int
    external: int
    table: Table | None = None


@dataclass
class MsNode:
    name: str
    op: str
    type_id: int
    inputs: list[int]
    outputs: list[int]
    quant_type: int
    table: Table | None = None
    custom_type: str = ""


@dataclass
class MsGraph:
    """A current-schema graph, read without copying weights (``buf`` is the FlatBuffer it came from)."""

    buf: Any
    version: str
    inputs: list[int]
    outputs: list[int]
    nodes: list[MsNode]
    tensors: list[MsTensor]
    meta: Table | None = None

    def producers(self) -> dict[int, int]:
        return {t: i for i, node in enumerate(self.nodes) for t in node.outputs}

    def is_const(self, index: int) -> bool:
        t = self.tensors[index]
        return t.data_len > 0 or t.external > 0


def read_graph(buf: Any) -> MsGraph:
    """Read a current-schema (MSL2) buffer; CorruptFlatBuffer on any bad offset or index."""
    try:
        return _read_graph(FlatReader(buf))
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise CorruptFlatBuffer(f"unreadable FlatBuffer ({exc})") from None


def _read_graph(rd: FlatReader) -> MsGraph:
    meta = rd.root("MetaGraph")
    tensors = []
    for i, tab in enumerate(rd.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors")):
        what = f"allTensors[{i}]"
        tensors.append(MsTensor(
            name=rd.string(tab, S.T_NAME, f"{what}.name"),
            dtype=rd.scalar(tab, S.T_DTYPE, "i32", 0, f"{what}.dataType"),
            dims=tuple(rd.values(tab, S.T_DIMS, "[i32]", f"{what}.dims", limit=64)),
            data_len=rd.vector_len(tab, S.T_DATA, 1, f"{what}.data"),
            quant_count=rd.vector_len(tab, S.T_QUANT, 4, f"{what}.quantParams"),
            clusters=rd.vector_len(tab, S.T_CLUSTERS, 4, f"{what}.quantClusters"),
            huffman=bool(rd.scalar(tab, T_HUFFMAN, "bool", False, f"{what}.enableHuffmanCode")),
            compress=rd.scalar(tab, T_COMPRESS, "i32", 0, f"{what}.weightQuantCompressType"),
            external=rd.vector_len(tab, T_EXTERNAL, 4, f"{what}.externalData"),
            table=tab))
    nodes = []
    for i, tab in enumerate(rd.tables(meta, S.MG_NODES, "MetaGraph.nodes")):
        what = f"nodes[{i}]"
        name = rd.string(tab, S.N_NAME, f"{what}.name")
        prim = rd.sub_table(tab, S.N_PRIMITIVE, f"{what}.primitive")
        type_id = 0 if prim is None else rd.scalar(prim, S.P_TYPE, "u8", 0, f"{what}.primitive.value_type")
        op = op_name(type_id) if type_id else "(none)"
        custom = ""
        if op == "Custom":
            value = rd.sub_table(prim, S.P_VALUE, f"{what}.Custom")
            custom = "" if value is None else rd.string(value, 0, f"{what}.Custom.type")
        nodes.append(MsNode(name, op, type_id, rd.values(tab, S.N_INPUTS, "[u32]", f"{what}.inputIndex"),
                            rd.values(tab, S.N_OUTPUTS, "[u32]", f"{what}.outputIndex"),
                            rd.scalar(tab, N_QUANT_TYPE, "i32", 0, f"{what}.quantType"), tab, custom))
    graph = MsGraph(rd.buf, rd.string(meta, S.MG_VERSION, "MetaGraph.version"),
                    rd.values(meta, S.MG_INPUTS, "[u32]", "MetaGraph.inputIndex"),
                    rd.values(meta, S.MG_OUTPUTS, "[u32]", "MetaGraph.outputIndex"), nodes, tensors, meta)
    count = len(tensors)
    for what, indices in [("graph inputs", graph.inputs), ("graph outputs", graph.outputs)] + [
            (f"node {n.name or i}", n.inputs + n.outputs) for i, n in enumerate(nodes)]:
        bad = [t for t in indices if t >= count and t != _NO_INDEX]
        if bad:
            raise CorruptFlatBuffer(f"{what} refer to tensor {bad[0]}, but the file holds {count} tensors")
    return graph


def parse_version(text: str) -> tuple[int, ...] | None:
    """``"MindSpore Lite 2.2.0.20231129"`` → (2, 2, 0); None when the converter recorded none."""
    head = text.removeprefix("MindSpore Lite ").split(".")[:3]
    try:
        return tuple(int(p) for p in head) if len(head) == 3 else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Finding:
    """One thing in a file MindSpore Lite 2.0.0 cannot run as written. ``bridged``: the bridge rewrites it
    (``how`` says how); else ``detail`` is the refusal."""

    kind: str
    detail: str
    bridged: bool
    how: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "bridged": self.bridged, "how": self.how}

    def line(self) -> str:
        return f"{self.detail} → {self.how}" if self.bridged else f"{self.detail} (refused)"


@dataclass
class Survey:
    """The findings of one file and the verdict for MindSpore Lite 2.0.0: ``loads`` True/False, or None when a
    static reading cannot decide (``undecided`` says why)."""

    findings: list[Finding] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    undecided: str = ""

    @property
    def loads(self) -> bool | None:
        if self.findings:
            return False
        return None if self.undecided else True

    @property
    def bridgeable(self) -> bool:
        return bool(self.findings) and all(f.bridged for f in self.findings)

    @property
    def refusals(self) -> list[Finding]:
        return [f for f in self.findings if not f.bridged]


def _names(nodes: Iterable[MsNode], limit: int = 3) -> str:
    nodes = list(nodes)
    shown = ", ".join(f"'{n.name}'" for n in nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def _quantized(t: MsTensor) -> bool:
    """Stored as quantized integers with their parameters, or FSE-coded (float or integer centroids)."""
    return bool(t.quant_count and t.dtype in (32, 33, 34)) or t.compress in (3, 5)


def weight_quant_nodes(graph: MsGraph) -> list[MsNode]:
    """Nodes whose constant inputs the runtime dequantizes at load (QUANT_WEIGHT, or the 1.x heuristics)."""
    version = parse_version(graph.version)
    found = []
    for node in graph.nodes:
        quantized = [t for t in node.inputs if t != _NO_INDEX and graph.is_const(t) and _quantized(graph.tensors[t])]
        old = (version is None or version < (1, 3, 0)) and node.quant_type == 0
        if quantized and (node.quant_type in QUANT_WEIGHT_TYPES or old):
            found.append(node)
    return found


def survey(graph: MsGraph) -> Survey:
    """What 2.0.0 lacks in ``graph``, each finding saying whether the bridge rewrites it."""
    out = Survey()
    for node in graph.nodes:
        out.ops[node.op] = out.ops.get(node.op, 0) + 1
    found = out.findings
    bare = [n for n in graph.nodes if n.type_id == 0]
    if bare:
        found.append(Finding("unknown-op", f"node {_names(bare)} has no operator (no primitive): the file is "
                                           "corrupt", False))
    unknown = [n for n in graph.nodes if n.type_id > len(S.PRIMITIVES_2_0_0)]
    if unknown:
        ops = sorted({n.op for n in unknown})
        found.append(Finding("unknown-op", f"op {', '.join(ops)} (node {_names(unknown)}) is newer than MindSpore "
                                           "Lite 2.0.0, which has no kernel for it", False))
    custom = [n for n in graph.nodes if n.op == "Custom"]
    for node in custom:
        if node.custom_type == CUSTOM_THIRD_PARTY:
            found.append(third_party_finding(graph, node))
        else:
            found.append(Finding("unknown-op", f"node '{node.name}' is a Custom op of type "
                                               f"'{node.custom_type or '?'}', which needs the plugin that wrote it; "
                                               "MindSpore Lite 2.0.0 has no kernel for it", False))
    training = [n for n in graph.nodes if is_training_op(n.op)]
    if training:
        ops = sorted({n.op for n in training})
        shown = ", ".join(ops[:4]) + (", ..." if len(ops) > 4 else "")
        detail = (f"a training graph: {len(training)} loss/gradient/optimizer nodes ({shown}), which MindSpore Lite "
                  "2.0.0's inference build has no kernels for")
        problem = _cut_problem(graph)
        found.append(Finding("training-graph", f"{detail}{problem}", not problem,
                             "cut to the inference graph (the network up to the loss input)"))
    found.extend(_encoding_findings(graph))
    if not training:
        found.extend(output_findings(graph))
    version = parse_version(graph.version)
    if not found and version not in (None, RUNTIME_VERSION):
        other = sorted(op for op in out.ops if op not in VERIFIED_OPS)
        if other:
            out.undecided = (f"written by MindSpore Lite {'.'.join(map(str, version))}; ops not yet seen loading in "
                             f"2.0.0: {', '.join(other[:6])}{', ...' if len(other) > 6 else ''}")
    return out


def _cut_problem(graph: MsGraph) -> str:
    """Why the training-graph cut fails on this graph ("" when it succeeds): the claim "bridged" is tried."""
    try:
        cut_inference_graph(bytes(graph.buf))
    except ModelFileError as exc:
        return f"; the inference graph cannot be cut out: {exc}"
    return ""


def third_party_finding(graph: MsGraph, node: MsNode) -> Finding:
    """A ThirdPartyModel node: bridged when its payload is itself a MindSpore Lite model, else device-only."""
    payload = embedded_payload(graph, node)
    if payload is not None and payload[4:8] == b"MSL2" and len(graph.nodes) > 1:
        return Finding("offline-model", f"node '{node.name}' wraps a whole MindSpore Lite model inside a larger graph, "
                                        "which the bridge does not splice", False)
    if payload is not None and payload[4:8] == b"MSL2":
        return Finding("offline-model", f"node '{node.name}' wraps a whole MindSpore Lite model (a "
                                        f"'{CUSTOM_THIRD_PARTY}' for a device delegate)", True,
                       "the embedded model is extracted and bridged in turn")
    device = device_of(payload or b"")
    return Finding("offline-model", f"node '{node.name}' holds a graph compiled for {device}; it runs only on that "
                                    "device: export the float model from its source", False)


def embedded_payload(graph: MsGraph, node: MsNode) -> bytes | None:
    """The bytes of a ThirdPartyModel node's constant input (the compiled or embedded model), if any."""
    rd = FlatReader(graph.buf)
    for t in node.inputs:
        if t != _NO_INDEX and graph.tensors[t].data_len:
            return rd.raw(graph.tensors[t].table, S.T_DATA, f"allTensors[{t}].data")
    return None


def device_of(payload: bytes) -> str:
    """Name the device an offline payload was compiled for, from its magic bytes."""
    if payload[:4] == b"IMOD":
        return "an Ascend/HiAI NPU (an .om model)"
    if payload[:4] in (b"HIAI", b"\x00HIA"):
        return "a HiAI (Kirin) NPU"
    return "a device NPU through the NNRT delegate (its compiled form is not portable)"


def _node_attrs(graph: MsGraph, node: MsNode) -> dict[str, Any]:
    """The attributes `ms_weights.preferred_dim` needs (MatMul transposes, deconvolution channels, Gather axis)."""
    rd = FlatReader(graph.buf)
    layout = S.CURRENT_TABLES.get(node.op)
    attrs: dict[str, Any] = {}
    if layout:
        prim = rd.sub_table(node.table, S.N_PRIMITIVE, f"node '{node.name}' primitive")
        value = rd.sub_table(prim, S.P_VALUE, f"node '{node.name}' attributes")
        if value is not None:
            attrs = rd.fields(value, layout, node.name)
    if node.op == "Gather" and len(node.inputs) > 2:
        axis = graph.tensors[node.inputs[2]]
        raw = rd.raw(axis.table, S.T_DATA, "Gather axis")
        if len(raw) >= 4:
            attrs["axis"] = int.from_bytes(raw[:8] if axis.dtype == 35 else raw[:4], "little", signed=True)
    return attrs


def quantized_weights(graph: MsGraph) -> list[tuple[MsNode, int, W.QuantTensor, int]]:
    """(node, tensor index, stored tensor, per-channel axis) of every quantized constant input of the
    weight-quantized nodes, each tensor once."""
    rd = FlatReader(graph.buf)
    version = parse_version(graph.version)
    seen: set[int] = set()
    found = []
    for node in weight_quant_nodes(graph):
        attrs = _node_attrs(graph, node)
        for slot, index in enumerate(node.inputs):
            if index == _NO_INDEX or index in seen or not graph.is_const(index):
                continue
            t = graph.tensors[index]
            if not _quantized(t):
                continue
            seen.add(index)
            what = f"allTensors[{index}]"
            params = [rd.fields(q, S.QUANT_PARAM, f"{what}.quantParams") for q in rd.tables(t.table, S.T_QUANT, what)]
            clusters = rd.values(t.table, S.T_CLUSTERS, "[f32]", f"{what}.quantClusters")
            stored = W.QuantTensor(t.name, rd.raw(t.table, S.T_DATA, f"{what}.data"), t.dtype, t.dims, params,
                                   clusters, t.huffman, t.compress)
            found.append((node, index, stored, W.preferred_dim(node.op, slot, t.dims, version, attrs)))
    return found


def _encoding_findings(graph: MsGraph) -> list[Finding]:
    found = []
    newer = [(i, t) for i, t in enumerate(graph.tensors) if t.compress >= RUNTIME_COMPRESS_TYPES]
    if newer:
        kinds = sorted({COMPRESS_TYPES[t.compress] if t.compress < len(COMPRESS_TYPES) else str(t.compress)
                        for _, t in newer})
        found.append(Finding("weight-encoding", f"{len(newer)} weight tensors in an encoding newer than MindSpore "
                                                f"Lite 2.0.0 ({', '.join(kinds)}; first '{newer[0][1].name}')", False))
    quant = weight_quant_nodes(graph)
    for node, _, stored, dim in quantized_weights(graph):
        try:
            W.dequantize(stored, dim)  # the bridge's own decoding: what it cannot decode, it refuses
        except W.WeightDecodeError as exc:
            found.append(Finding("weight-quant", f"node '{node.name}': {exc}", False))
            return found
    if quant:
        kinds = sorted({_encoding(graph.tensors[t]) for n in quant for t in n.inputs
                        if t != _NO_INDEX and graph.is_const(t) and graph.tensors[t].quant_count})
        found.append(Finding("weight-quant", f"{len(quant)} weight-quantized nodes ({_names(quant)}; weights "
                                             f"{', '.join(kinds)}), which MindSpore Lite 2.0.0 fails to pack",
                             True, "weights decoded to float32 as the writing release's runtime dequantizes them"))
    external = [t for t in graph.tensors if t.external]
    if external:
        found.append(Finding("external-data", f"{len(external)} tensors keep their data in another file "
                                              f"(first '{external[0].name}'): ship that file beside the model", False))
    return found


def _encoding(tensor: MsTensor) -> str:
    kind = {8: "int8", 16: "int16"}.get({32: 8, 33: 16}.get(tensor.dtype, 0), "int32")
    if tensor.huffman:
        return f"{kind} Huffman-coded"
    if tensor.compress:
        return f"{kind} {COMPRESS_TYPES[tensor.compress] if tensor.compress < len(COMPRESS_TYPES) else '?'}"
    return f"{kind}{' k-means' if tensor.clusters else ''}"


def output_findings(graph: MsGraph) -> list[Finding]:
    """Graph outputs that are constants, or that no path from the graph inputs computes (issue 20: a constant
    output made the runtime wait forever)."""
    reached = set(graph.inputs)
    producers = graph.producers()
    changed = True
    while changed:  # forward closure over nodes (graphs are small; no topological order is assumed)
        changed = False
        for node in graph.nodes:
            if not set(node.outputs) <= reached and any(t in reached for t in node.inputs):
                reached.update(node.outputs)
                changed = True
    found = []
    for index in graph.outputs:
        name = graph.tensors[index].name or str(index)
        if index in graph.inputs:
            continue
        if graph.is_const(index) and index not in producers:
            found.append(Finding("constant-output", f"graph output '{name}' is a constant (weights), not computed "
                                                    "from the inputs", False))
        elif index not in reached:
            found.append(Finding("unreachable-output", f"graph output '{name}' is not computed from the graph "
                                                       "inputs (no path of nodes leads to it)", False))
    return found


_RUNTIME_CAUSES = (
    (r"node: (\S+) prepare failed", "node '{}' failed to prepare"),
    (r"PopulateParameter return nullptr, type: (\w+)", "no kernel parameters for op {}"),
    (r"InferShape failed, name: (\S+)", "shape inference failed at node '{}'"),
    (r"parameter generator is nullptr", "an op without a kernel in this build"),
)


def trial_load(path: Any) -> tuple[bool, str]:
    """Load ``path`` in MindSpore Lite 2.0.0 (the worker) and close it: (loads, why not in one line). Raises
    RuntimeUnavailableError when no runtime is installed."""
    import re

    from .. import runtime

    try:
        with runtime.open_model(path, threads=1):
            return True, ""
    except runtime.RuntimeUnavailableError:
        raise
    except runtime.MSLiteError as exc:
        text = str(exc)
        for pattern, wording in _RUNTIME_CAUSES:
            match = re.search(pattern, text)
            if match:
                return False, "MindSpore Lite 2.0.0 refused it on a trial load: " + wording.format(*match.groups())
        return False, "MindSpore Lite 2.0.0 refused it on a trial load: " + text.splitlines()[0][:200]

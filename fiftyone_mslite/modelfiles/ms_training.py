"""Training graphs (``.ms`` files of MindSpore Lite's on-device training): tell them apart and cut out the network.

Why: MindSpore Lite 2.0.0, our runtime, refuses them (no kernels for their loss, gradient and optimizer nodes), yet
the network inside is a classifier. On a device, ``TrainSession::Export(..., MT_INFERENCE)`` keeps only the network;
this module does the same offline, with MindSpore Lite's own rules (``src/train/train_session.cc`` and
``train_export.cc``, r1.2 to r2.x):

* a *loss* node's name contains ``loss_fct``, ``_loss_fn`` or ``SigmoidCrossEntropy`` (``TrainCfg::loss_name_``),
  or (r1.2 to r1.x, ``IsLossKernel``) its primitive is one of the loss primitives;
* a *gradient* node's name contains ``Gradients``; an *optimizer* is Adam, SGD or ApplyMomentum;
* the inference outputs (``CompileEvalOutputs``): the first output of each node that feeds a non-gradient loss node,
  unless that node is itself a loss or gradient node or is fed by a loss node;
* the inference graph (``CompileInferenceKernels``): every node those outputs depend on, loss nodes excluded; a
  Dropout node is bypassed (identity at inference), as ``TrainExport::TrainModelDrop`` does.

The cut graph is written by the legacy writer (``ForceDefaults``: every attribute explicit) with each primitive's
attributes as MindSpore Lite 2.0.0 reads them (``legacy.schema.CURRENT_TABLES``), so what the 2.0.0 kernels see is
what they would see in the training file.
"""
from __future__ import annotations

import dataclasses

from ..errors import (
    LossInputNotFoundError,
    MsInspectError,
    NotATrainingGraphError,
    TrainingGraphError,
    UnknownOutputTensorError,
)
from .flatbuf import CorruptFlatBuffer, FlatReader
from .legacy import schema as S
from .legacy.graph import Graph, Node, SubGraph
from .legacy.reader import read_current
from .legacy.writer import write_current

__all__ = ["is_training_graph", "cut_inference_graph"]

_LOSS_NAME_PARTS = ("loss_fct", "_loss_fn", "SigmoidCrossEntropy")
_LOSS_OPS = frozenset({"SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "SmoothL1Loss",
                       "SmoothL1LossGrad", "SigmoidCrossEntropyWithLogits", "SigmoidCrossEntropyWithLogitsGrad",
                       "BinaryCrossEntropy", "NLLLoss"})
_GRAD_NAME = "Gradients"
_OPTIMIZER_NAME = "optimizer"  # kOptimizerName: the optimizer's own arithmetic (beta powers, ...)
_OPTIMIZER_OPS = frozenset({"Adam", "SGD", "ApplyMomentum", "AdamWeightDecay", "Assign", "AssignAdd"})
_DROPOUT = "Dropout"
_LISTED = 8


def _is_loss(node: Node) -> bool:
    return node.op in _LOSS_OPS or any(part in node.name for part in _LOSS_NAME_PARTS)


def _is_grad(node: Node) -> bool:
    return _GRAD_NAME in node.name or "Grad" in node.op or node.op.startswith("Conv2DBackprop")


def _is_training(node: Node) -> bool:
    """Loss, gradient or optimizer: nothing an inference graph keeps."""
    return _is_loss(node) or _is_grad(node) or node.op in _OPTIMIZER_OPS or _OPTIMIZER_NAME in node.name


def _read(data: bytes) -> Graph:
    if bytes(data[4:8]) != S.IDENT_CURRENT:
        raise NotATrainingGraphError(
            "not a current-schema (MSL2) .ms, so not an on-device training graph (those are written by MindSpore "
            "Lite 1.2 and later); `fiftyone-mslite inspect` says what the file is")
    try:
        return read_current(data)
    except CorruptFlatBuffer as exc:
        raise MsInspectError(f"the .ms file is truncated or corrupt ({exc}); fetch or export it again") from None


def is_training_graph(data: bytes) -> bool:
    """Whether ``data`` is a readable current-schema ``.ms`` holding loss, gradient or optimizer nodes."""
    try:
        graph = _read(data)
    except (TrainingGraphError, MsInspectError):
        return False
    return any(_is_training(node) for node in graph.nodes)


@dataclasses.dataclass
class _Network:
    """The training graph with its producers, Dropout bypasses and which nodes are free of training nodes."""

    graph: Graph
    producer: dict[int, int]
    alias: dict[int, int]
    clean: list[bool]

    @classmethod
    def of(cls, graph: Graph) -> _Network:
        producer = {}
        for index, node in enumerate(graph.nodes):
            for tensor in node.outputs:
                producer.setdefault(tensor, index)
        alias = {node.outputs[0]: node.inputs[0] for node in graph.nodes
                 if node.op == _DROPOUT and node.inputs and node.outputs}
        net = cls(graph, producer, alias, [])
        net.clean = net._clean_flags()
        return net

    def resolve(self, tensor: int) -> int:
        """The tensor a Dropout output stands for at inference (its input), through chains of Dropouts."""
        seen = set()
        while tensor in self.alias and tensor not in seen:
            seen.add(tensor)
            tensor = self.alias[tensor]
        return tensor

    def feeders(self, node: Node) -> list[int]:
        """Indices of the nodes producing ``node``'s inputs (Dropouts looked through)."""
        return [self.producer[t] for t in map(self.resolve, node.inputs) if t in self.producer]

    def _clean_flags(self) -> list[bool]:
        """Per node: neither it nor anything it depends on is a loss, gradient or optimizer node."""
        nodes = self.graph.nodes
        flags: dict[int, bool] = {}
        for start in range(len(nodes)):
            stack = [(start, False)]
            while stack:
                index, expanded = stack.pop()
                if index in flags:
                    continue
                feeders = self.feeders(nodes[index])
                if expanded or all(f in flags for f in feeders):
                    flags[index] = not _is_training(nodes[index]) and all(flags.get(f, False) for f in feeders)
                else:
                    stack.append((index, True))
                    stack.extend((f, False) for f in feeders if f not in flags)
        return [flags[i] for i in range(len(nodes))]

    def loss_inputs(self) -> list[int]:
        """The network outputs that feed the loss (``TrainSession::CompileEvalOutputs``), in node order."""
        nodes, found = self.graph.nodes, []
        for node in nodes:
            if not _is_loss(node) or _is_grad(node):
                continue
            for index in self.feeders(node):
                feeder = nodes[index]
                if _is_loss(feeder) or _is_grad(feeder) or any(_is_loss(nodes[f]) for f in self.feeders(feeder)):
                    continue
                tensor = self.resolve(feeder.outputs[0])
                if self.clean[index] and tensor not in found:
                    found.append(tensor)
        return found

    def closure(self, tensors: list[int]) -> list[int]:
        """Indices, in file (execution) order, of every node the ``tensors`` depend on."""
        keep: set[int] = set()
        stack = [self.producer[t] for t in tensors if t in self.producer]
        while stack:
            index = stack.pop()
            if index not in keep:
                keep.add(index)
                stack.extend(self.feeders(self.graph.nodes[index]))
        return sorted(keep)

    def candidates(self, near: list[int]) -> list[int]:
        """Tensors a user may pick as the output: those of clean nodes, nearest the loss input first."""
        nodes = self.closure(near) if near else [i for i, ok in enumerate(self.clean) if ok]
        return [t for i in reversed(nodes) if self.graph.nodes[i].op != _DROPOUT for t in self.graph.nodes[i].outputs]


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" (and {len(names) - _LISTED} more)" if len(names) > _LISTED else "")


def _pick_output(net: _Network, output: str, loss_inputs: list[int]) -> int:
    graph = net.graph
    candidates = net.candidates(loss_inputs)
    everything = net.candidates([])
    for tensor in everything:
        if graph.tensors[tensor].name == output:
            return tensor
    for index, node in enumerate(graph.nodes):
        if node.name == output and net.clean[index] and node.op != _DROPOUT:
            return node.outputs[0]
    raise UnknownOutputTensorError(
        f"no tensor named {output!r} in the network part of this training graph; candidates: "
        f"{_listing([graph.tensors[t].name or str(t) for t in candidates or everything])}")


def _set_attributes(data: bytes, node: int) -> list[int]:
    """Slots of the attributes node ``node`` of ``data`` sets explicitly (none: every attribute at its default)."""
    rd = FlatReader(data)
    table = rd.table_in_vector(rd.root("MetaGraph"), S.MG_NODES, node, "MetaGraph.nodes")
    primitive = rd.sub_table(table, S.N_PRIMITIVE, f"nodes[{node}].primitive")
    value = None if primitive is None else rd.sub_table(primitive, S.P_VALUE, f"nodes[{node}].primitive.value")
    return [] if value is None else rd.present_slots(value)


def _check_writable(data: bytes, graph: Graph, kept: list[int]) -> None:
    """Every kept primitive must be one MindSpore Lite 2.0.0 knows, with attributes this package can write: a
    transcribed table, or none set (then the written table, empty too, reads the same defaults)."""
    for index in kept:
        node = graph.nodes[index]
        if node.op not in S.PRIMITIVES_2_0_0:
            raise TrainingGraphError(
                f"the network part holds a {node.op} node ({node.name!r}), which MindSpore Lite 2.0.0 does not "
                "know; export the inference model from the training framework instead")
        if node.op not in S.CURRENT_TABLES and _set_attributes(data, index):
            raise TrainingGraphError(
                f"the network part holds a {node.op} node ({node.name!r}) with attributes this cut cannot "
                "rewrite yet; export the inference model with MindSpore Lite's TrainSession instead")


def _rebuild(net: _Network, kept: list[int], outputs: list[int], rename: bool) -> Graph:
    graph = net.graph
    nodes = [graph.nodes[i] for i in kept]
    produced = {t for node in nodes for t in node.outputs}
    used: list[int] = []
    for node in nodes:
        used.extend(net.resolve(t) for t in node.inputs)
        used.extend(node.outputs)
    used = sorted(set(used))
    index = {old: new for new, old in enumerate(used)}
    tensors = list(map(graph.tensors.__getitem__, used))
    if rename:  # the output takes the name of the op that computes it
        for tensor in outputs:
            op_name = graph.nodes[net.producer[tensor]].name
            if op_name:
                tensors[index[tensor]] = dataclasses.replace(tensors[index[tensor]], name=op_name)
    feeds = [t for t in used if t not in produced and not graph.tensors[t].is_const]
    inputs = [t for t in graph.inputs if t in feeds] + [t for t in feeds if t not in graph.inputs]
    new_nodes = [dataclasses.replace(node, inputs=[index[net.resolve(t)] for t in node.inputs],
                                     outputs=[index[t] for t in node.outputs]) for node in nodes]
    new_inputs, new_outputs = [index[t] for t in inputs], [index[t] for t in outputs]
    sub_name = graph.subgraphs[0].name if graph.subgraphs else "main_graph"
    subgraph = SubGraph(sub_name, new_inputs, new_outputs, list(range(len(new_nodes))), list(range(len(tensors))))
    return Graph(graph.name, graph.version, graph.fmk, new_inputs, new_outputs, new_nodes, tensors, [subgraph])


def cut_inference_graph(data: bytes, output: str | None = None) -> bytes:
    """The inference graph of the training graph ``data``, as a current-schema ``.ms`` MindSpore Lite 2.0.0 runs.

    It is the network up to the loss function's input; the label input and every loss, gradient and optimizer
    node (with the tensors only they use) are gone, and the output is named after the network's last op.
    ``output`` names another tensor of the network (or the op computing it) to end the graph at instead.
    Raises NotATrainingGraphError, LossInputNotFoundError, UnknownOutputTensorError (one line each; the caller
    prefixes the file name), TrainingGraphError for a network op 2.0.0 cannot run, MsInspectError for a corrupt file.
    """
    graph = _read(data)
    if not any(_is_training(node) for node in graph.nodes):
        raise NotATrainingGraphError(
            "not a training graph: it holds no loss, gradient or optimizer node, so there is nothing to cut away")
    if len(graph.subgraphs) > 1:
        raise TrainingGraphError(
            f"the training graph has {len(graph.subgraphs)} sub-graphs (control flow), which this cut does not "
            "follow; export the inference model with MindSpore Lite's TrainSession instead")
    net = _Network.of(graph)
    loss_inputs = net.loss_inputs()
    if output is not None:
        outputs = [_pick_output(net, output, loss_inputs)]
    elif loss_inputs:
        outputs = loss_inputs
    else:
        losses = [node.name for node in graph.nodes if _is_loss(node) and not _is_grad(node)]
        found = f"its loss nodes ({_listing(losses)}) are fed by no network op" if losses else (
            f"no node is named like a loss function ({', '.join(_LOSS_NAME_PARTS)}) or is a loss op")
        raise LossInputNotFoundError(
            f"a training graph whose loss input cannot be found: {found}; name the network's output tensor "
            "(`--output-tensor NAME`) to cut there")
    kept = net.closure(outputs)
    _check_writable(data, graph, kept)
    return write_current(_rebuild(net, kept, outputs, rename=output is None))


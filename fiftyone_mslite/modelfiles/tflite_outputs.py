"""The embedding of a TFLite classifier as an extra subgraph output: the input of its final classifier layer.

Found by walking back from the first output of the first subgraph through head-only ops (softmax, reshape,
squeeze, (de)quantize, logistic) to the FULLY_CONNECTED or CONV_2D that produces the logits; a catalog entry can
name the tensor instead. The copy gets a new outputs vector appended at the end of the file (flatbuffer offsets
point forward, so it is reachable) and SubGraph.outputs re-aimed at it; the source file is never modified.
"""
from __future__ import annotations

import struct
from pathlib import Path

from ..errors import ConversionError, EmbeddingNotFoundError, ModelFileError, TFLiteDequantizeError
from ..runtime.formats import TFLITE
from .embedding import AUTO, EmbeddingOutput, missing_tensor, pooled_embedding
from .flatbuf import CorruptFlatBuffer, MutableFlatBuffer, Table
from .steps import Prepared, PrepareRequest
from .tflite_dequant import (
    MODEL_OPERATOR_CODES,
    MODEL_SUBGRAPHS,
    OPCODE_BUILTIN,
    OPCODE_DEPRECATED_BUILTIN,
    OPERATOR_INPUTS,
    OPERATOR_OPCODE_INDEX,
    OPERATOR_OUTPUTS,
    SUBGRAPH_OPERATORS,
    SUBGRAPH_OUTPUTS,
    SUBGRAPH_TENSORS,
    TENSOR_NAME,
    TENSOR_SHAPE,
    dequantize_tflite,
)

CLASSIFIER_OPS = {9: "FULLY_CONNECTED", 3: "CONV_2D"}
# ops between the classifier layer and the graph output that keep it "the logits"
HEAD_OPS = {25: "SOFTMAX", 22: "RESHAPE", 43: "SQUEEZE", 114: "QUANTIZE", 6: "DEQUANTIZE", 14: "LOGISTIC"}


class _Graph:
    """The first subgraph of a TFLite model: tensor names and shapes, and which op (builtin code, inputs) makes each."""

    def __init__(self, fb: MutableFlatBuffer) -> None:
        model = fb.root("Model")
        codes = [max(fb.scalar(c, OPCODE_DEPRECATED_BUILTIN, "i8", 0, "OperatorCode.deprecated_builtin_code"),
                     fb.scalar(c, OPCODE_BUILTIN, "i32", 0, "OperatorCode.builtin_code"))
                 for c in fb.tables(model, MODEL_OPERATOR_CODES, "Model.operator_codes")]
        subgraphs = fb.tables(model, MODEL_SUBGRAPHS, "Model.subgraphs")
        if not subgraphs:
            raise CorruptFlatBuffer("the model has no subgraph")
        self.subgraph: Table = subgraphs[0]
        tensors = fb.tables(self.subgraph, SUBGRAPH_TENSORS, "SubGraph.tensors")
        self.names = [fb.string(t, TENSOR_NAME, "Tensor.name") for t in tensors]
        self.shapes = [fb.values(t, TENSOR_SHAPE, "[i32]", "Tensor.shape") for t in tensors]
        self.outputs = self._indices(fb.values(self.subgraph, SUBGRAPH_OUTPUTS, "[i32]", "SubGraph.outputs"))
        self.producer: dict[int, tuple[int, list[int]]] = {}
        for op in fb.tables(self.subgraph, SUBGRAPH_OPERATORS, "SubGraph.operators"):
            index = fb.scalar(op, OPERATOR_OPCODE_INDEX, "u32", 0, "Operator.opcode_index")
            if index >= len(codes):
                raise CorruptFlatBuffer(f"Operator.opcode_index {index} is out of range ({len(codes)} codes)")
            inputs = fb.values(op, OPERATOR_INPUTS, "[i32]", "Operator.inputs")
            for out in self._indices(fb.values(op, OPERATOR_OUTPUTS, "[i32]", "Operator.outputs")):
                self.producer[out] = (codes[index], inputs)

    def _indices(self, values: list[int]) -> list[int]:
        if any(not 0 <= v < len(self.names) for v in values):
            raise CorruptFlatBuffer(f"tensor indices {values} point outside the {len(self.names)} tensors")
        return values

    def penultimate(self) -> int | None:
        """Input 0 of the classifier layer behind the first output, through head-only ops; None otherwise."""
        tensor = self.outputs[0] if self.outputs else None
        for _ in range(len(self.producer) + 1):
            if tensor not in self.producer:
                return None
            code, inputs = self.producer[tensor]
            if not inputs or code not in (*CLASSIFIER_OPS, *HEAD_OPS):
                return None
            if code in CLASSIFIER_OPS:
                return inputs[0]
            tensor = inputs[0]
        return None


def prepare_tflite(source: Path, workdir: Path, request: PrepareRequest) -> Prepared:
    """The TFLite format's `prepare` step (`runtime.formats`): dequantize if asked (MindSpore Lite 2.0.0's int8
    kernels have no SIMD on x86, docs/quantized.md), then add the embedding output to the file that is converted."""
    feed, fixes, extra = source, (), None
    if request.dequantize:
        try:
            feed = dequantize_tflite(source, workdir / "float.tflite")
        except TFLiteDequantizeError as exc:
            raise ConversionError(f"{source}: {exc}") from exc
        fixes = ("dequantized to float32 before conversion (fast fp32 kernels)",)
    if request.embedding:
        extra = add_tflite_embedding(feed, workdir / "embedding.tflite", request.embedding, where=str(source))
        feed = workdir / "embedding.tflite"
    return Prepared(feed, TFLITE, fixes, extra)


def add_tflite_embedding(source: Path, output: Path, requested: str, where: str | None = None) -> EmbeddingOutput:
    """Write a copy of the TFLite model `source` to `output` with the embedding tensor `requested` (a name, or
    AUTO) appended to the first subgraph's outputs. EmbeddingNotFoundError when there is none; `where` names the
    model in errors (default: `source`)."""
    fb = MutableFlatBuffer(Path(source).read_bytes())
    where = where or str(source)
    graph = _graph(where, fb)
    index, found = _resolve(graph, requested, where)
    if index not in graph.outputs:
        outputs = [*graph.outputs, index]
        field = fb.field_pos(graph.subgraph, SUBGRAPH_OUTPUTS, 4, "SubGraph.outputs")
        if field is None:
            raise ModelFileError(f"{where}: its subgraph has no outputs field to extend")
        vec = fb.append_vector(struct.pack(f"<{len(outputs)}i", *outputs), len(outputs))
        fb.put("I", field, vec - field)
    Path(output).write_bytes(bytes(fb.buf))
    return found


def _graph(where: str, fb: MutableFlatBuffer) -> _Graph:
    if bytes(fb.buf[4:8]) != b"TFL3":
        raise ModelFileError(f"{where} is not a TFLite model")
    try:
        return _Graph(fb)
    except (CorruptFlatBuffer, ValueError) as exc:
        raise ModelFileError(f"{where} is not a readable TFLite model: {exc}") from None


def _resolve(graph: _Graph, requested: str, where: str) -> tuple[int, EmbeddingOutput]:
    if requested == AUTO:
        index = graph.penultimate()
        if index is None or not 0 <= index < len(graph.names):
            first = repr(graph.names[graph.outputs[0]]) if graph.outputs else "(none)"
            raise EmbeddingNotFoundError(
                f"{where}: no penultimate tensor found (the subgraph's first output {first} is not made by a "
                f"FULLY_CONNECTED/CONV_2D classifier layer behind softmax/reshape/squeeze ops)")
    elif requested in graph.names:
        index = graph.names.index(requested)
    else:
        raise missing_tensor(where, requested, [graph.names[t] for t in graph.producer])
    return index, pooled_embedding(graph.names[index], graph.shapes[index], (1, 2), where)

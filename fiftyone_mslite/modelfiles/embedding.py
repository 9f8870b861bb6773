"""Which tensor is a classifier's embedding: the input of its final classifier layer (ONNX here; TFLite in
`tflite_outputs`, sharing the format-independent checks below).

FiftyOne's embeddings (Embeddings panel, similarity, uniqueness) want the penultimate features, the
global-pool / flatten output that the last Gemm/MatMul/Conv maps to logits. Exposing that tensor as an extra
graph output before conversion costs no second inference: the converted `.ms` returns logits and embedding
from one run. Found by walking back from the logits output; a catalog entry can name the tensor instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

from ..errors import EmbeddingNotFoundError

if TYPE_CHECKING:  # onnx costs ~0.7 s to import: only ONNX conversions pay it, not every model load
    import onnx

#: sentinel for "find the tensor automatically"
AUTO = "auto"
CLASSIFIER_OPS = ("Gemm", "MatMul", "Conv")
# ops between the classifier layer and the graph output that keep it "the logits"
_HEAD_OPS = ("Softmax", "LogSoftmax", "Sigmoid", "Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze",
             "Cast", "Transpose", "GlobalAveragePool", "ReduceMean")
_BIAS_OPS = ("Add", "Sub", "Mul", "Div")  # a bias or scale after MatMul: one side is a constant


@dataclass(frozen=True)
class EmbeddingOutput:
    """The tensor exposed as an extra output, and how many values one sample has there."""

    tensor: str
    size: int | None

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "size": self.size}


def _constants(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer}
    names |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return names


def find_embedding_tensor(model: onnx.ModelProto) -> str | None:
    """The data input of the last Gemm/MatMul/Conv before the first graph output, through head-only ops
    (softmax, reshape, bias add, ...); None when the graph does not end that way."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    constants = _constants(graph)
    name = graph.output[0].name
    for _ in range(len(graph.node)):
        node = producer.get(name)
        if node is None:
            return None
        data = [i for i in node.input if i and i not in constants]
        if node.op_type in CLASSIFIER_OPS:
            return data[0] if data else None
        if len(data) != 1 or node.op_type not in (*_HEAD_OPS, *_BIAS_OPS):
            return None  # a residual add, a concat, ...: not a plain classifier head
        name = data[0]
    return None


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    import onnx

    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - onnx raises several unrelated types; sizes then come from the .ms
        return {}
    shapes = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None
                                 for d in info.type.tensor_type.shape.dim]
    return shapes


def resolve_embedding(model: onnx.ModelProto, requested: str, where: str) -> EmbeddingOutput:
    """`requested` (a tensor name, or AUTO) checked against the graph, with its per-sample size.

    A per-sample embedding of more than one spatial position (the input of a Conv classifier on a feature
    map) is refused: it is a feature map, not an embedding."""
    graph = model.graph
    produced = [o for n in graph.node for o in n.output if o]
    if requested == AUTO:
        tensor = find_embedding_tensor(model)
        if tensor is None:
            raise EmbeddingNotFoundError(
                f"{where}: no penultimate tensor found (the graph's first output '{graph.output[0].name}' is not "
                f"a Gemm/MatMul/Conv classifier layer behind softmax/reshape/bias ops)")
    elif requested in produced or requested in {i.name for i in graph.input}:
        tensor = requested
    else:
        raise missing_tensor(where, requested, produced)
    return pooled_embedding(tensor, _static_shapes(model).get(tensor), (2, 3), where)


def missing_tensor(where: str, requested: str, tail: list[str]) -> EmbeddingNotFoundError:
    """The error for a requested tensor name the graph lacks, naming the graph's last tensors."""
    names = ", ".join(repr(n) for n in tail[-8:])
    return EmbeddingNotFoundError(f"{where}: the graph has no tensor named {requested!r} (its last tensors: {names})")


def pooled_embedding(tensor: str, dims: list[int | None] | None, spatial: tuple[int, int],
                     where: str) -> EmbeddingOutput:
    """`tensor` with its per-sample size from its static shape `dims` (batch first; unknown dims None or <= 0).
    A rank-4 tensor of more than one spatial position (axes `spatial`: (2, 3) NCHW, (1, 2) NHWC) is refused:
    it is a feature map, not an embedding."""
    known = bool(dims) and all(d and d > 0 for d in dims[1:])
    size = prod(dims[1:]) if known else None
    if dims and len(dims) == 4:
        h, w = dims[spatial[0]], dims[spatial[1]]
        if h and w and h > 0 and w > 0 and h * w > 1:
            raise EmbeddingNotFoundError(f"{where}: tensor {tensor!r} is a {h}x{w} feature map "
                                         f"(shape {list(dims)}), not a pooled embedding")
    return EmbeddingOutput(tensor, size)


def add_output(model: onnx.ModelProto, tensor: str) -> None:
    """Append `tensor` to the graph outputs (type and shape left to the converter's inference)."""
    if tensor not in {o.name for o in model.graph.output}:
        import onnx

        model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))


def split_outputs(names: list[str], tensor: str | None) -> tuple[list[int], int | None]:
    """(indices of the classifier head's outputs, index of the embedding output) among a loaded model's
    output names: the head never sees the embedding, whatever order the converter wrote them in."""
    emb = names.index(tensor) if tensor in names else None
    return [i for i in range(len(names)) if i != emb], emb

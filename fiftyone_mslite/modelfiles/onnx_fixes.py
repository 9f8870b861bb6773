"""Make ONNX graphs palatable to the MindSpore Lite 2.0 converter without changing what they compute.

The converter fails with a bare "Common error code" on perfectly valid ONNX in two cases we know of:

* ``Conv`` / ``ConvTranspose`` nodes that leave ``kernel_shape``, ``strides`` or ``dilations`` to their
  ONNX defaults (native log: "kernel_size/stride/dilation is nullptr"). We write the defaults out:
  kernel_shape from the weight's spatial dims, strides and dilations all 1.
* ``MaxPool`` / ``AveragePool`` nodes carrying a ``dilations`` attribute *at all*, even all ones as torch
  exports it (native log: "pooling op not support dilations now"). All-ones dilations are the ONNX default,
  so dropping the attribute is exact; any other value cannot be expressed and is reported as an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ConversionError, OnnxFixError
from ..runtime.formats import ONNX
from .embedding import EmbeddingOutput, add_output, resolve_embedding
from .steps import Prepared, PrepareRequest

__all__ = ["OnnxFixError", "OnnxFixReport", "prepare_onnx", "prepare_onnx_step"]

CONV_OPS = ("Conv", "ConvTranspose")
POOL_OPS = ("MaxPool", "AveragePool")
_DEFAULT_DOMAINS = ("", "ai.onnx")
Shapes = dict[str, list[int | None]]  # value name -> dims, None where not static


@dataclass(frozen=True)
class OnnxFixReport:
    """What ``prepare_onnx`` did: ``output`` is the file to hand to the converter."""

    source: Path
    output: Path  # == source when nothing needed fixing
    fixes: tuple[str, ...]
    embedding: EmbeddingOutput | None = None  # the tensor added as an extra output

    @property
    def changed(self) -> bool:
        return self.output != self.source


def prepare_onnx_step(source: Path, workdir: Path, request: PrepareRequest) -> Prepared:
    """The ONNX format's `prepare` step (`runtime.formats`): the repairs below, plus the embedding output."""
    try:
        report = prepare_onnx(source, workdir, embedding=request.embedding)
    except OnnxFixError as exc:
        raise ConversionError(str(exc)) from exc
    return Prepared(report.output, ONNX, report.fixes, report.embedding)


def prepare_onnx(source: Path, workdir: Path, embedding: str | None = None) -> OnnxFixReport:
    """Return ``source`` untouched, or a patched copy written into ``workdir``, ready for the converter.

    ``embedding`` (a tensor name, or ``embedding.AUTO``) also exposes that tensor as an extra graph output.
    Raises OnnxFixError for unreadable files and for problems no semantics-preserving edit can fix, and
    EmbeddingNotFoundError when the embedding tensor is absent.
    """
    source = Path(source)
    model = _load(source)  # without external tensor data: initializer dims are in the proto itself
    fixes: list[str] = []
    stored: Shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    inferred: Shapes | None = None
    for index, node in enumerate(model.graph.node):
        if node.domain not in _DEFAULT_DOMAINS:
            continue
        label = f"{node.op_type} {node.name!r}" if node.name else f"{node.op_type} #{index} (unnamed)"
        if node.op_type in CONV_OPS:
            weight = node.input[1] if len(node.input) > 1 else ""
            if _attr(node, "kernel_shape") is None and weight not in stored and inferred is None:
                # Only computed weights (Constant, Reshape, ...) need the whole-graph inference.
                inferred = _infer_shapes(model, source, label)
            fixes += _fix_conv(node, label, stored, inferred or {}, source)
        elif node.op_type in POOL_OPS:
            fixes += _fix_pool(node, label, source)
    extra = resolve_embedding(model, embedding, str(source)) if embedding else None
    if extra is not None:
        add_output(model, extra.tensor)
    if not fixes and extra is None:
        return OnnxFixReport(source=source, output=source, fixes=())
    return OnnxFixReport(source=source, output=_save(model, source, Path(workdir)), fixes=tuple(fixes),
                         embedding=extra)


def _load(source: Path) -> onnx.ModelProto:
    if not source.is_file():
        raise OnnxFixError(f"{source}: no such ONNX file")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise OnnxFixError(f"{source}: unreadable ONNX model ({exc}); re-export or re-download it") from exc
    # protobuf happily parses an empty (or lucky) byte string into an empty ModelProto.
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxFixError(f"{source}: not an ONNX model (no graph nodes); re-export or re-download it")
    return model


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _fix_conv(node: onnx.NodeProto, label: str, stored: Shapes, inferred: Shapes, source: Path) -> list[str]:
    """Write out the ONNX defaults the converter dereferences without checking."""
    fixes = []
    kernel = _attr(node, "kernel_shape")
    if kernel is not None:
        rank = len(kernel.ints)
    else:
        weight = node.input[1] if len(node.input) > 1 else ""
        origin = "weight" if weight in stored else "inferred shape of"
        shape = stored[weight] if weight in stored else inferred.get(weight)
        if shape is None or len(shape) < 3 or any(d is None for d in shape[2:]):
            raise OnnxFixError(
                f"{source}: {label} has no kernel_shape and the spatial dims of its weight {weight!r} are "
                f"unknown (shape {shape}); add kernel_shape to the node or make the weight an initializer"
            )
        kernel_shape = [int(d) for d in shape[2:]]  # type: ignore[arg-type]
        node.attribute.append(onnx.helper.make_attribute("kernel_shape", kernel_shape))
        fixes.append(f"{label}: added kernel_shape={kernel_shape} (from {origin} {weight})")
        rank = len(kernel_shape)
    for name in ("strides", "dilations"):
        if _attr(node, name) is None:
            node.attribute.append(onnx.helper.make_attribute(name, [1] * rank))
            fixes.append(f"{label}: added {name}={[1] * rank} (ONNX default)")
    return fixes


def _infer_shapes(model: onnx.ModelProto, source: Path, label: str) -> Shapes:
    """Static shapes of every named value, for weights that are computed rather than stored."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # onnx raises several unrelated types here
        raise OnnxFixError(
            f"{source}: {label} has no kernel_shape and ONNX shape inference failed ({exc}); "
            "add kernel_shape to the node"
        ) from exc
    graph = inferred.graph
    shapes = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _fix_pool(node: onnx.NodeProto, label: str, source: Path) -> list[str]:
    """Drop all-ones pooling dilations: the converter rejects the attribute whatever its value."""
    dilations = _attr(node, "dilations")
    if dilations is None:
        return []
    values = list(dilations.ints)
    if any(v != 1 for v in values):
        raise OnnxFixError(
            f"{source}: {label} uses dilations={values}, which the MindSpore Lite converter does not "
            "support ('pooling op not support dilations now'); re-export the model without dilated pooling"
        )
    node.attribute.remove(dilations)
    return [f"{label}: removed dilations={values} (the ONNX default; the converter rejects the attribute)"]


def _save(model: onnx.ModelProto, source: Path, workdir: Path) -> Path:
    """Write the patched model into ``workdir``; external tensor data is copied next to it."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / f"{source.stem}.fixed.onnx"
    external = any(external_data_helper.uses_external_data(t) for t in model.graph.initializer)
    if not external:
        onnx.save(model, str(output))
        return output
    try:
        external_data_helper.load_external_data_for_model(model, str(source.parent))
    except Exception as exc:  # a missing file surfaces as ValidationError or OSError
        raise OnnxFixError(
            f"{source}: cannot read its external tensor data ({exc}); keep the data files next to the model"
        ) from exc
    data = workdir / f"{output.name}.data"
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save(model, str(output), save_as_external_data=True, location=data.name)
    return output

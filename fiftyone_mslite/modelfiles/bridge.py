"""The model-file bridge: any ``.ms`` MindSpore Lite ever wrote → a file MindSpore Lite 2.0.0 runs, or one line
saying exactly why not. The one place that turns a model source into a runnable file (`runnable_model`).

Why: users bring ``.ms`` files from every converter release (1.0 … 2.5), and our runtime is 2.0.0, the only one
on PyPI. Each step below rewrites one thing 2.0.0 lacks, so that it computes what the writing release's runtime
computed; anything the bridge cannot express faithfully is refused (`ModelBridgeError`), and nothing is written.

Steps, in order: leading zero padding skipped; the legacy schema (v0) upgraded op by op (`legacy/`); a
"ThirdPartyModel" node that wraps a whole MindSpore Lite model unwrapped; a training graph cut to its inference
graph (`ms_training`, when installed); weight-quantized tensors decoded to float32 (`ms_weights`). Then the
refusals of `ms_compat.survey` (newer ops, device-compiled nodes, outputs that are constants or unreachable).
Bridged copies are cached by the source's sha256 in ``$FIFTYONE_MSLITE_HOME/upgraded/``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import runtime
from ..errors import LegacyUpgradeError, ModelBridgeError, MsInspectError
from ..files import atomic_write, sha256_of
from . import ms_compat as C
from . import ms_weights as W
from .flatbuf import CorruptFlatBuffer, FlatReader, MutableFlatBuffer
from .legacy import schema as S
from .legacy.graph import Tensor
from .legacy.reader import tensor_names
from .legacy.writer import append_outputs, tensor_table, write_current
from .ms_inspect import inspect_ms, leading_padding
from .ms_training import cut_inference_graph, is_training_graph
from .upgrade import output_indices, translate_v0

__all__ = ["Bridged", "BridgeReport", "bridge_bytes", "bridge_file", "runnable_model", "bridge_cache_dir"]

log = logging.getLogger(__name__)
_MAX_NESTING = 3


@dataclass
class Bridged:
    """The bytes 2.0.0 runs and what was done to get them (empty ``steps``: the file runs as is)."""

    data: bytes
    steps: list[str] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BridgeReport:
    """What ``bridge_file`` wrote."""

    source: Path
    output: Path
    source_schema: str
    steps: tuple[str, ...]
    op_counts: dict[str, int]
    tensors_out: int
    added_outputs: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"source": str(self.source), "output": str(self.output), "source_schema": self.source_schema,
                "steps": list(self.steps), "op_counts": dict(self.op_counts), "tensors_out": self.tensors_out,
                "added_outputs": list(self.added_outputs), "seconds": round(self.seconds, 3)}


def bridge_cache_dir() -> Path:
    return runtime.cache_home() / "upgraded"


def _refuse(name: str, reason: str) -> ModelBridgeError:
    return ModelBridgeError(f"{name}: MindSpore Lite 2.0.0 cannot run it and the bridge cannot rewrite it: {reason}")


def _identifier(data: bytes) -> bytes:
    return data[4:8]


def bridge_bytes(data: bytes, name: str, inference_output: str | None = None) -> Bridged:
    """Rewrite one ``.ms`` (any generation) into what 2.0.0 runs; ModelBridgeError (one line) when it cannot."""
    out = Bridged(data)
    pad = leading_padding(data)
    if pad:
        out.data = data[pad:]
        out.steps.append(f"skipped {pad} bytes of leading zero padding")
    if _identifier(out.data) != b"MSL2":
        _upgrade_v0(out, name)
    for _ in range(_MAX_NESTING):
        graph = _read(out.data, name)
        if is_training_graph(out.data):
            out.data = _cut_training(out.data, name, inference_output)
            out.steps.append("cut the training graph to its inference graph (loss, gradient and optimizer nodes "
                             "removed)")
            graph = _read(out.data, name)
        survey = C.survey(graph)
        out.op_counts = dict(survey.ops)
        if survey.refusals:
            raise _refuse(name, "; ".join(f.detail for f in survey.refusals))
        if any(f.kind == "offline-model" for f in survey.findings):  # one node wrapping a whole .ms
            out.data = C.embedded_payload(graph, graph.nodes[0])
            out.steps.append(f"unwrapped the MindSpore Lite model held by node '{graph.nodes[0].name}'")
            continue
        if any(f.kind == "weight-quant" for f in survey.findings):
            count = _decode_weights(out, graph, name)
            out.steps.append(f"decoded {count} weight-quantized tensors to float32 (as MindSpore Lite "
                             f"{graph.version.removeprefix('MindSpore Lite ') or '1.x'} dequantizes them at load)")
        return out
    raise _refuse(name, f"models nested more than {_MAX_NESTING} deep")


def _read(data: bytes, name: str) -> C.MsGraph:
    try:
        return C.read_graph(data)
    except CorruptFlatBuffer as exc:
        raise ModelBridgeError(f"{name} is truncated or corrupt: {exc}; fetch or convert it again") from None


def _upgrade_v0(out: Bridged, name: str) -> None:
    try:
        graph, upgraded = translate_v0(out.data, name)
    except LegacyUpgradeError as exc:
        error = LegacyUpgradeError(f"{name} uses the legacy schema (v0), which MindSpore Lite 2.x refuses, and the "
                                   f"upgrade failed: {exc}")
        error.unsupported = getattr(exc, "unsupported", ())
        raise error from None
    out.data = write_current(upgraded)
    out.steps.append(f"upgraded legacy-schema (v0) to the current schema ({len(graph.nodes)} ops)")


def _cut_training(data: bytes, name: str, inference_output: str | None) -> bytes:
    try:
        return cut_inference_graph(data, inference_output)
    except runtime.ModelFileError as exc:
        raise ModelBridgeError(f"{name}: {exc}") from None


def _decode_weights(out: Bridged, graph: C.MsGraph, name: str) -> int:
    """Replace every quantized constant input of the weight-quantized nodes by its float32 values.

    The file is patched, not re-serialised (it may hold any of ~220 primitives): each new tensor is appended as a
    table of its own and its ``allTensors`` entry re-pointed; the node's quantType becomes QUANT_NONE.
    """
    decoded: dict[int, np.ndarray] = {}
    for node, index, tensor, dim in C.quantized_weights(graph):
        try:
            decoded[index] = W.dequantize(tensor, dim)
        except W.WeightDecodeError as exc:
            raise _refuse(name, f"node '{node.name}': {exc}") from None
    rd = FlatReader(graph.buf)
    nodes = C.weight_quant_nodes(graph)
    buf = MutableFlatBuffer(graph.buf)
    tensors = buf.vector_span(graph.meta, S.MG_TENSORS, 4, "MetaGraph.allTensors")[0]
    for index, values in decoded.items():
        t = graph.tensors[index]
        fmt = rd.scalar(t.table, S.T_FORMAT, "i32", 0, "format")
        blob = tensor_table(Tensor(t.name, 43, t.dims, fmt, S.NODE_VALUE, values.astype("<f4").tobytes()))
        buf.buf += b"\0" * (-len(buf.buf) % 16)
        table = len(buf.buf) + int.from_bytes(blob[:4], "little")
        buf.buf += blob
        entry = tensors + 4 * index
        buf.put("I", entry, table - entry)
    for node in nodes:
        pos = buf.field_pos(node.table, C.N_QUANT_TYPE, 4, f"node '{node.name}' quantType")
        if pos is not None:
            buf.put("i", pos, 0)
    out.data = bytes(buf.buf)
    return len(decoded)


def _load(src: Path) -> tuple[str, bytes]:
    """(schema, bytes) of a readable ``.ms``; every failure is a ModelBridgeError naming the file."""
    try:
        info = inspect_ms(src)
    except MsInspectError as exc:
        raise ModelBridgeError(f"cannot bridge {src}: {exc}") from None
    return info.schema, src.read_bytes()


def bridge_file(src: str | Path, dst: str | Path, add_outputs: tuple[str, ...] = (),
                inference_output: str | None = None) -> BridgeReport:
    """Write ``dst``: ``src`` rewritten for MindSpore Lite 2.0.0, with ``add_outputs`` (tensor names) appended to
    the graph outputs. Nothing is written when anything fails (temp file + rename)."""
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    schema, data = _load(src)
    result = bridge_bytes(data, str(src), inference_output)
    if not result.steps and not add_outputs:
        raise ModelBridgeError(f"{src} already runs on MindSpore Lite 2.0.0 as it is (current schema, nothing "
                               "to rewrite), nothing to do; pass --add-output NAME to expose an internal tensor")
    names = tensor_names(result.data)
    if add_outputs:
        result.data = append_outputs(result.data, output_indices(src, names, add_outputs))
    atomic_write(dst, result.data)
    return BridgeReport(src, dst, schema, tuple(result.steps), result.op_counts, len(names), tuple(add_outputs),
                        time.perf_counter() - start)


def needs_bridge(path: Path) -> bool:
    """Whether ``path`` is a ``.ms`` that 2.0.0 cannot run as written (padding, v0, or a finding of the survey).
    Files that are no ``.ms`` at all (MindIR, foreign formats) are left to the runtime's own checks."""
    try:
        info = inspect_ms(path)
    except MsInspectError:
        return False
    return info.padding > 0 or info.schema == "v0" or bool(info.findings)


def runnable_model(path: str | Path, sha256: str | None = None) -> Path:
    """The file MindSpore Lite 2.0.0 runs for ``path``: the file itself, or its bridged copy — made once, cached by
    the source's sha256 in ``bridge_cache_dir()`` (a changed source is bridged again). Raises ModelBridgeError
    (one line, nothing written) for a file the bridge refuses."""
    path = Path(path)
    if not needs_bridge(path):
        return path
    dst = bridge_cache_dir() / f"{(sha256 or sha256_of(path))[:16]}-{path.stem}.ms"
    if dst.is_file():
        return dst
    start = time.perf_counter()
    result = bridge_bytes(path.read_bytes(), str(path))
    atomic_write(dst, result.data)
    log.warning("bridged %s for MindSpore Lite 2.0.0: %s → %s (%.2f s; done once, cached)", path,
                "; ".join(result.steps), dst, time.perf_counter() - start)
    return dst

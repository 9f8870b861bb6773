"""Public API: upgrade a legacy-schema (v0) ``.ms`` to the current schema; add graph outputs to any ``.ms``."""
from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LegacyUpgradeError, MsInspectError
from ..files import atomic_write
from . import ms_inspect
from .flatbuf import CorruptFlatBuffer
from .legacy import ops
from .legacy.graph import Graph
from .legacy.reader import read_v0, tensor_names, without_cyclic_gc
from .legacy.writer import append_outputs, write_current

__all__ = ["UpgradeReport", "upgrade_ms", "legacy_summary", "is_legacy"]



@dataclass(frozen=True)
class UpgradeReport:
    """What ``upgrade_ms`` did: ops by type (source names), tensor counts, outputs added, time taken."""

    source: Path
    output: Path
    source_schema: str
    op_counts: dict[str, int]
    tensors_in: int
    tensors_out: int
    added_outputs: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"source": str(self.source), "output": str(self.output), "source_schema": self.source_schema,
                "op_counts": dict(self.op_counts), "tensors_in": self.tensors_in, "tensors_out": self.tensors_out,
                "added_outputs": list(self.added_outputs), "seconds": round(self.seconds, 3)}


def _load(path: Path, info: ms_inspect.MsModelInfo | None = None) -> tuple[str, bytes]:
    """(schema, bytes) of a readable ``.ms`` (`info`: its inspection when the caller has it already); every
    failure is a LegacyUpgradeError naming the file."""
    try:
        info = info or ms_inspect.inspect_ms(path)
        return info.schema, path.read_bytes()
    except MsInspectError as exc:
        raise LegacyUpgradeError(f"cannot upgrade {path}: {exc}") from None
    except OSError as exc:
        raise LegacyUpgradeError(f"cannot upgrade {path}: cannot read it ({exc.strerror or exc})") from None


def _read_legacy(path: Path | str, buf: bytes) -> Graph:
    try:
        return read_v0(buf)
    except CorruptFlatBuffer as exc:
        raise LegacyUpgradeError(f"cannot upgrade {path}: the legacy-schema file is corrupt: {exc}") from None


def translate_v0(buf: bytes, name: str) -> tuple[Graph, Graph]:
    """(the v0 graph, its current-schema translation) of a legacy buffer; LegacyUpgradeError naming ``name`` and
    every op without a faithful translation (also listed one per line in the error's ``unsupported``)."""
    graph = _read_legacy(name, buf)
    try:
        return graph, ops.translate(graph)
    except ops.UnsupportedGraph as exc:
        error = LegacyUpgradeError(
            f"cannot upgrade {name}: {len(exc.problems)} of its {len(graph.nodes)} ops have no faithful "
            f"current-schema equivalent: {exc}")
        error.unsupported = tuple(str(p) for p in exc.problems)  # for callers that list them one per line
        raise error from None


def output_indices(path: Path, names: list[str], wanted: tuple[str, ...]) -> list[int]:
    """Indices of the tensors named ``wanted`` (the first of each name), or an error listing the names there are."""
    index = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    missing = [w for w in wanted if w not in index]
    if missing:
        shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
        raise LegacyUpgradeError(f"{path.name} has no tensor named {', '.join(map(repr, missing))} "
                                 f"(its tensors: {shown}); `fiftyone-mslite inspect` lists the names")
    return [index[w] for w in wanted]


@without_cyclic_gc()
def upgrade_ms(src: str | os.PathLike, dst: str | os.PathLike, add_outputs: tuple[str, ...] = ()) -> UpgradeReport:
    """Write ``dst``: the current-schema equivalent of the legacy ``src``, with ``add_outputs`` (tensor names)
    appended to the graph outputs. For a current-schema ``src`` only the outputs are added (graph surgery).

    Nothing is written when anything fails: the file appears at ``dst`` complete (temp file + ``os.replace``).
    """
    start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    add_outputs = tuple(add_outputs)
    schema, buf = _load(src)
    if schema != "v0":
        if not add_outputs:
            raise LegacyUpgradeError(f"{src.name} already uses the current schema (MSL2), nothing to do; "
                                     "pass --add-output NAME to expose an internal tensor as an output")
        names = tensor_names(buf)
        data = append_outputs(buf, output_indices(src, names, add_outputs))
        atomic_write(dst, data)
        return UpgradeReport(src, dst, schema, {}, len(names), len(names), add_outputs,
                             seconds=time.perf_counter() - start)
    graph, upgraded = translate_v0(buf, src.name)
    counts = dict(collections.Counter(n.op for n in graph.nodes))
    extra = output_indices(src, [t.name for t in upgraded.tensors], add_outputs)
    for index in extra:
        if index not in upgraded.outputs:
            upgraded.outputs.append(index)
            upgraded.subgraphs[0].outputs.append(index)
    atomic_write(dst, write_current(upgraded))
    return UpgradeReport(src, dst, "v0", counts, len(graph.tensors), len(upgraded.tensors), add_outputs,
                         seconds=time.perf_counter() - start)


@without_cyclic_gc()
def legacy_summary(path: str | os.PathLike, info: ms_inspect.MsModelInfo | None = None) -> str:
    """One line for ``inspect``: whether a legacy file can be upgraded, or which ops stand in the way
    (`info`: the file's `inspect_ms`, when the caller has it, so the file is not walked twice)."""
    path = Path(path)
    schema, buf = _load(path, info)
    if schema != "v0":
        return "current schema (MSL2), no upgrade needed"
    graph = _read_legacy(path, buf)
    problems = ops.problems_of(graph)
    if not problems:
        return f"legacy schema v0, upgradable ({len(graph.nodes)} ops, all supported)"
    listed = "; ".join(map(str, problems[:10])) + (f"; ... ({len(problems) - 10} more)" if len(problems) > 10 else "")
    return (f"legacy schema v0, not upgradable: {len(problems)} of {len(graph.nodes)} ops unsupported: {listed}")


def is_legacy(path: str | os.PathLike) -> bool:
    """Whether a file is a legacy-schema (v0) ``.ms``: False for anything else, readable or not."""
    try:
        return ms_inspect.inspect_ms(Path(path)).schema == "v0"
    except MsInspectError:
        return False

"""A catalog entry's model file on disk: fetched (mirror-aware, verified), converted or bridged on first use,
cached, checked for loadability, with the first working alternative when a source fails."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from .. import downloads, runtime
from ..errors import EmbeddingNotFoundError, LegacyUpgradeError
from ..files import atomic_write, sha256_of
from ..modelfiles.bridge import runnable_model
from ..modelfiles.convert import convert_model
from ..modelfiles.embedding import AUTO, EmbeddingOutput
from ..modelfiles.ms_inspect import MsInspectError, inspect_ms
from .schema import CatalogError, Conversion, ModelEntry, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    source: Source
    converted: bool
    notes: tuple[str, ...] = ()
    embedding: EmbeddingOutput | None = None  # the extra output holding the embedding
    embedding_problem: str | None = None  # why there is none


def converted_dir() -> Path:
    return runtime.cache_home() / "converted"


def _source_file(source: Source, progress: bool | None) -> Path:
    if source.path:
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise runtime.ModelFileError(f"model source {path} does not exist (moved or deleted?). Re-add the model "
                                         "with `fiftyone-mslite models add`.")
        if source.sha256 and sha256_of(path) != source.sha256:
            raise runtime.ModelFileError(f"model source {path} changed since it was added (sha256 differs). "
                                         "Re-add the model with `fiftyone-mslite models add`.")
        return path
    return downloads.fetch(source.url, sha256=source.sha256, progress=progress)


def _check_ms(path: Path) -> None:
    """Refuse a .ms MindSpore Lite 2.x would not load (legacy schema, truncated), with the inspector's hint."""
    info = inspect_ms(path)
    if info.loadable is False:
        raise MsInspectError(f"{path}: {info.hint}")


def _runnable_ms(source: Source, src: Path) -> Path:
    """A .ms that MindSpore Lite 2.0.0 loads: the file itself or its bridged copy (`modelfiles.bridge`, cached by
    the source's sha256). A file the bridge refuses raises (a ModelFileError), so `model_file` moves on to the
    entry's alternatives."""
    src = runnable_model(src, source.sha256)
    _check_ms(src)
    return src


def embedding_hint(entry: ModelEntry) -> str:
    """How to name the embedding tensor of `entry` (one wording for every place that needs it)."""
    return (f"set it in the catalog entry of '{entry.name}' ({entry.origin}): `embedding: {{tensor: NAME}}` "
            "under the model, NAME being the input of its final classifier layer (e.g. the global-pool or "
            "flatten output)")


def _embedding_record(out: Path) -> Path:
    return out.with_name(out.name + ".embedding.json")


def _read_embedding(out: Path) -> tuple[EmbeddingOutput | None, str | None]:
    """(embedding, problem) recorded beside a converted file; (None, None) for files made without one."""
    record = _embedding_record(out)
    data = json.loads(record.read_text()) if record.is_file() else {}
    if data.get("tensor"):
        return EmbeddingOutput(data["tensor"], data.get("size")), None
    return None, data.get("problem")


def _convert(src: Path, out: Path, fmt: str, conv: Conversion, embedding: str | None = None) -> Path:
    """Convert in a scratch directory beside ``out``, check the result, then rename it into place: a failed or
    interrupted conversion never leaves a file at ``out``, and never replaces one there. With ``embedding``,
    what became of it is recorded beside ``out`` first (the model file only counts once both are there)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".converting-") as work:
        options = {"save_type": conv.save_type, "source_format": fmt, "input_data_type": conv.input_data_type,
                   "output_data_type": conv.output_data_type, "dequantize": conv.dequantize}
        try:
            result = convert_model(src, Path(work) / out.name, embedding=embedding, **options)
            record = result.embedding.to_dict() if result.embedding else {}
        except EmbeddingNotFoundError as exc:
            if embedding != AUTO:
                raise
            result, record = convert_model(src, Path(work) / out.name, **options), {"problem": str(exc)}
        if conv.save_type == "ms":
            _check_ms(result.output)
        if embedding:
            atomic_write(_embedding_record(out), json.dumps(record))  # never half a record beside a model
        os.replace(result.output, out)
    log.info("converted %s → %s", src, out)
    return out


def _materialize(entry: ModelEntry, source: Source, progress: bool | None) -> ModelFile:
    src = _source_file(source, progress)
    fmt = source.resolved_format
    tensor = entry.embedding.tensor
    if not source.needs_conversion:
        if fmt == "ms":
            src = _runnable_ms(source, src)
            if tensor:
                return _ms_with_embedding(entry, source, src)
        problem = f"an embedding tensor is found automatically in ONNX and TFLite sources only; {embedding_hint(entry)}"
        return ModelFile(src, source, converted=False, embedding_problem=problem)
    conv = source.conversion
    key = (source.sha256 or sha256_of(src))[:16]
    embedding = (tensor or AUTO) if runtime.formats.get(fmt).embedding else None

    def cached(request: str | None) -> Path:
        variant = ("-float" if conv.dequantize else "") + (f"-emb-{_short(request)}" if request else "")
        return _cache_path(entry, f"{src.stem}-{key}{variant}.{conv.save_type}")

    out, auto = cached(embedding), cached(AUTO)
    if tensor and auto.is_file() and getattr(_read_embedding(auto)[0], "tensor", None) == tensor:
        out = auto  # `models add` converted it with the tensor found automatically, then recorded that name
    if not out.is_file() or (embedding and not _embedding_record(out).is_file()):
        try:
            _convert(src, out, fmt, conv, embedding)
        except EmbeddingNotFoundError as exc:
            raise CatalogError(f"model '{entry.name}': {exc}; {embedding_hint(entry)}") from None
    found, problem = _read_embedding(out)
    if embedding is None:
        problem = (f"embedding outputs are added to ONNX and TFLite sources only (this one is {fmt}); "
                   f"{embedding_hint(entry)}")
    elif problem:
        problem = f"model '{entry.name}': {problem}; {embedding_hint(entry)}"
    return ModelFile(out, source, converted=True, embedding=found, embedding_problem=problem)


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _cache_path(entry: ModelEntry, name: str) -> Path:
    root = converted_dir()
    out = root / entry.name / name
    if not downloads.is_inside(root, out):
        raise CatalogError(f"model '{entry.name}': its converted file {out} would be outside {root}; "
                           "give the model a plain name")
    return out


def _ms_with_embedding(entry: ModelEntry, source: Source, src: Path) -> ModelFile:
    """A copy of a .ms with the entry's embedding tensor added as an output (graph surgery, cached)."""
    from ..modelfiles.upgrade import upgrade_ms

    tensor = entry.embedding.tensor or ""
    key = (source.sha256 or sha256_of(src))[:16]
    out = _cache_path(entry, f"{src.stem}-{key}-emb-{_short(tensor)}.ms")
    if not out.is_file():
        try:
            upgrade_ms(src, out, add_outputs=(tensor,))
        except LegacyUpgradeError as exc:
            raise CatalogError(f"model '{entry.name}': {exc}; {embedding_hint(entry)}") from None
    return ModelFile(out, source, converted=True, embedding=EmbeddingOutput(tensor, entry.embedding.size))


def model_file(entry: ModelEntry, progress: bool | None = None) -> ModelFile:
    """The loadable file for an entry: its source, else the first alternative that works (for seed files
    written by pre-1.1 converters, which MindSpore Lite 2.x refuses)."""
    problems: list[str] = []
    for source in (entry.source, *entry.alternatives):
        try:
            found = _materialize(entry, source, progress)
        except (runtime.ModelFileError, downloads.DownloadError) as exc:
            problems.append(f"{source.location}: {exc}")
            continue
        return replace(found, notes=tuple(problems))
    tried = "\n  ".join(problems)
    raise CatalogError(f"no loadable file for model '{entry.name}'. Tried:\n  {tried}")

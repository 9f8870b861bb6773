"""Model files on disk: fetch (mirror-aware, verified), convert on first use, cache, check loadability."""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import downloads, runtime
from ..modelfiles.convert import convert_model
from ..modelfiles.ms_inspect import MsInspectError, inspect_ms
from .schema import CatalogError, Conversion, ModelEntry, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    source: Source
    converted: bool
    notes: tuple[str, ...] = ()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    if not info.loadable:
        raise MsInspectError(f"{path}: {info.hint}")


def _convert(src: Path, out: Path, fmt: str, conv: Conversion) -> Path:
    """Convert in a scratch directory beside ``out``, check the result, then rename it into place: a failed or
    interrupted conversion never leaves a file at ``out``, and never replaces one there."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".converting-") as work:
        result = convert_model(src, Path(work) / out.name, save_type=conv.save_type, source_format=fmt,
                               input_data_type=conv.input_data_type, output_data_type=conv.output_data_type,
                               dequantize=conv.dequantize)
        if conv.save_type == "ms":
            _check_ms(result.output)
        os.replace(result.output, out)
    log.info("converted %s → %s", src, out)
    return out


def _materialize(entry: ModelEntry, source: Source, progress: bool | None) -> ModelFile:
    src = _source_file(source, progress)
    fmt = source.resolved_format
    if not source.needs_conversion:
        if fmt == "ms":
            _check_ms(src)
        return ModelFile(src, source, converted=False)
    conv = source.conversion
    key = (source.sha256 or sha256_of(src))[:16]
    variant = "-float" if conv.dequantize else ""
    root = converted_dir()
    out = root / entry.name / f"{src.stem}-{key}{variant}.{conv.save_type}"
    if not downloads.is_inside(root, out):
        raise CatalogError(f"model '{entry.name}': its converted file {out} would be outside {root}; "
                           "give the model a plain name")
    if not out.is_file():
        _convert(src, out, fmt, conv)
    return ModelFile(out, source, converted=True)


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
        return ModelFile(found.path, found.source, found.converted, tuple(problems))
    tried = "\n  ".join(problems)
    raise CatalogError(f"no loadable file for model '{entry.name}'. Tried:\n  {tried}")

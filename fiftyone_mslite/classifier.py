"""A ready-to-run classifier: catalog entry + runtime session + adapter.

This is the one place that turns 'a name or a path' into something that maps images to predictions;
the CLI, the FiftyOne model and the fast annotate path all go through it.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from . import runtime
from .adapters.base import Adapter
from .catalog.registry import catalog
from .catalog.schema import ModelEntry, Preprocess, Source
from .catalog.store import model_file, sha256_of
from .catalog.user import complete_entry


def entry_for_file(path: str | Path, labels: str, overrides: dict[str, Any]) -> ModelEntry:
    """An ad-hoc entry for a local .ms/.mindir: input size is read from the model when not given."""
    path = Path(path).expanduser().resolve()
    pre = {k: overrides.pop(k) for k in list(overrides) if k in Preprocess.model_fields}
    return ModelEntry(name=overrides.pop("name", path.stem), labels=labels,
                      num_classes=overrides.pop("num_classes", 1), task=overrides.pop("task", "single"),
                      adapter=overrides.pop("adapter", "classifier"),
                      source=Source(path=str(path), sha256=sha256_of(path)),
                      preprocess=Preprocess(input_size=pre.pop("input_size", 1), **pre), origin="file")


class Classifier:
    """Images in, predictions out. Owns its runtime session (close it, or use `with`)."""

    def __init__(self, entry: ModelEntry, path: Path, threads: int = 2, backend: str | None = None,
                 streams: int | str = 1):
        self.entry, self.path = entry, path
        cat = catalog()
        self.labels = cat.labels(entry.labels)
        self.session = runtime.open_model(path, threads=threads, backend=backend, streams=streams)
        self._pipeline: Any = None
        try:
            if entry.origin == "file":  # nothing to trust but the file itself
                entry = self.entry = complete_entry(entry, self.session)
            self.adapter: Adapter = cat.adapter_class(entry)(entry, self.labels, self.session.inputs,
                                                              self.session.outputs)
        except Exception:
            self.session.close()
            raise

    @property
    def task(self) -> str:
        return self.adapter.task

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self.adapter.preprocess(image)

    def infer(self, batch: np.ndarray) -> list:
        """Pre-processed batch → predictions."""
        return self.adapter.postprocess(self.session.run(batch))

    @property
    def streams(self) -> int:
        """Batches the session runs at once (pipelined callers keep one more queued)."""
        return getattr(self.session, "streams", 1)

    def submit(self, batch: np.ndarray) -> Future:
        """Queue a pre-processed batch for the next idle stream; the Future gives raw outputs for
        `adapter.postprocess`. Lets a pipelined caller keep inference busy."""
        if self._pipeline is None:  # a single session gets a one-stream queue
            s = self.session
            self._pipeline = s if hasattr(s, "submit") else runtime.StreamedSession([s])
        return self._pipeline.submit(batch)

    def predict(self, images: Sequence[np.ndarray]) -> list:
        """RGB uint8 HWC images → predictions."""
        return self.infer(np.stack([self.preprocess(img) for img in images]))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_classifier(name_or_path: str | Path, labels: str | None = None, threads: int = 2,
                    backend: str | None = None, progress: bool | None = None, streams: int | str = 1,
                    **overrides: Any) -> Classifier:
    """A catalog name or a local .ms/.mindir (then `labels` names a label set or label file)."""
    ref = str(name_or_path)
    cat = catalog()
    if ref in cat.models:
        entry = cat.model(ref)
        if labels or overrides:
            pre = {k: overrides.pop(k) for k in list(overrides) if k in Preprocess.model_fields}
            update: dict[str, Any] = dict(overrides)
            if labels:
                update["labels"] = labels
            if pre:
                update["preprocess"] = entry.preprocess.model_copy(update=pre)
            entry = ModelEntry.model_validate({**entry.model_dump(), **update})
        found = model_file(entry, progress=progress)
        return Classifier(entry, found.path, threads=threads, backend=backend, streams=streams)
    if Path(ref).expanduser().exists() or ref.endswith((".ms", ".mindir")):
        if not labels:
            raise ValueError(f"{ref} is a model file: pass labels (a label set name or a label file), "
                             f"e.g. labels='imagenet-1000'")
        runtime.detect_model_format(ref)  # a clear error for missing/foreign files, before anything else
        entry = entry_for_file(ref, labels, dict(overrides))
        return Classifier(entry, Path(ref).expanduser().resolve(), threads=threads, backend=backend,
                          streams=streams)
    cat.model(ref)  # raises with suggestions
    raise AssertionError("unreachable")

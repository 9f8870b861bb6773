"""A ready-to-run classifier: catalog entry + runtime session + adapter.

This is the one place that turns 'a name or a path' into something that maps images to predictions;
the CLI, the FiftyOne model and the fast annotate path all go through it, and none of them reaches past it
into the session or the adapter.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import runtime
from .adapters.base import Adapter
from .adapters.preprocessing import PreprocessConfig
from .catalog.adhoc import complete_entry, entry_for_file, split_overrides
from .catalog.labelsets import LabelSet
from .catalog.registry import catalog
from .catalog.schema import ModelEntry
from .catalog.store import model_file
from .modelfiles.formats import detect_format


class Classifier:
    """Images in, predictions out. Owns its runtime session (close it, or use `with`)."""

    def __init__(self, entry: ModelEntry, path: Path, threads: int = 2, backend: str | None = None,
                 streams: int | str = 1):
        self.path = path
        cat = catalog()
        self.labels: LabelSet = cat.labels(entry.labels)
        self.session = runtime.open_model(path, threads=threads, backend=backend, streams=streams)
        try:
            if entry.origin == "file":  # nothing to trust but the file itself
                entry = complete_entry(entry, self.session)
            self.entry = entry
            self._adapter: Adapter = cat.adapter_class(entry)(entry, self.labels).bind(self.session.inputs,
                                                                                         self.session.outputs)
        except Exception:
            self.session.close()
            raise

    @property
    def task(self) -> str:
        return self._adapter.task

    @property
    def adapter_class(self) -> type[Adapter]:
        """The model family (adapter class) this classifier runs, as a plugin registered it."""
        return type(self._adapter)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        return self._adapter.input_hw

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self._adapter.config

    @property
    def streams(self) -> int:
        """Batches the session runs at once (pipelined callers keep one more queued)."""
        return self.session.streams

    def prepare(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """RGB image (HWC uint8 array or PIL) → one model input sample."""
        return self._adapter.preprocess(image)

    def postprocess(self, outputs: list[np.ndarray]) -> list:
        """Raw outputs of a batch → one prediction per sample."""
        return self._adapter.postprocess(outputs)

    def infer(self, batch: np.ndarray) -> list:
        """Prepared batch → predictions."""
        return self.postprocess(self.session.run(batch))

    def submit(self, batch: np.ndarray) -> Future:
        """Queue a prepared batch for the next idle stream; the Future gives raw outputs for `postprocess`.
        Lets a pipelined caller keep inference busy."""
        return self.session.submit(batch)

    def predict(self, images: Sequence[np.ndarray]) -> list:
        """RGB uint8 HWC images → predictions."""
        return self.infer(np.stack([self.prepare(img) for img in images]))

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
        pre, update = split_overrides(overrides)
        if labels:
            update["labels"] = labels
        if pre:
            update["preprocess"] = dataclasses.replace(entry.preprocess, **pre)
        if update:
            entry = ModelEntry.model_validate({**entry.model_dump(), **update})
        found = model_file(entry, progress=progress)
        return Classifier(entry, found.path, threads=threads, backend=backend, streams=streams)
    if Path(ref).expanduser().exists() or ref.endswith((".ms", ".mindir")):
        if not labels:
            raise ValueError(f"{ref} is a model file: pass labels (a label set name or a label file), "
                             f"e.g. labels='imagenet-1000'")
        detect_format(ref, runnable=True)  # a clear error for missing/foreign files, before anything else
        entry = entry_for_file(ref, labels, dict(overrides))
        return Classifier(entry, Path(ref).expanduser().resolve(), threads=threads, backend=backend,
                          streams=streams)
    cat.model(ref)  # raises with suggestions
    raise AssertionError("unreachable")

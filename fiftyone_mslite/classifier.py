"""A ready-to-run classifier: catalog entry + runtime session + adapter.

This is the one place that turns 'a name or a path' into something that maps images to predictions;
the CLI, the FiftyOne model and the fast annotate path all go through it, and none of them reaches past it
into the session or the adapter.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import runtime
from .adapters.base import Adapter
from .adapters.preprocessing import ImageFit, PreprocessConfig
from .catalog.binding import bind, entry_for_file, split_overrides
from .catalog.labelsets import LabelSet
from .catalog.model_files import model_file
from .catalog.registry import catalog
from .catalog.schema import ModelEntry
from .errors import EmbeddingNotFoundError
from .modelfiles.bridge import runnable_model
from .runtime.tensors import check_input_size


class Classifier:
    """Images in, predictions out. Owns its runtime session (close it, or use `with`)."""

    def __init__(self, entry: ModelEntry, path: Path, threads: int = 2, backend: str | None = None,
                 streams: int | str = 1, embedding_tensor: str | None = None, embedding_problem: str | None = None):
        """`embedding_tensor` (else `entry.embedding.tensor`) names the output holding embeddings (the adapter never
        sees it); `embedding_problem` says why a model has none, for the error `embeddings()` raises."""
        self.path = path
        cat = catalog()
        self.labels: LabelSet = cat.labels(entry.labels)
        self.session = runtime.open_model(path, threads=threads, backend=backend, streams=streams)
        try:  # a bare file (origin "file"): nothing to trust but the file itself
            bound = bind(cat, entry, self.labels, self.session, complete=entry.origin == "file",
                         embedding_tensor=embedding_tensor, embedding_problem=embedding_problem)
        except Exception:
            self.session.close()
            raise
        self.entry, self._adapter, self._head, self._embedding = bound.entry, bound.adapter, bound.head, bound.embedding
        self.embedding_problem = bound.embedding_problem

    @property
    def task(self) -> str:
        """single | multi, as the model family's prediction kind states it."""
        return self._adapter.task

    @property
    def prediction_kind(self) -> type:
        """The prediction dataclass `postprocess` returns (how it becomes a FiftyOne label: integration/labels)."""
        return self._adapter.prediction

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
    def fit(self) -> ImageFit:
        """Where decoded images go (what `open_rgb` needs to decode no more pixels than used)."""
        return ImageFit(self.input_hw, self.preprocess_config)

    @property
    def streams(self) -> int:
        """Batches the session runs at once (pipelined callers keep one more queued)."""
        return self.session.streams

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class of each output index (a background output included)."""
        return self._adapter.class_names

    @property
    def has_embeddings(self) -> bool:
        return self._embedding is not None

    @property
    def embedding_size(self) -> int | None:
        return self.entry.embedding.size if self.has_embeddings else None

    def identity(self) -> dict[str, Any]:
        """What decides this classifier's outputs: two with equal identities give the same predictions (a Ray
        actor checks its own against the driver's)."""
        e = self.entry
        return {"model": e.name, "sha256": e.source.sha256, "labels": e.labels, "preprocess": e.preprocess.to_dict()}

    def prepare(self, image: np.ndarray | Image.Image, config: PreprocessConfig | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
        """RGB image (HWC uint8 array or PIL) → one model input sample, written into `out` if given (a row of a
        batch buffer: see `batch_buffer`); `config` tries another recipe (calibration) on this loaded model."""
        return self._adapter.preprocess(image, config, out)

    def batch_buffer(self, size: int) -> np.ndarray | None:
        """An uninitialised batch of the model input, for `prepare(..., out=buffer[i])`; None when the input has
        dynamic sample dims (then stack prepared samples instead)."""
        spec = self.session.inputs[0]
        if any(d < 0 for d in spec.shape[1:]):
            return None
        shape = (size, *spec.shape[1:])
        check_input_size([spec], [shape], self.session.path)  # a batch of a corrupt file's huge dims: refused
        return np.empty(shape, spec.dtype)

    def postprocess(self, outputs: list[np.ndarray]) -> list:
        """Raw outputs of a batch → one prediction per sample."""
        return self._adapter.postprocess([outputs[i] for i in self._head])

    def used_outputs(self, embeddings: bool) -> list[int]:
        """Indices of the raw outputs `postprocess` (and, with `embeddings`, `embeddings`) reads: what a caller
        that ships outputs elsewhere (a Ray actor) has to send; the others may be None."""
        extra = {self._embedding} if embeddings and self._embedding is not None else set()
        return sorted(set(self._head) | extra)

    def require_embeddings(self) -> None:
        """Raise, before any work, why this model has no embeddings (and how to give it some)."""
        if self._embedding is None:
            raise EmbeddingNotFoundError(self.embedding_problem)

    def embeddings(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Raw outputs of a batch → float32 (batch, embedding_size): the same run that gave the predictions."""
        self.require_embeddings()
        emb = outputs[self._embedding]
        return emb.reshape(emb.shape[0], -1).astype(np.float32, copy=False)

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


def runnable_file(path: Path) -> Path:
    """A local model file MindSpore Lite 2.0.0 loads: the file itself, or its bridged copy (any .ms generation,
    `modelfiles.bridge`, made once and cached by content); anything else is refused with what to do."""
    path = runnable_model(path)
    runtime.formats.detect(path, runnable=True)
    return path


def _converted_first(path: Path) -> bool:
    """A source format MindSpore Lite's converter reads but its runtime does not load (ONNX, TFLite, a plugin's)."""
    try:
        fmt = runtime.formats.get(runtime.formats.detect(path))
    except runtime.ModelFileError:
        return False  # unknown content: `runnable_file` says what was expected
    return fmt.convertible and not fmt.runnable


def load_classifier(name_or_path: str | Path, labels: str | None = None, threads: int = 2,
                    backend: str | None = None, progress: bool | None = None, streams: int | str = 1,
                    **overrides: Any) -> Classifier:
    """A catalog name or a local model file (then `labels` names a label set or label file): a .ms/.mindir runs as
    it is (any .ms generation through the bridge), an ONNX/TFLite/... source is converted once and cached (its
    input size, and its mean/std where its metadata declares them, read from the file as `models add` does)."""
    ref = str(name_or_path)
    cat = catalog()
    if ref in cat.models:
        entry = cat.model(ref)
        pre, update = split_overrides(overrides)
        if labels:
            update["labels"] = labels
        if pre:
            update["preprocess"] = entry.preprocess.with_changes(**pre)
        if update:
            entry = ModelEntry.model_validate({**entry.model_dump(), **update})
        cat.labels(entry.labels)  # a bad label file fails before a model download or conversion
        found = model_file(entry, progress=progress)
        return Classifier(entry, found.path, threads=threads, backend=backend, streams=streams,
                          embedding_tensor=getattr(found.embedding, "tensor", None),
                          embedding_problem=found.embedding_problem)
    local = Path(ref).expanduser()
    if local.exists() or runtime.formats.from_suffix(ref):
        if not labels:
            raise ValueError(f"{ref} is a model file: pass labels (a label set name or a label file), "
                             f"e.g. labels='imagenet-1000'")
        if local.is_file() and _converted_first(local):  # an ONNX/TFLite/... source: converted once, cached
            entry = entry_for_file(local, labels, dict(overrides))
            cat.labels(entry.labels)  # a bad label file fails before the conversion
            found = model_file(entry, progress=progress)
            return Classifier(entry, found.path, threads=threads, backend=backend, streams=streams,
                              embedding_tensor=getattr(found.embedding, "tensor", None),
                              embedding_problem=found.embedding_problem)
        path = runnable_file(local).resolve()  # missing/foreign files: a clear error first
        return Classifier(entry_for_file(ref, labels, dict(overrides)), path, threads=threads, backend=backend,
                          streams=streams)
    cat.model(ref)  # raises with suggestions
    raise AssertionError("unreachable")

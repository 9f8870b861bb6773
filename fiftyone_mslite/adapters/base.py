"""What an adapter is: the model-family code between pixels and labels.

An adapter owns pre-processing (RGB uint8 HWC → the loaded model's input tensor) and post-processing
(raw outputs → predictions). Predictions are plain dataclasses, not FiftyOne labels, so that CLI
prediction never pays for importing FiftyOne.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import ModelMismatchError
from ..runtime.tensors import TensorSpec
from .preprocessing import PreprocessConfig, input_hw, preprocess

if TYPE_CHECKING:
    from ..catalog.labelsets import LabelSet
    from ..catalog.schema import ModelEntry


@dataclass(frozen=True)
class ClassPrediction:
    """Single-label result. `logits` are the raw scores (before softmax), kept for top-k evaluation."""

    label: str
    index: int
    confidence: float
    synset: str | None = None  # WordNet id of the label, where the label set has one
    top_k: tuple[tuple[str, float], ...] = ()
    logits: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MultiLabelPrediction:
    """Multi-label result: every class whose score passes its threshold, best first."""

    labels: tuple[tuple[str, float], ...]
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


class Adapter(ABC):
    """Base class for model families. Subclasses set `task` and implement `postprocess`; those that derive state
    from the model's outputs (a background offset, thresholds) extend `bind`."""

    task: str = "single"

    def __init__(self, entry: ModelEntry, labels: LabelSet):
        self.entry, self.labels = entry, labels
        self.config = entry.preprocess
        self.input: TensorSpec | None = None
        self.outputs: list[TensorSpec] = []

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Adapter:
        """Attach the loaded model's tensors, trusting the model over the catalog: a contradiction is refused
        with both values named. Returns self, ready to pre- and post-process."""
        spec = inputs[0]
        try:
            h, w = input_hw(spec)
        except ValueError as exc:
            raise ModelMismatchError(f"model '{self.entry.name}': {exc}") from None
        size = self.config.input_size
        if size is not None and (h, w) != (size, size):
            raise ModelMismatchError(f"model '{self.entry.name}': the catalog says input_size {size}, the model "
                                     f"file takes {h}x{w} ({spec.layout} {spec.shape}). Fix "
                                     f"preprocess.input_size in the catalog entry.")
        self.input, self.outputs = spec, list(outputs)
        return self

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the bound model's image input."""
        if self.input is None:
            raise RuntimeError(f"adapter of '{self.entry.name}' used before bind()")
        return input_hw(self.input)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class of each output index."""
        return self.labels.names

    def preprocess(self, image: np.ndarray | Image.Image, config: PreprocessConfig | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
        """One image → one sample of the model input (no batch dim), written into `out` if given (a row of a
        batch); `config` tries another recipe on the same loaded model (calibration) instead of the entry's."""
        if self.input is None:
            raise RuntimeError(f"adapter of '{self.entry.name}' used before bind()")
        return preprocess(image, self.input, config or self.config, out)

    @abstractmethod
    def postprocess(self, outputs: list[np.ndarray]) -> list:
        """Raw outputs of a batch → one prediction per sample."""


def scores_to_float(scores: np.ndarray) -> np.ndarray:
    """Quantized graphs emit uint8/int8 scores: map them back to 0..1."""
    if scores.dtype == np.uint8:
        return scores.astype(np.float32) / 255.0
    if scores.dtype == np.int8:
        return (scores.astype(np.float32) + 128.0) / 255.0
    return scores.astype(np.float32, copy=False)

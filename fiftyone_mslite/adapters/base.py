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

from ..runtime.specs import TensorSpec
from .preprocessing import input_hw, preprocess

if TYPE_CHECKING:
    from ..catalog.labelsets import LabelSet
    from ..catalog.schema import ModelEntry


class ModelMismatchError(ValueError):
    """The loaded model contradicts its catalog entry (input size, output size vs labels)."""


@dataclass(frozen=True)
class ClassPrediction:
    """Single-label result. `logits` are the raw scores (before softmax), kept for top-k evaluation."""

    label: str
    index: int
    confidence: float
    top_k: tuple[tuple[str, float], ...] = ()
    logits: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MultiLabelPrediction:
    """Multi-label result: every class whose score passes its threshold, best first."""

    labels: tuple[tuple[str, float], ...]
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


class Adapter(ABC):
    """Base class for model families. Subclasses set `task` and implement `postprocess`."""

    task: str = "single"

    def __init__(self, entry: ModelEntry, labels: LabelSet, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self.entry, self.labels = entry, labels
        self.input, self.outputs = inputs[0], outputs
        self.preprocess_config = entry.preprocess.config()
        self.verify()

    def verify(self) -> None:
        """Trust the loaded model over the catalog: refuse contradictions with both values named."""
        try:
            h, w = input_hw(self.input)
        except ValueError as exc:
            raise ModelMismatchError(f"model '{self.entry.name}': {exc}") from None
        size = self.entry.preprocess.input_size
        if (h, w) != (size, size):
            raise ModelMismatchError(f"model '{self.entry.name}': the catalog says input_size {size}, the model "
                                     f"file takes {h}x{w} ({self.input.layout} {self.input.shape}). Fix "
                                     f"preprocess.input_size in the catalog entry.")

    def preprocess(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """One image → one sample of the model input (no batch dim)."""
        return preprocess(image, self.input, self.preprocess_config)

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

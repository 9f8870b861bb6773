"""What an adapter is: the model-family code between pixels and labels, and the contract it is built with.

An adapter owns pre-processing (RGB uint8 HWC → the loaded model's input tensor) and post-processing
(raw outputs → predictions). It is built from a pre-processing config, a label set (anything of the
`LabelSetLike` shape) and `AdapterOptions`, never from a catalog entry: the family does not know where its
facts came from. Predictions are plain dataclasses, not FiftyOne labels, so that CLI prediction never pays for
importing FiftyOne; each kind states its task and how it ranks its classes (the FiftyOne layer registers how each
kind becomes a FiftyOne label).
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Protocol

import numpy as np
from PIL import Image

from ..errors import ModelMismatchError
from ..runtime.tensors import TensorSpec
from .preprocessing import PreprocessConfig, input_hw, preprocess

Ranked = tuple[tuple[str, float], ...]


class LabelSetLike(Protocol):
    """What an adapter reads of a label set (`catalog.labelsets.LabelSet` is one)."""

    name: str
    names: tuple[str, ...]
    synsets: Optional[tuple[Optional[str], ...]]
    thresholds: Optional[tuple[float, ...]]
    background: bool  # names[0] is a background class
    background_head: bool  # a model may put one background output before these labels

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class AdapterOptions:
    """What a model tells its family besides pre-processing and labels."""

    model: str = "model"  # the model's name, for messages
    background: bool = False  # output 0 is a background class that the label set does not list


@dataclass(frozen=True)
class ClassPrediction:
    """Single-label result. `logits` are the raw scores (before softmax), kept for top-k evaluation."""

    task: ClassVar[str] = "single"
    ranked_key: ClassVar[str] = "top_k"  # what `ranked` is called in JSON output

    label: str
    index: int
    confidence: float
    synset: str | None = None  # WordNet id of the label, where the label set has one
    top_k: Ranked = ()
    logits: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def ranked(self) -> Ranked:
        return self.top_k

    def limited(self, k: int) -> ClassPrediction:
        """This prediction with at most `k` ranked classes."""
        return dataclasses.replace(self, top_k=self.top_k[:k])


@dataclass(frozen=True)
class MultiLabelPrediction:
    """Multi-label result: every class whose score passes its threshold, best first."""

    task: ClassVar[str] = "multi"
    ranked_key: ClassVar[str] = "labels"

    labels: Ranked
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def ranked(self) -> Ranked:
        return self.labels

    def limited(self, k: int) -> MultiLabelPrediction:
        """Every class past its threshold is part of the answer: not cut."""
        return self


class Adapter(ABC):
    """Base class for model families. Subclasses set `prediction` (the kind `postprocess` returns, which states the
    task) and implement `postprocess`; those that derive state from the model's outputs (a background offset,
    thresholds) extend `bind`."""

    prediction: ClassVar[type] = ClassPrediction

    def __init__(self, config: PreprocessConfig, labels: LabelSetLike, options: AdapterOptions = AdapterOptions()):
        self.config, self.labels, self.options = config, labels, options
        self.input: TensorSpec | None = None
        self.outputs: list[TensorSpec] = []

    @property
    def task(self) -> str:
        """single | multi: the task of the prediction kind this family returns."""
        return self.prediction.task

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Adapter:
        """Attach the loaded model's tensors, trusting the model over the catalog: a contradiction is refused
        with both values named. Returns self, ready to pre- and post-process."""
        spec = inputs[0]
        try:
            h, w = input_hw(spec)
        except ValueError as exc:
            raise ModelMismatchError(f"model '{self.options.model}': {exc}") from None
        size = self.config.input_size
        if size is not None and (h, w) != (size, size):
            raise ModelMismatchError(f"model '{self.options.model}': the catalog says input_size {size}, the model "
                                     f"file takes {h}x{w} ({spec.layout} {spec.shape}). Fix "
                                     f"preprocess.input_size in the catalog entry.")
        self.input, self.outputs = spec, list(outputs)
        return self

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the bound model's image input."""
        if self.input is None:
            raise RuntimeError(f"adapter of '{self.options.model}' used before bind()")
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
            raise RuntimeError(f"adapter of '{self.options.model}' used before bind()")
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

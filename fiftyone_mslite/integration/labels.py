"""How each prediction kind becomes a FiftyOne label: a converter registry keyed by prediction type, as FiftyOne's
output processors turn raw outputs into labels. `MSLiteModel` (so `apply_model` and `annotate`) looks the
converter up by the kind its model family returns; a plugin with a new kind registers one with `register`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fiftyone.core.labels as fol
import numpy as np

from ..adapters.base import ClassPrediction, MultiLabelPrediction


@dataclass(frozen=True)
class LabelSettings:
    """What a model's settings decide about its labels."""

    confidence_thresh: float | None = None
    top_k: int = 5
    store_top_k: bool = False
    store_logits: bool = False


@dataclass(frozen=True)
class LabelConverter:
    label_type: type[fol.Label]  # the field type a dataset gets
    convert: Callable[[Any, LabelSettings], fol.Label | None]


_CONVERTERS: dict[type, LabelConverter] = {}


def register(prediction: type, label_type: type[fol.Label]) -> Callable:
    """Decorator: `convert(prediction, settings) -> label` makes `label_type` labels from `prediction`s."""
    def add(convert: Callable[[Any, LabelSettings], fol.Label | None]) -> Callable:
        _CONVERTERS[prediction] = LabelConverter(label_type, convert)
        return convert
    return add


def converter(prediction: type) -> LabelConverter:
    """The converter of a prediction kind (or of its nearest registered base class)."""
    for cls in prediction.__mro__:
        if cls in _CONVERTERS:
            return _CONVERTERS[cls]
    raise TypeError(f"no FiftyOne label converter for {prediction.__name__}: register one with "
                    "fiftyone_mslite.integration.labels.register")


@register(ClassPrediction, fol.Classification)
def classification(p: ClassPrediction, settings: LabelSettings) -> fol.Classification | None:
    if settings.confidence_thresh is not None and p.confidence < settings.confidence_thresh:
        return None
    attrs: dict[str, Any] = {}
    if p.synset:
        attrs["synset"] = p.synset
    if settings.store_top_k:
        top = p.top_k[: settings.top_k]
        attrs["top_k_labels"] = [lbl for lbl, _ in top]
        attrs["top_k_confidences"] = [c for _, c in top]
    if settings.store_logits and p.logits is not None:
        attrs["logits"] = p.logits.astype(np.float64)  # FiftyOne's top-k eval saves confs derived from these
    return fol.Classification(label=p.label, confidence=p.confidence, **attrs)


@register(MultiLabelPrediction, fol.Classifications)
def classifications(p: MultiLabelPrediction, settings: LabelSettings) -> fol.Classifications:
    thresh = settings.confidence_thresh
    kept = [(lbl, c) for lbl, c in p.labels if thresh is None or c >= thresh][: settings.top_k]
    attrs: dict[str, Any] = {}
    if settings.store_logits and p.scores is not None:
        s = np.clip(p.scores.astype(np.float64), 1e-7, 1 - 1e-7)
        attrs["logits"] = np.log(s / (1 - s)).astype(np.float64)  # the scores are sigmoid outputs
    return fol.Classifications(classifications=[fol.Classification(label=lbl, confidence=c) for lbl, c in kept],
                               **attrs)

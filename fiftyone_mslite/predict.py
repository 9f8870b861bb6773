"""Classify image files directly (no FiftyOne): the engine behind `fiftyone-mslite predict`.

Kept free of FiftyOne imports so that a one-off prediction starts in about a second.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .adapters.base import ClassPrediction, MultiLabelPrediction
from .adapters.calibrated import Calibrated
from .adapters.images import load_image
from .classifier import Classifier


@dataclass(frozen=True)
class ImagePrediction:
    image: str
    prediction: ClassPrediction | MultiLabelPrediction | None = None
    error: str | None = None

    @property
    def ranked(self) -> tuple[tuple[str, float], ...]:
        return self.prediction.ranked if self.prediction else ()

    def to_dict(self) -> dict:
        if self.error:
            return {"image": self.image, "error": self.error}
        ranked = [{"label": lbl, "confidence": round(c, 6)} for lbl, c in self.ranked]
        return {"image": self.image, self.prediction.ranked_key: ranked}


def classify_files(classifier: Classifier, images: Sequence[str | Path], top_k: int = 5,
                   batch_size: int = 8, calibrated: bool = False) -> Iterator[ImagePrediction]:
    """One ImagePrediction per image, in order; an unreadable image yields an error, not an exception.
    `calibrated` applies the model's stored confidence calibration (docs/calibration.md)."""
    calibration = (Calibrated(classifier.entry.name, classifier.task, classifier.entry.facts,
                              classifier.class_names, classifier.labels.synsets) if calibrated else None)
    for lo in range(0, len(images), batch_size):
        chunk = [str(p) for p in images[lo:lo + batch_size]]
        tensors, ok, results = [], [], {}
        for path in chunk:
            try:
                tensors.append(classifier.prepare(load_image(path)))
                ok.append(path)
            except ValueError as exc:
                results[path] = ImagePrediction(path, error=str(exc))
        if tensors:
            preds = classifier.infer(np.stack(tensors))
            for path, pred in zip(ok, calibration.apply(preds) if calibration else preds):
                results[path] = ImagePrediction(path, pred.limited(top_k))
        yield from (results[p] for p in chunk)

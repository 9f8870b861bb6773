"""Predictions with a model's fitted confidence calibration applied (`calibrated=True` / `--calibrated`).

Single-label: the stored temperature (or vector) scaling turns the raw logits into calibrated probabilities;
logits stay raw. Multi-label: the tuned per-class thresholds replace the label set's. Both come from the model's
catalog facts, written by `models calibrate-confidence` and `models thresholds` (see docs/calibration.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..confidence import Scaling
from ..errors import CalibrationError
from .base import ClassPrediction, MultiLabelPrediction
from .multilabel import ranked_hits
from .softmax import top_k_indices

SCALING_FACT = "confidence_calibration"  # catalog fact fields (catalog/user.py save_fact)
THRESHOLDS_FACT = "class_thresholds"


class Calibrated:
    """Re-scores one model's predictions with its stored calibration. `names` are the classes in output order
    (a background output included); `synsets` are the label set's (without background)."""

    def __init__(self, model: str, task: str, facts: tuple, names: tuple[str, ...],
                 synsets: tuple[str, ...] | None = None):
        self.names, self.synsets, self.offset = names, synsets, len(names) - len(synsets or names)
        wanted = SCALING_FACT if task == "single" else THRESHOLDS_FACT
        found = [f.value for f in facts if f.field == wanted]
        if not found:
            how = (f"models calibrate-confidence {model} --dataset D --pred FIELD" if task == "single"
                   else f"models thresholds {model} --dataset D --pred FIELD (or --import FILE)")
            raise CalibrationError(f"model '{model}' has no stored {wanted.replace('_', ' ')}: run "
                                   f"`fiftyone-mslite {how}` first, or drop calibrated")
        self.fact: dict[str, Any] = found[-1]
        self.scaling = Scaling.from_dict(self.fact["scaling"]) if task == "single" else None
        if task == "multi":
            tuned = self.fact["thresholds"]
            unknown = sorted(set(tuned) - set(names))
            if unknown:
                raise CalibrationError(f"model '{model}': stored thresholds name classes it does not have "
                                       f"({', '.join(unknown[:5])}); re-tune them")
            self.thresholds = np.asarray([tuned.get(n, 0.5) for n in names], np.float32)

    def identity(self) -> dict[str, Any]:
        """What decides the calibrated confidences (part of a run's settings, so its digest records it)."""
        if self.scaling is not None:
            return {"scaling": self.scaling.to_dict()}
        return {"thresholds": [round(float(t), 6) for t in self.thresholds]}

    def apply(self, predictions: list) -> list:
        return [self._single(p) if isinstance(p, ClassPrediction) else self._multi(p) for p in predictions]

    def _single(self, p: ClassPrediction) -> ClassPrediction:
        if p.logits is None:
            raise CalibrationError("calibrated confidences need the model's logits, and this prediction has none")
        probs = self.scaling.probabilities(p.logits[None])[0]
        best = top_k_indices(probs[None], max(len(p.top_k), 1))[0]
        index = int(best[0])
        synset = (self.synsets[index - self.offset] or None) if self.synsets and index >= self.offset else None
        return ClassPrediction(self.names[index], index, float(probs[index]), synset,
                               tuple((self.names[int(i)], float(probs[i])) for i in best), p.logits)

    def _multi(self, p: MultiLabelPrediction) -> MultiLabelPrediction:
        if p.scores is None:
            raise CalibrationError("tuned thresholds need the model's scores, and this prediction has none")
        return ranked_hits(self.names, p.scores, self.thresholds)

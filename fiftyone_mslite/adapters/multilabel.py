"""Multi-label heads: per-class sigmoid scores against per-class thresholds."""
from __future__ import annotations

import numpy as np

from ..errors import ModelMismatchError
from ..runtime.tensors import TensorSpec
from .base import Adapter, MultiLabelPrediction, scores_to_float


def rescale(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Map each class's threshold to 0.5 (piecewise linear), as MindSpore's demo does, so that confidences are
    comparable across classes and 0.5 means "at its threshold"."""
    below = scores / thresholds * 0.5
    above = (scores - thresholds) / np.maximum(1.0 - thresholds, 1e-6) * 0.5 + 0.5
    return np.where(scores < thresholds, below, above)


def ranked_hits(names: tuple[str, ...], row: np.ndarray, thresholds: np.ndarray,
                recalibrate: bool = True) -> MultiLabelPrediction:
    """One sample's scores → the classes at or above their thresholds, most confident first."""
    conf = rescale(row, thresholds) if recalibrate else row
    hits = np.flatnonzero(row >= thresholds)
    hits = hits[np.argsort(-conf[hits], kind="stable")]
    return MultiLabelPrediction(tuple((names[i], float(conf[i])) for i in hits), row)


class MultiLabelAdapter(Adapter):
    """Multi-label: sigmoid scores (applied when outputs are not already in 0..1), per-class thresholds
    from the label set (else 0.5), optionally recalibrated as MindSpore's demo does so that every class's
    threshold maps to 0.5 and confidences are comparable across classes."""

    prediction = MultiLabelPrediction
    recalibrate = True

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> MultiLabelAdapter:
        super().bind(inputs, outputs)
        n_out = outputs[0].per_sample
        if n_out != len(self.labels):
            raise ModelMismatchError(f"model '{self.options.model}' outputs {n_out} scores but its label set "
                                     f"'{self.labels.name}' has {len(self.labels)} labels.")
        self.thresholds = np.asarray(self.labels.thresholds or [0.5] * n_out, np.float32)
        return self

    def postprocess(self, outputs: list[np.ndarray]) -> list[MultiLabelPrediction]:
        scores = scores_to_float(outputs[0].reshape(outputs[0].shape[0], -1))
        if scores.min() < 0 or scores.max() > 1:
            scores = 1.0 / (1.0 + np.exp(-scores))
        return [ranked_hits(self.labels.names, row, self.thresholds, self.recalibrate) for row in scores]

"""The built-in adapters, registered through the same hook as third-party ones."""
from __future__ import annotations

import numpy as np

from .base import Adapter, ClassPrediction, ModelMismatchError, MultiLabelPrediction, scores_to_float
from .hookspecs import hookimpl


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def is_distribution(x: np.ndarray) -> bool:
    return bool(x.min() >= 0 and np.allclose(x.sum(axis=-1), 1.0, atol=0.06))  # quantized softmax sums drift


class Classifier(Adapter):
    """Single-label classification: softmax (unless the model already outputs probabilities) → top-1 with
    confidence, top-k and logits. A model with one output more than its labels gets a background class
    at index 0 (TF-slim's 1001-way ImageNet heads)."""

    task = "single"
    top_k = 5

    def verify(self) -> None:
        super().verify()
        n_out, n_labels = self.outputs[0].shape[-1], len(self.labels)
        self.offset = 0
        if n_out == n_labels + 1 and not self.labels.background:
            self.offset = 1
        elif n_out != n_labels:
            raise ModelMismatchError(f"model '{self.entry.name}' outputs {n_out} scores but its label set "
                                     f"'{self.labels.name}' has {n_labels} labels. Use a label set with {n_out} "
                                     f"labels (or {n_out - 1} plus background).")

    def names(self, index: int) -> str:
        return "background" if index < self.offset else self.labels.names[index - self.offset]

    def postprocess(self, outputs: list[np.ndarray]) -> list[ClassPrediction]:
        raw = outputs[0].reshape(outputs[0].shape[0], -1)
        scores = scores_to_float(raw)
        if is_distribution(scores):
            probs = scores / scores.sum(axis=-1, keepdims=True)
            logits = np.log(np.clip(probs, 1e-12, None))
        else:
            probs, logits = softmax(scores.astype(np.float64)), scores
        results = []
        for row, row_logits in zip(probs, logits):
            best = np.argsort(-row, kind="stable")[: self.top_k]
            top = tuple((self.names(int(i)), float(row[i])) for i in best)
            results.append(ClassPrediction(top[0][0], int(best[0]), top[0][1], top, np.asarray(row_logits, np.float32)))
        return results


class MultiLabel(Adapter):
    """Multi-label: sigmoid scores (applied when outputs are not already in 0..1), per-class thresholds
    from the label set (else 0.5), optionally recalibrated as MindSpore's demo does so that every class's
    threshold maps to 0.5 and confidences are comparable across classes."""

    task = "multi"
    recalibrate = True

    def verify(self) -> None:
        super().verify()
        n_out = self.outputs[0].shape[-1]
        if n_out != len(self.labels):
            raise ModelMismatchError(f"model '{self.entry.name}' outputs {n_out} scores but its label set "
                                     f"'{self.labels.name}' has {len(self.labels)} labels.")
        self.thresholds = np.asarray(self.labels.thresholds or [0.5] * n_out, np.float32)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        t = self.thresholds
        below = scores / t * 0.5
        above = (scores - t) / np.maximum(1.0 - t, 1e-6) * 0.5 + 0.5
        return np.where(scores < t, below, above)

    def postprocess(self, outputs: list[np.ndarray]) -> list[MultiLabelPrediction]:
        scores = scores_to_float(outputs[0].reshape(outputs[0].shape[0], -1))
        if scores.min() < 0 or scores.max() > 1:
            scores = 1.0 / (1.0 + np.exp(-scores))
        results = []
        for row in scores:
            conf = self.calibrated(row) if self.recalibrate else row
            hits = np.flatnonzero(row >= self.thresholds)
            hits = hits[np.argsort(-conf[hits], kind="stable")]
            results.append(MultiLabelPrediction(tuple((self.labels.names[i], float(conf[i])) for i in hits), row))
        return results


@hookimpl
def register_adapters(register) -> None:
    register("classifier", Classifier)
    register("multilabel", MultiLabel)

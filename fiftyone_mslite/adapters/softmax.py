"""Single-label classification heads: softmax scores (or probabilities already), top-1, top-k and logits."""
from __future__ import annotations

import numpy as np

from ..errors import ModelMismatchError
from ..runtime.tensors import TensorSpec
from .base import Adapter, ClassPrediction, scores_to_float


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k_indices(scores: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row of `scores`, the indices of its `k` highest, best first, ties in index order: exactly
    `np.argsort(-row, kind="stable")[:k]`, without sorting all classes (a partition finds the k-th score,
    then only the scores at or above it are sorted; ~7x faster on 1000 classes, which matters on a Ray driver
    that post-processes a whole cluster's outputs)."""
    k = min(k, scores.shape[-1])
    kth = -np.partition(-scores, k - 1, axis=-1)[:, k - 1]
    out = []
    for row, threshold in zip(scores, kth):
        candidates = np.flatnonzero(row >= threshold)
        if len(candidates) < k:  # NaN scores compare false: rank the whole row, as argsort does
            candidates = np.arange(len(row))
        out.append(candidates[np.argsort(-row[candidates], kind="stable")][:k])
    return out


def is_distribution(x: np.ndarray) -> bool:
    return bool(x.min() >= 0 and np.allclose(x.sum(axis=-1), 1.0, atol=0.06))  # quantized softmax sums drift


class SoftmaxAdapter(Adapter):
    """Single-label classification: softmax (unless the model already outputs probabilities) → top-1 with
    confidence, top-k and logits. A model with one output more than its labels gets a background class
    at index 0 (TF-slim's 1001-way ImageNet heads) when its entry (`background`) or its label set
    (`background_head`, e.g. ImageNet-1000) says so; any other count mismatch is refused."""

    prediction = ClassPrediction
    top_k = 5
    offset = 0  # outputs before the first label (a background class)

    def bind(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> SoftmaxAdapter:
        """A leading background output is assumed only where the entry or label set says so: a label file one
        line short would otherwise shift every label by one, silently."""
        super().bind(inputs, outputs)
        n_out, n_labels = outputs[0].per_sample, len(self.labels)
        own = self.options.background and not self.labels.background  # the entry insists on a background output
        if (own or self.labels.background_head) and not self.labels.background and n_out == n_labels + 1:
            self.offset = 1
        elif n_out != n_labels or own:
            hint = (", or set `background: true` on the model entry if its output 0 is a background class "
                    "(models add --background)" if n_out == n_labels + 1 and not own else "")
            raise ModelMismatchError(f"model '{self.options.model}' outputs {n_out} scores but its label set "
                                     f"'{self.labels.name}' has {n_labels} labels{' plus background' * own}. "
                                     f"Use a label set with {n_out - own} labels{hint}.")
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.names(i) for i in range(self.offset + len(self.labels)))

    def names(self, index: int) -> str:
        return "background" if index < self.offset else self.labels.names[index - self.offset]

    def synset(self, index: int) -> str | None:
        synsets = self.labels.synsets
        return synsets[index - self.offset] or None if synsets is not None and index >= self.offset else None

    def postprocess(self, outputs: list[np.ndarray]) -> list[ClassPrediction]:
        raw = outputs[0].reshape(outputs[0].shape[0], -1)
        scores = scores_to_float(raw)
        if is_distribution(scores):
            probs = scores / scores.sum(axis=-1, keepdims=True)
            logits = np.log(np.clip(probs, 1e-12, None))
        else:
            probs, logits = softmax(scores.astype(np.float64)), scores
        results = []
        for row, row_logits, best in zip(probs, logits, top_k_indices(probs, self.top_k)):
            top = tuple((self.names(int(i)), float(row[i])) for i in best)
            index = int(best[0])
            results.append(ClassPrediction(top[0][0], index, top[0][1], self.synset(index), top,
                                           np.asarray(row_logits, np.float32)))
        return results

"""Compare two prediction fields on one dataset: where do a float model and its quantized copy part ways?

One top-1 number hides which images changed. This reports the agreement rate, per-class accuracy of both with
Wilson score intervals, each class's accuracy change with a paired bootstrap interval (percentile, 95 %,
2000 resamples of the samples of that class: the two models saw the same images, so their errors are paired),
the samples whose prediction flipped (right→wrong first, then wrong→right, then other disagreements) and a
histogram of the confidence shift. It saves the flips as views and registers both evaluations, so that
FiftyOne's Model Evaluation panel shows the two models side by side (its compare mode).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from fiftyone import Classification
from scipy import stats

from ..errors import DatasetError
from . import compat
from .evaluation import evaluate
from .views import Samples, label_field_type

VIEW_TO_WRONG = "compare-flipped-to-wrong"
VIEW_TO_RIGHT = "compare-flipped-to-right"
VIEW_DISAGREE = "compare-disagree"
TO_WRONG, TO_RIGHT, OTHER = "right_to_wrong", "wrong_to_right", "disagree"
HISTOGRAM_EDGES = np.linspace(-1.0, 1.0, 21)  # confidence shift B - A, in steps of 0.1
CONFIDENCE = 0.95
RESAMPLES = 2000


def wilson(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (good at 0 % and 100 %, unlike the normal approximation)."""
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def paired_delta_ci(a_correct: np.ndarray, b_correct: np.ndarray, confidence: float = CONFIDENCE,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(B) - accuracy(A) over paired samples. No sample changed
    correctness → the interval is the point (resampling cannot create a change)."""
    diff = b_correct.astype(np.float64) - a_correct.astype(np.float64)
    if np.all(diff == diff[0]):
        return float(diff[0]), float(diff[0])
    res = stats.bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def confidence_histogram(shift: np.ndarray) -> dict[str, list]:
    """Counts of the confidence shift (B's top-1 confidence minus A's) in bins of 0.1 from -1 to 1."""
    counts, edges = np.histogram(np.clip(shift, -1.0, 1.0), bins=HISTOGRAM_EDGES)
    return {"edges": [round(float(e), 2) for e in edges], "counts": [int(c) for c in counts]}


@dataclass(frozen=True)
class Flip:
    """One sample the two predictions disagree on."""

    id: str
    filepath: str
    kind: str  # right_to_wrong | wrong_to_right | disagree (both wrong, or no ground truth)
    gt: str | None
    a: str
    b: str
    a_confidence: float
    b_confidence: float


def order_flips(flips: list[Flip]) -> list[Flip]:
    """Right→wrong first, then wrong→right, then the rest; within each, the largest confidence shift first."""
    rank = {TO_WRONG: 0, TO_RIGHT: 1, OTHER: 2}
    return sorted(flips, key=lambda f: (rank[f.kind], -abs(f.b_confidence - f.a_confidence), f.filepath))


@dataclass(frozen=True)
class ClassDelta:
    label: str
    samples: int
    a_accuracy: float
    b_accuracy: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    delta: float
    delta_ci: tuple[float, float]


def class_deltas(gt: np.ndarray, a_correct: np.ndarray, b_correct: np.ndarray, seed: int = 0) -> list[ClassDelta]:
    """Per ground-truth class: both accuracies with Wilson intervals and the paired-bootstrap interval of the
    change; the largest drop first."""
    rows = []
    for label in sorted(set(gt.tolist())):
        mask = gt == label
        n, ka, kb = int(mask.sum()), int(a_correct[mask].sum()), int(b_correct[mask].sum())
        rows.append(ClassDelta(label, n, ka / n, kb / n, wilson(ka, n), wilson(kb, n), (kb - ka) / n,
                               paired_delta_ci(a_correct[mask], b_correct[mask], seed=seed)))
    return sorted(rows, key=lambda r: (r.delta, r.label))


@dataclass(frozen=True)
class Comparison:
    dataset: str
    pred_a: str
    pred_b: str
    gt_field: str | None
    samples: int  # samples where both fields (and the ground truth) are set
    agreement: float
    flips: list[Flip]
    histogram: dict[str, list]
    a_accuracy: float | None = None
    b_accuracy: float | None = None
    delta_ci: tuple[float, float] | None = None
    classes: list[ClassDelta] = field(default_factory=list)
    eval_keys: tuple[str, ...] = ()
    views: tuple[str, ...] = ()

    def count(self, kind: str) -> int:
        return sum(f.kind == kind for f in self.flips)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flip_counts"] = {k: self.count(k) for k in (TO_WRONG, TO_RIGHT, OTHER)}
        data["interval_methods"] = {"accuracy": "Wilson score, 95 %",
                                    "delta": f"paired bootstrap, percentile, 95 %, {RESAMPLES} resamples"}
        return data

    def report(self, top: int = 10) -> str:
        lines = [f"{self.pred_a} vs {self.pred_b} on '{self.dataset}': {self.samples} samples, agreement "
                 f"{self.agreement:.1%}, {len(self.flips)} disagree"]
        if self.gt_field:
            low, high = self.delta_ci or (0.0, 0.0)
            lines.append(f"accuracy {self.a_accuracy:.1%} → {self.b_accuracy:.1%} "
                         f"({(self.b_accuracy - self.a_accuracy) * 100:+.1f} points, 95 % CI {low * 100:+.1f} .. "
                         f"{high * 100:+.1f}); {self.count(TO_WRONG)} right→wrong, {self.count(TO_RIGHT)} "
                         f"wrong→right, {self.count(OTHER)} wrong→other wrong")
            lines.append("classes, largest drop first (Wilson 95 % CIs; delta: paired bootstrap 95 % CI):")
            for c in self.classes[:top]:
                lines.append(f"  {c.label:20s} n={c.samples:4d}  {c.a_accuracy:6.1%} → {c.b_accuracy:6.1%}  "
                             f"{c.delta * 100:+5.1f} [{c.delta_ci[0] * 100:+.1f}, {c.delta_ci[1] * 100:+.1f}]")
        lines.append("flips:" if self.flips else "no flips")
        for f in self.flips[:top]:
            truth = f" (truth {f.gt!r})" if f.gt is not None else ""
            lines.append(f"  {f.kind:15s} {f.a!r} {f.a_confidence:.2f} → {f.b!r} {f.b_confidence:.2f}{truth}  "
                         f"{f.filepath}")
        if self.views:
            lines.append("views: " + ", ".join(f"'{v}'" for v in self.views))
        if self.eval_keys:
            lines.append("evaluations (Model Evaluation panel): " + ", ".join(self.eval_keys))
        return "\n".join(lines)


def eval_key_for(field_name: str) -> str:
    """An evaluation key for a prediction field (FiftyOne keys are identifiers)."""
    return "eval_" + re.sub(r"\W", "_", field_name)


def compare(samples: Samples, pred_a: str, pred_b: str, gt_field: str | None = "ground_truth",
            save_views: bool = True, register_evaluations: bool = True, seed: int = 0) -> Comparison:
    """Compare single-label predictions `pred_a` (e.g. the float model) and `pred_b` (e.g. its quantized copy)
    on `samples`; with `gt_field`, accuracy, per-class changes and the direction of each flip. See the module
    docstring for what is saved."""
    if pred_a == pred_b:
        raise DatasetError(f"compare two different prediction fields, got '{pred_a}' twice")
    fields = [pred_a, pred_b] + ([gt_field] if gt_field else [])
    for name in fields:
        if label_field_type(samples, name) is not Classification:
            raise DatasetError(f"field '{name}' must hold single Classification labels to be compared")
    both = samples.exists(pred_a).exists(pred_b)
    if gt_field:
        both = both.exists(gt_field)
    dataset = compat.root_dataset(samples)
    if not len(both):
        raise DatasetError(f"no sample of dataset '{dataset.name}' has both '{pred_a}' and '{pred_b}'"
                           + (f" and '{gt_field}'" if gt_field else ""))
    paths = [f"{pred_a}.label", f"{pred_a}.confidence", f"{pred_b}.label", f"{pred_b}.confidence"]
    ids, filepaths, a, a_conf, b, b_conf, *rest = both.values(["id", "filepath", *paths]
                                                              + ([f"{gt_field}.label"] if gt_field else []))
    a, b = np.array(a, dtype=object), np.array(b, dtype=object)
    a_conf = np.array([c if c is not None else np.nan for c in a_conf], dtype=np.float64)
    b_conf = np.array([c if c is not None else np.nan for c in b_conf], dtype=np.float64)
    gt = np.array(rest[0], dtype=object) if gt_field else None
    a_right = (a == gt) if gt is not None else None
    b_right = (b == gt) if gt is not None else None
    flips = []
    for i in np.flatnonzero(a != b):
        kind = OTHER if gt is None else TO_WRONG if a_right[i] else TO_RIGHT if b_right[i] else OTHER
        flips.append(Flip(ids[i], filepaths[i], kind, None if gt is None else gt[i], a[i], b[i],
                          float(a_conf[i]), float(b_conf[i])))
    flips = order_flips(flips)
    shift = (b_conf - a_conf)[~np.isnan(b_conf - a_conf)]
    extra: dict[str, Any] = {}
    if gt is not None:
        extra = {"a_accuracy": float(a_right.mean()), "b_accuracy": float(b_right.mean()),
                 "delta_ci": paired_delta_ci(a_right, b_right, seed=seed),
                 "classes": class_deltas(gt, a_right, b_right, seed=seed)}
    views: tuple[str, ...] = ()
    if save_views:
        views = _save_flip_views(dataset, flips, with_gt=gt is not None)
    keys: tuple[str, ...] = ()
    if register_evaluations and gt_field:
        keys = (eval_key_for(pred_a), eval_key_for(pred_b))
        for pred, key in zip((pred_a, pred_b), keys):
            evaluate(samples, pred, gt_field, eval_key=key)
    return Comparison(dataset.name, pred_a, pred_b, gt_field, len(ids), float((a == b).mean()), flips,
                      confidence_histogram(shift), eval_keys=keys, views=views, **extra)


def _save_flip_views(dataset, flips: list[Flip], with_gt: bool) -> tuple[str, ...]:
    """The flips as saved views, in the report's order (the App lists saved views by name)."""
    wanted = {VIEW_DISAGREE: [f.id for f in flips]}
    if with_gt:
        wanted[VIEW_TO_WRONG] = [f.id for f in flips if f.kind == TO_WRONG]
        wanted[VIEW_TO_RIGHT] = [f.id for f in flips if f.kind == TO_RIGHT]
    for name, ids in wanted.items():
        dataset.save_view(name, dataset.select(ids, ordered=True), overwrite=True)
    return tuple(sorted(wanted))

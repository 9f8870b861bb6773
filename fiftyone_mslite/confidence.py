"""Confidence you can trust, as plain numpy: calibration metrics, temperature/vector scaling, thresholds and
conformal prediction sets.

Model- and dataset-free on purpose (arrays in, numbers out), so that `predict` applies a fitted calibration
without FiftyOne, and the FiftyOne layer (integration/confidence.py) only gathers arrays and stores results.
Methods: calibration error as in Guo et al. 2017 ("On Calibration of Modern Neural Networks"), equal-width or
equal-mass bins (Nixon et al. 2019); temperature and vector scaling by minimising the negative log-likelihood
(scipy); prediction sets by split conformal prediction with the (regularised) adaptive prediction set score,
RAPS (Angelopoulos et al. 2021, "Uncertainty Sets for Image Classifiers using Conformal Prediction").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import CalibrationError

Binning = Literal["width", "mass"]
MIN_FIT_SAMPLES = 50  # per side of a fit/held-out split: below it a fitted parameter and its ECE are noise
_EPS = 1e-12


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- metrics ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: confidences in [lower, upper) (the last bin includes its upper)."""

    lower: float
    upper: float
    count: int
    accuracy: float | None  # None for an empty bin
    confidence: float | None  # mean confidence in the bin


def bin_edges(confidences: np.ndarray, bins: int = 15, binning: Binning = "width") -> np.ndarray:
    """`bins + 1` edges over [0, 1]: equal width, or equal mass (quantiles of the confidences, so that every bin
    holds about as many samples; repeated quantiles collapse, giving fewer bins)."""
    if bins < 1:
        raise CalibrationError(f"bins must be at least 1, got {bins}")
    if binning == "width":
        return np.linspace(0.0, 1.0, bins + 1)
    if binning != "mass":
        raise CalibrationError(f"binning must be 'width' or 'mass', got {binning!r}")
    inner = np.quantile(np.asarray(confidences, np.float64), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(np.concatenate([[0.0], inner, [1.0]]))


def bin_index(confidences: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each confidence: [edge_i, edge_i+1), the last bin closed."""
    return np.clip(np.searchsorted(edges, confidences, side="right") - 1, 0, len(edges) - 2)


def reliability(confidences: np.ndarray, correct: np.ndarray, bins: int = 15,
                binning: Binning = "width") -> list[ReliabilityBin]:
    """Accuracy against mean confidence per bin (the reliability diagram's data)."""
    conf, ok = np.asarray(confidences, np.float64), np.asarray(correct, bool)
    edges = bin_edges(conf, bins, binning)
    idx = bin_index(conf, edges)
    out = []
    for b in range(len(edges) - 1):
        sel = idx == b
        n = int(sel.sum())
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n, float(ok[sel].mean()) if n else None,
                                  float(conf[sel].mean()) if n else None))
    return out


def calibration_errors(confidences: np.ndarray, correct: np.ndarray, bins: int = 15,
                       binning: Binning = "width") -> tuple[float, float]:
    """(ECE, MCE): the count-weighted mean and the maximum over non-empty bins of |accuracy - confidence|."""
    table = reliability(confidences, correct, bins, binning)
    gaps = [(b.count, abs(b.accuracy - b.confidence)) for b in table if b.count]
    total = sum(n for n, _ in gaps)
    if not total:
        raise CalibrationError("no predictions to measure calibration on")
    return sum(n * g for n, g in gaps) / total, max(g for _, g in gaps)


def brier_score(probs: np.ndarray, targets: np.ndarray) -> float:
    """Multi-class Brier score: mean over samples of sum_k (p_k - [y = k])^2 (0 is perfect, 2 the worst)."""
    p = np.asarray(probs, np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), np.asarray(targets)] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (natural log)."""
    p = np.asarray(probs, np.float64)[np.arange(len(targets)), np.asarray(targets)]
    return float(-np.log(np.clip(p, _EPS, None)).mean())


@dataclass
class CalibrationReport:
    """How well confidences match accuracy on a set of labeled predictions. `per_class_ece` is the top-label ECE
    of the samples predicted as each class ("when it says 'cat' at 0.9, is it right 9 times in 10?")."""

    num_samples: int
    bins: int
    binning: str
    ece: float
    mce: float
    ece_equal_mass: float
    ece_equal_width: float
    brier: float | None
    nll: float | None
    per_class_ece: dict[str, float]
    reliability: list[ReliabilityBin]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(confidences: np.ndarray, predicted: Sequence[str], truth: Sequence[str], bins: int = 15,
            binning: Binning = "width", probs: np.ndarray | None = None,
            targets: np.ndarray | None = None) -> CalibrationReport:
    """Calibration of top-1 predictions; Brier and NLL when the full distributions (`probs`, with the true
    class index per row in `targets`) are known, i.e. when logits were stored."""
    conf = np.asarray(confidences, np.float64)
    pred, gt = np.asarray(predicted, object), np.asarray(truth, object)
    correct = pred == gt
    ece, mce = calibration_errors(conf, correct, bins, binning)
    other = "mass" if binning == "width" else "width"
    per_class = {}
    for label in sorted(set(pred.tolist())):
        sel = pred == label
        per_class[str(label)] = calibration_errors(conf[sel], correct[sel], bins, binning)[0]
    with_probs = probs is not None and targets is not None
    return CalibrationReport(
        num_samples=len(conf), bins=bins, binning=binning, ece=ece, mce=mce,
        ece_equal_width=ece if binning == "width" else calibration_errors(conf, correct, bins, other)[0],
        ece_equal_mass=ece if binning == "mass" else calibration_errors(conf, correct, bins, other)[0],
        brier=brier_score(probs, targets) if with_probs else None, nll=nll(probs, targets) if with_probs else None,
        per_class_ece=per_class, reliability=reliability(conf, correct, bins, binning))


def diagram(report: CalibrationReport, path: str | Path, title: str = "") -> Path:
    """Save the reliability diagram (accuracy vs confidence per bin, sample counts below) as an image."""
    from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure state

    rows = [b for b in report.reliability if b.count]
    fig = Figure(figsize=(5, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lefts = [b.lower for b in rows]
    widths = [b.upper - b.lower for b in rows]
    top.bar(lefts, [b.accuracy for b in rows], widths, align="edge", edgecolor="black", label="accuracy")
    top.bar(lefts, [b.confidence - b.accuracy for b in rows], widths, bottom=[b.accuracy for b in rows],
            align="edge", color="tab:red", alpha=0.35, label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title=title or f"ECE {report.ece:.3f}, MCE {report.mce:.3f} ({report.binning} bins)")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(lefts, [b.count for b in rows], widths, align="edge", edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence", ylabel="samples")
    fig.tight_layout()
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out



# --- fitting ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scaling:
    """A fitted post-hoc calibration of logits: probabilities = softmax(logits * weights / temperature + bias).
    Temperature scaling has weights = 1, bias = 0; vector scaling fits a weight and a bias per class."""

    method: Literal["temperature", "vector"]
    temperature: float = 1.0
    weights: tuple[float, ...] | None = None
    bias: tuple[float, ...] | None = None

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, np.float64) / self.temperature
        if self.weights is not None:
            if z.shape[-1] != len(self.weights):
                raise CalibrationError(f"the calibration was fitted on {len(self.weights)} classes, these logits "
                                       f"have {z.shape[-1]}")
            z = z * np.asarray(self.weights) + np.asarray(self.bias)
        return softmax(z)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaling:
        return cls(method=d["method"], temperature=float(d.get("temperature", 1.0)),
                   weights=tuple(d["weights"]) if d.get("weights") is not None else None,
                   bias=tuple(d["bias"]) if d.get("bias") is not None else None)


def _nll_and_grad(z: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL of softmax(z) and its gradient with respect to z."""
    p = softmax(z)
    n = len(z)
    value = float(-np.log(np.clip(p[np.arange(n), targets], _EPS, None)).mean())
    p[np.arange(n), targets] -= 1.0
    return value, p / n


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> Scaling:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) (one parameter: accuracy unchanged)."""
    from scipy.optimize import minimize_scalar

    z, y = np.asarray(logits, np.float64), np.asarray(targets)
    result = minimize_scalar(lambda log_t: _nll_and_grad(z / np.exp(log_t), y)[0], bounds=(-4.0, 4.0),
                             method="bounded", options={"xatol": 1e-6})
    return Scaling("temperature", temperature=float(np.exp(result.x)))


def fit_vector_scaling(logits: np.ndarray, targets: np.ndarray, l2: float = 1e-3) -> Scaling:
    """Per-class weight and bias minimising the NLL of softmax(logits * w + b) (L-BFGS), starting from the fitted
    temperature; a small L2 pull towards it keeps classes seen rarely in the fit from running away."""
    from scipy.optimize import minimize

    z, y = np.asarray(logits, np.float64), np.asarray(targets)
    k = z.shape[1]
    w0 = np.full(k, 1.0 / fit_temperature(z, y).temperature)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:k], params[k:]
        value, grad = _nll_and_grad(z * w + b, y)
        reg_w, reg_b = w - w0, b
        return (value + l2 * float((reg_w ** 2).sum() + (reg_b ** 2).sum()),
                np.concatenate([(grad * z).sum(axis=0) + 2 * l2 * reg_w, grad.sum(axis=0) + 2 * l2 * reg_b]))

    result = minimize(objective, np.concatenate([w0, np.zeros(k)]), jac=True, method="L-BFGS-B")
    return Scaling("vector", weights=tuple(map(float, result.x[:k])), bias=tuple(map(float, result.x[k:])))


def split_indices(n: int, holdout: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (fit, held-out) split of `n` samples; refuses splits too small to mean anything."""
    if not 0 < holdout < 1:
        raise CalibrationError(f"holdout must be a fraction strictly between 0 and 1, got {holdout}")
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - holdout)))
    fit, held = np.sort(order[:cut]), np.sort(order[cut:])
    if min(len(fit), len(held)) < MIN_FIT_SAMPLES:
        raise CalibrationError(f"{n} labeled samples split {len(fit)}/{len(held)} (fit/held-out) is too few: each "
                               f"side needs at least {MIN_FIT_SAMPLES}; label more samples or change --holdout")
    return fit, held


# --- thresholds ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassThreshold:
    threshold: float
    precision: float
    recall: float
    f1: float
    support: int  # positives in the tuning data


def tune_threshold(scores: np.ndarray, positive: np.ndarray,
                   target_precision: float | None = None) -> ClassThreshold | None:
    """One class's threshold on its scores: the one maximising F1, or (with `target_precision`) the lowest one
    whose precision reaches the target (most recall at that precision). None when the class has no positives,
    or no threshold reaches the target."""
    s, pos = np.asarray(scores, np.float64), np.asarray(positive, bool)
    support = int(pos.sum())
    if not support:
        return None
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    tp, fp = np.cumsum(pos), np.cumsum(~pos)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold keeps every score equal to it
    tp, fp, cut = tp[last], fp[last], s[last]
    precision, recall = tp / (tp + fp), tp / support
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, _EPS), 0.0)
    if target_precision is None:
        i = int(np.argmax(f1))
    else:
        ok = np.flatnonzero(precision >= target_precision)
        if not len(ok):
            return None
        i = int(ok[-1])
    return ClassThreshold(float(cut[i]), float(precision[i]), float(recall[i]), float(f1[i]), support)


def global_threshold(confidences: np.ndarray, correct: np.ndarray, target_precision: float) -> dict[str, float]:
    """Single-label: the lowest confidence threshold at which the kept predictions are right at least
    `target_precision` of the time, with the coverage (share of predictions kept) it leaves."""
    result = tune_threshold(confidences, correct, target_precision)
    if result is None:
        return {"target_precision": target_precision, "threshold": None, "precision": None, "coverage": 0.0}
    coverage = float((np.asarray(confidences) >= result.threshold).mean())
    return {"target_precision": target_precision, "threshold": result.threshold, "precision": result.precision,
            "coverage": coverage}


# --- conformal prediction sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conformal:
    """A split-conformal RAPS predictor: a set holds the classes, best first, whose regularised cumulative
    probability stays within `qhat` (always at least the top class). `penalty` = 0 is APS. `randomized` (the
    paper's default) counts a uniform share of each class's own probability, seeded by `seed`, so that sets are
    not inflated by the mass of the last class; without it sets are larger and over-cover."""

    coverage: float
    qhat: float
    penalty: float = 0.01
    k_reg: int = 5
    randomized: bool = True
    seed: int = 0

    def scores(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(order, score) per row: classes best first and the conformity score of including each."""
        p = np.asarray(probs, np.float64)
        order = np.argsort(-p, axis=1, kind="stable")
        ranked = np.take_along_axis(p, order, axis=1)
        share = np.random.default_rng(self.seed).random((len(p), 1)) if self.randomized else 1.0
        ranks = np.arange(1, p.shape[1] + 1)
        return order, np.cumsum(ranked, axis=1) - (1 - share) * ranked + self.penalty * np.maximum(
            ranks - self.k_reg, 0)

    def sets(self, probs: np.ndarray) -> list[np.ndarray]:
        order, score = self.scores(probs)
        size = np.maximum((score <= self.qhat).sum(axis=1), 1)  # scores rise with rank: a prefix
        return [row[:k] for row, k in zip(order, size)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_conformal(probs: np.ndarray, targets: np.ndarray, coverage: float = 0.9, penalty: float = 0.01,
                  k_reg: int = 5, randomized: bool = True, seed: int = 0) -> Conformal:
    """The conformal quantile on calibration data: the ceil((n+1) coverage)-th smallest score of the true classes,
    so that a new exchangeable sample's set holds its truth with probability >= coverage."""
    if not 0 < coverage < 1:
        raise CalibrationError(f"coverage must be strictly between 0 and 1, got {coverage}")
    base = Conformal(coverage, 0.0, penalty, k_reg, randomized, seed)
    order, score = base.scores(probs)
    y = np.asarray(targets)
    true_rank = np.argmax(order == y[:, None], axis=1)
    true_score = score[np.arange(len(y)), true_rank]
    n = len(y)
    k = int(np.ceil((n + 1) * coverage - 1e-9))
    if k > n:
        raise CalibrationError(f"{n} calibration samples cannot give {coverage:.0%} coverage: it needs at least "
                               f"{int(np.ceil(coverage / (1 - coverage) - 1e-9))}")
    return Conformal(coverage, float(np.sort(true_score)[k - 1]), penalty, k_reg, randomized, seed)


def set_coverage(sets: Sequence[np.ndarray], targets: np.ndarray) -> tuple[float, float]:
    """(empirical coverage, mean set size) of prediction sets against the true classes."""
    hits = [int(t) in set(s.tolist()) for s, t in zip(sets, np.asarray(targets))]
    return float(np.mean(hits)), float(np.mean([len(s) for s in sets]))

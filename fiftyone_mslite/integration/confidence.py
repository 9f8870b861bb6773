"""Confidence you can trust, on a FiftyOne dataset: calibration metrics and reliability diagrams of stored
predictions, fitted temperature/vector scaling and tuned thresholds stored per model in the user catalog, and
conformal prediction sets written as a `Classifications` field.

Not to be confused with integration/calibration.py, which calibrates *pre-processing*. The maths lives in
`fiftyone_mslite.confidence` (numpy, no FiftyOne); this module gathers arrays from samples, checks them (each
bad input is one `CalibrationError` raised before anything is written) and stores results.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

from .. import confidence as cm
from ..adapters.calibrated import SCALING_FACT, THRESHOLDS_FACT
from ..catalog.registry import catalog
from ..catalog.schema import Fact
from ..catalog.user import save_fact
from ..errors import CalibrationError
from . import compat
from .views import Samples, calibration_of, label_field_type, run_settings

DEFAULT_BINS = 15
DEFAULT_TARGET_PRECISION = 0.9


@dataclass
class Labeled:
    """The labeled predictions of a field: per sample, id, top-1 label and confidence, true label, and (when
    every one has them) raw logits with the true class's index in `classes` (logit order)."""

    ids: list[str]
    predicted: list[str]
    confidences: np.ndarray
    truth: list[str]
    logits: np.ndarray | None = None
    classes: list[str] | None = None
    targets: np.ndarray | None = None

    def probs(self, scaling: cm.Scaling | None = None) -> np.ndarray:
        return scaling.probabilities(self.logits) if scaling else cm.softmax(self.logits)

    def take(self, index: np.ndarray) -> Labeled:
        pick = [int(i) for i in index]
        return Labeled([self.ids[i] for i in pick], [self.predicted[i] for i in pick], self.confidences[index],
                       [self.truth[i] for i in pick], None if self.logits is None else self.logits[index],
                       self.classes, None if self.targets is None else self.targets[index])


def _with_truth(samples: Samples, pred_field: str, gt_field: str) -> Samples:
    """The samples holding both a prediction and a ground-truth label, refusing a view that has none."""
    for name, role in ((pred_field, "prediction"), (gt_field, "ground truth")):
        try:
            label_field_type(samples, name)
        except ValueError as exc:
            raise CalibrationError(f"{role} field: {exc}") from None
    labeled = samples.exists(pred_field).exists(gt_field)
    if not len(labeled):
        raise CalibrationError(f"no sample of this view has both '{pred_field}' and ground truth '{gt_field}': "
                               "calibration needs labeled samples (pass --gt, or a view with ground truth)")
    return labeled


def _logits_or_fail(labeled: Samples, pred_field: str) -> list:
    missing = labeled.exists(f"{pred_field}.logits", False).count()
    if missing:
        raise CalibrationError(f"{missing} labeled sample(s) have no '{pred_field}.logits': re-run annotate "
                               "with `store_logits=True` (CLI: --store-logits)")
    return labeled.values(f"{pred_field}.logits")


def _class_targets(truth: list[str], classes: list[str], where: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    outside = sorted({t for t in truth if t not in index})
    if outside:
        raise CalibrationError(f"{len(outside)} ground-truth label(s) are not among {where}'s {len(classes)} classes "
                               f"(e.g. {', '.join(map(repr, outside[:3]))}); map them to the model's labels first")
    return np.asarray([index[t] for t in truth])


def model_classes(model: str, num_logits: int) -> list[str]:
    """A catalog model's classes in logit order, 'background' first when its head has one more output."""
    names = list(catalog().labels(catalog().model(model).labels).names)
    if num_logits == len(names) + 1:
        return ["background", *names]
    if num_logits != len(names):
        raise CalibrationError(f"the stored logits have {num_logits} entries but model '{model}' has {len(names)} "
                               "classes: this field was not predicted by that model")
    return names


def gather_single(samples: Samples, pred_field: str, gt_field: str, classes: list[str] | None = None,
                  need_logits: bool = False, model: str | None = None) -> Labeled:
    """The labeled single-label predictions of `samples`. Logits (and targets) are read when `need_logits`, or
    when every labeled sample has them and the classes are known (`classes`, or `model`'s)."""
    labeled = _with_truth(samples, pred_field, gt_field)
    for name, role in ((pred_field, "prediction"), (gt_field, "ground truth")):
        if label_field_type(samples, name) is not fo.Classification:
            raise CalibrationError(f"{role} field '{name}' holds Classifications: calibration of top-1 confidence "
                                   "is for single-label fields; tune multi-label thresholds instead")
    ids, pred, conf, truth = labeled.values(["id", f"{pred_field}.label", f"{pred_field}.confidence",
                                             f"{gt_field}.label"])
    if any(c is None for c in conf):
        raise CalibrationError(f"some '{pred_field}' labels have no confidence")
    data = Labeled(ids, pred, np.asarray(conf, np.float64), truth)
    has_logits = not labeled.exists(f"{pred_field}.logits", False).count()
    if need_logits or (has_logits and (classes or model)):
        logits = np.asarray(_logits_or_fail(labeled, pred_field), np.float64)
        names = list(classes) if classes else model_classes(model, logits.shape[1])
        if len(names) != logits.shape[1]:
            raise CalibrationError(f"'{pred_field}.logits' have {logits.shape[1]} entries but {len(names)} classes "
                                   "were given")
        data.logits, data.classes = logits, names
        data.targets = _class_targets(truth, names, f"model '{model}'" if model else "the given classes")
    return data


# --- measuring -------------------------------------------------------------------------------------------------


def measure(data: Labeled, bins: int = DEFAULT_BINS, binning: cm.Binning = "width",
            scaling: cm.Scaling | None = None) -> cm.CalibrationReport:
    """Calibration of `data`'s stored confidences, or (with `scaling`) of the confidences it would give."""
    if scaling is None:
        return cm.measure(data.confidences, data.predicted, data.truth, bins, binning,
                          data.probs() if data.logits is not None else None, data.targets)
    probs = data.probs(scaling)
    top = probs.argmax(axis=1)
    return cm.measure(probs.max(axis=1), [data.classes[i] for i in top], data.truth, bins, binning, probs,
                      data.targets)


def measure_field(samples: Samples, pred_field: str, gt_field: str = "ground_truth", bins: int = DEFAULT_BINS,
                  binning: cm.Binning = "width", classes: list[str] | None = None) -> cm.CalibrationReport:
    """ECE/MCE (and Brier/NLL when logits and classes are known) of a stored single-label field. The logits stay
    raw in a calibrated field (`calibrated=True`), so Brier and NLL apply the calibration its run recorded."""
    data = gather_single(samples, pred_field, gt_field, classes)
    if data.logits is None:
        return measure(data, bins, binning)
    recorded = (calibration_of(compat.root_dataset(samples), pred_field) or {}).get("scaling")
    probs = data.probs(cm.Scaling.from_dict(recorded) if recorded else None)
    return cm.measure(data.confidences, data.predicted, data.truth, bins, binning, probs, data.targets)


def bin_view(samples: Samples, pred_field: str, lower: float, upper: float, last: bool = False) -> fo.DatasetView:
    """The samples of one reliability-diagram bin: confidence in [lower, upper) ([lower, upper] for the last),
    least confident first, as FiftyOne's confusion matrix links a cell to its samples."""
    conf = F(f"{pred_field}.confidence")
    top = conf <= upper if last else conf < upper
    return samples.match((conf >= lower) & top).sort_by(f"{pred_field}.confidence")


def calibration_run_key(eval_key: str) -> str:
    return f"{eval_key}_calibration"


def record(samples: Samples, eval_key: str, pred_field: str, report: cm.CalibrationReport) -> None:
    """Keep the report as a custom run `<eval_key>_calibration`, which the App's reliability operator reads."""
    key = calibration_run_key(eval_key)
    config = samples.init_run(method="confidence_calibration", pred_field=pred_field)
    samples.register_run(key, config, overwrite=True)
    samples.save_run_results(key, samples.init_run_results(key, report=report.to_dict()))


# --- fitting a calibration per model ---------------------------------------------------------------------------


@dataclass
class ConfidenceFit:
    """What `calibrate_confidence` fitted and measured: ECE/NLL before and after on held-out samples only."""

    model: str
    method: str
    scaling: dict
    fit_samples: int
    held_out_samples: int
    before: dict
    after: dict
    suggested_threshold: dict
    fact: dict = field(default_factory=dict)
    written: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _check_maker(samples: Samples, pred_field: str, model: str):
    """`model`'s catalog entry, refusing a field whose annotate run recorded another model (its logits would be
    fitted to the wrong model)."""
    entry = catalog().model(model)
    made_by = (run_settings(compat.root_dataset(samples), pred_field) or {}).get("model")
    if made_by not in (None, model):
        raise CalibrationError(f"'{pred_field}' was predicted by model '{made_by}', not '{model}': calibrate "
                               f"'{made_by}', or a field that '{model}' predicted")
    return entry


def _provenance(samples: Samples, view: str | None, pred_field: str, gt_field: str, n: int) -> dict[str, Any]:
    return {"dataset": compat.root_dataset(samples).name, "view": view, "pred_field": pred_field,
            "gt_field": gt_field, "samples": n, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _summary(report: cm.CalibrationReport, accuracy: float) -> dict[str, float | None]:
    return {"ece": report.ece, "mce": report.mce, "nll": report.nll, "brier": report.brier, "accuracy": accuracy}


def _accuracy(data: Labeled, scaling: cm.Scaling | None) -> float:
    if scaling is None:
        return float(np.mean(np.asarray(data.predicted, object) == np.asarray(data.truth, object)))
    return float(np.mean(data.probs(scaling).argmax(axis=1) == data.targets))


def calibrate_confidence(samples: Samples, model: str, pred_field: str, gt_field: str = "ground_truth", *,
                         view: str | None = None, method: str = "temperature", holdout: float = 0.5, seed: int = 0,
                         bins: int = DEFAULT_BINS, target_precision: float = DEFAULT_TARGET_PRECISION,
                         write: bool = True) -> ConfidenceFit:
    """Fit temperature (or vector) scaling of catalog `model` on the stored logits of `pred_field`, on a seeded
    random part of the labeled samples, measure ECE/NLL before and after on the rest, and (with `write`) store
    it in the user catalog as a fact with its provenance. `view` names the saved view `samples` is (recorded)."""
    if method not in ("temperature", "vector"):
        raise CalibrationError(f"method must be 'temperature' or 'vector', got {method!r}")
    _check_maker(samples, pred_field, model)
    data = gather_single(samples, pred_field, gt_field, need_logits=True, model=model)
    fit_idx, held_idx = cm.split_indices(len(data.ids), holdout, seed)
    fit, held = data.take(fit_idx), data.take(held_idx)
    fitter = cm.fit_temperature if method == "temperature" else cm.fit_vector_scaling
    scaling = fitter(fit.logits, fit.targets)
    raw = cm.Scaling("temperature")  # the raw softmax, measured the same way as the fitted one
    before, after = measure(held, bins, scaling=raw), measure(held, bins, scaling=scaling)
    probs = held.probs(scaling)
    suggested = cm.global_threshold(probs.max(axis=1), probs.argmax(axis=1) == held.targets, target_precision)
    result = ConfidenceFit(model, method, scaling.to_dict(), len(fit.ids), len(held.ids),
                           _summary(before, _accuracy(held, raw)), _summary(after, _accuracy(held, scaling)),
                           suggested)
    result.fact = {"scaling": scaling.to_dict(), **_provenance(samples, view, pred_field, gt_field, len(data.ids)),
                   "fit_samples": len(fit.ids), "held_out_samples": len(held.ids), "seed": seed, "bins": bins,
                   "ece_before": before.ece, "ece_after": after.ece, "nll_before": before.nll,
                   "nll_after": after.nll}
    if write:
        result.written = str(save_fact(model, Fact(
            field=SCALING_FACT, value=result.fact, status="calibrated",
            source=f"models calibrate-confidence: {method} scaling fitted on dataset "
                   f"'{result.fact['dataset']}' field '{pred_field}'")))
    return result


# --- thresholds ------------------------------------------------------------------------------------------------


@dataclass
class ThresholdSet:
    """Per-class thresholds of a multi-label model (tuned or imported), or a single-label suggestion."""

    model: str
    method: str
    thresholds: dict[str, float]
    per_class: dict[str, dict] = field(default_factory=dict)
    untuned: list[str] = field(default_factory=list)  # no positives in the tuning data: the label set's kept
    suggested_threshold: dict | None = None  # single-label: global threshold for a target precision
    written: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _names(label) -> list[str]:
    if label is None:
        return []
    items = label.classifications if isinstance(label, fo.Classifications) else [label]
    return [c.label for c in items]


def _store_thresholds(result: ThresholdSet, provenance: dict, source: str) -> None:
    result.written = str(save_fact(result.model, Fact(
        field=THRESHOLDS_FACT, status="calibrated", source=source,
        value={"thresholds": result.thresholds, "method": result.method, **provenance})))


def tune_thresholds(samples: Samples, model: str, pred_field: str, gt_field: str = "ground_truth", *,
                    view: str | None = None, target_precision: float | None = None,
                    write: bool = True) -> ThresholdSet:
    """Multi-label: per-class thresholds maximising F1 (or reaching `target_precision` with the most recall) on
    the stored scores of the labeled samples, stored in the user catalog with `write`. Single-label: the
    global threshold for `target_precision` (default 0.9) and the coverage it keeps (reported, not stored)."""
    entry = _check_maker(samples, pred_field, model)
    if entry.task == "single":
        data = gather_single(samples, pred_field, gt_field)
        correct = np.asarray(data.predicted, object) == np.asarray(data.truth, object)
        target = target_precision or DEFAULT_TARGET_PRECISION
        return ThresholdSet(model, f"precision>={target:g}", {},
                            suggested_threshold=cm.global_threshold(data.confidences, correct, target))
    labeled = _with_truth(samples, pred_field, gt_field)
    logits = np.asarray(_logits_or_fail(labeled, pred_field), np.float64)
    label_set = catalog().labels(entry.labels)
    classes = list(label_set.names)
    if logits.shape[1] != len(classes):
        raise CalibrationError(f"'{pred_field}.logits' have {logits.shape[1]} entries but model '{model}' has "
                               f"{len(classes)} classes: this field was not predicted by that model")
    truth = [_names(g) for g in labeled.values(gt_field)]
    _class_targets([t for ts in truth for t in ts], classes, f"model '{model}'")
    scores = 1.0 / (1.0 + np.exp(-logits))
    positive = np.zeros_like(scores, bool)
    for row, names in enumerate(truth):
        positive[row, [classes.index(n) for n in names]] = True
    current = label_set.thresholds or (0.5,) * len(classes)
    method = "max-f1" if target_precision is None else f"precision>={target_precision:g}"
    result = ThresholdSet(model, method, {})
    for k, name in enumerate(classes):
        tuned = cm.tune_threshold(scores[:, k], positive[:, k], target_precision)
        if tuned is None:
            result.thresholds[name] = float(current[k])
            result.untuned.append(name)
        else:
            result.thresholds[name] = tuned.threshold
            result.per_class[name] = asdict(tuned)
    if write:
        _store_thresholds(result, _provenance(samples, view, pred_field, gt_field, len(truth)),
                          f"models thresholds: {method} on dataset '{compat.root_dataset(samples).name}'")
    return result


def import_thresholds(model: str, path: str | Path) -> ThresholdSet:
    """Store a threshold file (TSV with columns index, label, threshold; e.g. the seed demo's 410) as `model`'s
    per-class thresholds, after checking every label is one of the model's classes at its index."""
    entry = catalog().model(model)
    if entry.task != "multi":
        raise CalibrationError(f"model '{model}' is single-label: per-class thresholds are for multi-label models")
    classes = list(catalog().labels(entry.labels).names)
    source = Path(path).expanduser()
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"index", "label", "threshold"} <= set(rows[0]):
        raise CalibrationError(f"{source}: expected a tab-separated file with columns index, label, threshold")
    thresholds = {}
    for line, row in enumerate(rows, start=2):
        try:
            index, value = int(row["index"]), float(row["threshold"])
        except (TypeError, ValueError):
            raise CalibrationError(f"{source}:{line}: index must be an integer and threshold a number") from None
        if not (0 <= index < len(classes) and classes[index].strip() == (row["label"] or "").strip()):
            raise CalibrationError(f"{source}:{line}: label {row['label']!r} at index {index} is not model "
                                   f"'{model}'s class there ({len(classes)} classes)")
        if not 0 <= value <= 1:
            raise CalibrationError(f"{source}:{line}: threshold {value} is outside 0..1")
        thresholds[classes[index]] = value  # the model's spelling (the demo's C++ has trailing spaces)
    if len(thresholds) != len(classes):
        raise CalibrationError(f"{source}: thresholds for {len(thresholds)} of model '{model}'s {len(classes)} "
                               "classes; a threshold set covers every class")
    result = ThresholdSet(model, "imported", thresholds)
    _store_thresholds(result, {"file": str(source), "date": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds")}, f"imported from {source.name}")
    return result


# --- conformal prediction sets ---------------------------------------------------------------------------------


@dataclass
class ConformalSummary:
    """Split conformal (RAPS) sets: fitted on `fit_samples`, measured on `held_out_samples` (empirical coverage
    should be near the target, within sampling error), written for `written_samples` samples."""

    sets_field: str
    coverage_target: float
    qhat: float
    penalty: float
    k_reg: int
    fit_samples: int
    held_out_samples: int
    empirical_coverage: float
    mean_set_size: float
    written_samples: int
    needs_review: int
    review_view: str

    def to_dict(self) -> dict:
        return asdict(self)


def review_view_name(sets_field: str) -> str:
    return f"{sets_field}-needs-review"


def conformal_sets(samples: Samples, pred_field: str, gt_field: str = "ground_truth", *, coverage: float = 0.9,
                   sets_field: str | None = None, classes: list[str] | None = None, model: str | None = None,
                   holdout: float = 0.5, seed: int = 0, penalty: float = 0.01, k_reg: int = 5) -> ConformalSummary:
    """Fit a split conformal predictor (randomized RAPS, seeded by `seed`) on part of the labeled samples' stored
    logits, report coverage and mean set size on the rest, then store for every sample of `samples` with logits
    the smallest label set (best first, confidence = class probability) meeting `coverage` in `sets_field`
    (default `<pred_field>_set`), and save the view `<sets_field>-needs-review` of samples whose set holds more
    than one label."""
    data = gather_single(samples, pred_field, gt_field, classes, need_logits=True,
                         model=model or _model_of_field(samples, pred_field, classes))
    fit_idx, held_idx = cm.split_indices(len(data.ids), holdout, seed)
    fit, held = data.take(fit_idx), data.take(held_idx)
    predictor = cm.fit_conformal(fit.probs(), fit.targets, coverage, penalty, k_reg, seed=seed)
    achieved, size = cm.set_coverage(predictor.sets(held.probs()), held.targets)

    sets_field = sets_field or f"{pred_field}_set"
    dataset = compat.root_dataset(samples)
    existing = dataset.get_field(sets_field)
    if existing is not None and getattr(existing, "document_type", None) is not fo.Classifications:
        raise CalibrationError(f"field '{sets_field}' already holds something other than Classifications; choose "
                               "another sets field")
    target = samples.exists(f"{pred_field}.logits")
    ids, logits = target.values(["id", f"{pred_field}.logits"])
    probs = cm.softmax(np.asarray(logits, np.float64))
    labels = {sid: fo.Classifications(classifications=[
        fo.Classification(label=data.classes[int(i)], confidence=float(p[i])) for i in members])
        for sid, p, members in zip(ids, probs, predictor.sets(probs))}
    target.set_values(sets_field, labels, key_field="id")
    review = samples.match(F(f"{sets_field}.classifications").length() > 1).sort_by(
        F(f"{sets_field}.classifications").length(), reverse=True)
    dataset.save_view(review_view_name(sets_field), review, overwrite=True,
                      description=f"{pred_field}: conformal set at {coverage:.0%} holds more than one label")
    return ConformalSummary(sets_field, coverage, predictor.qhat, penalty, k_reg, len(fit.ids), len(held.ids),
                            achieved, size, len(ids), len(review), review_view_name(sets_field))


def _model_of_field(samples: Samples, pred_field: str, classes: list[str] | None) -> str | None:
    """The catalog model an annotate run recorded for `pred_field` (None when classes are given)."""
    if classes is not None:
        return None
    model = (run_settings(compat.root_dataset(samples), pred_field) or {}).get("model")
    if model not in catalog().models:
        raise CalibrationError(f"cannot tell which model made '{pred_field}': pass the model (--model) or its classes")
    return model

"""Evaluate classifier predictions stored on a FiftyOne dataset.

Single-label evaluation is FiftyOne's own `evaluate_classifications` run (so the App's Model Evaluation
panel shows it), plus saved views that put the most confident mistakes first. Multi-label evaluation, which
FiftyOne lacks, writes per-sample TP/FP/FN label fields and counts in bulk and records a custom run holding
the summary.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

from . import compat
from .views import Samples, label_field_type, run_settings


@dataclass
class Mistake:
    filepath: str
    gt: str | None
    pred: str | None
    confidence: float | None


@dataclass
class EvaluationSummary:
    """What `evaluate` found. `report` is sklearn's classification report over the observed classes.
    `unpredicted`: samples without a prediction (counted wrong in `accuracy`, left out of top-k, which is over
    `top_k_samples`)."""

    eval_key: str
    pred_field: str
    gt_field: str
    num_samples: int
    accuracy: float
    num_mistakes: int
    mistakes_view: str
    confident_mistakes: list[Mistake]
    report: dict
    top_k: int | None = None
    top_k_accuracy: float | None = None
    top_k_eval_key: str | None = None
    unpredicted: int = 0
    top_k_samples: int | None = None
    ece: float | None = None  # calibration of the stored confidences (integration/confidence.py)
    mce: float | None = None
    brier: float | None = None  # Brier score and NLL need stored logits and the classes in logit order
    nll: float | None = None
    calibration: dict | None = None  # bins, binning, per-class ECE, reliability table, diagram path
    confusions: list[dict] = field(default_factory=list)  # the most frequent (gt, pred, count) mistakes
    confusion_matrix: dict | None = None  # {"classes", "counts"[gt][pred]} for up to MATRIX_MAX_CLASSES classes

    def to_dict(self) -> dict:
        return asdict(self)

    def per_class_text(self, rows: int | None = 20) -> str:
        """sklearn's per-class report as a table, worst F1 first (at most `rows` classes; None: all)."""
        classes = sorted(((k, v) for k, v in self.report.items() if isinstance(v, dict) and k not in _AVERAGES),
                         key=lambda kv: (kv[1]["f1-score"], -kv[1]["support"], kv[0]))
        shown = classes if rows is None else classes[:rows]
        width = max([len(k) for k, _ in shown] + [len("weighted avg")])
        head = (f"per-class, worst F1 first ({len(shown)} of {len(classes)}; --report-rows 0 shows all):"
                if len(shown) < len(classes) else "per-class, worst F1 first:")
        line = "  {:<{w}}  {:>9}  {:>6}  {:>6}  {:>7}"
        out = [head, line.format("class", "precision", "recall", "f1", "support", w=width)]
        for name, row in [*shown, *((k, self.report[k]) for k in _AVERAGES if k in self.report)]:
            out.append(line.format(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1-score']:.3f}",
                                   row["support"], w=width))
        return "\n".join(out)

    def confusion_text(self) -> str:
        """The confusion matrix (rows: truth) for few classes, else the most frequent confusions."""
        if self.confusion_matrix is not None:
            names, counts = self.confusion_matrix["classes"], self.confusion_matrix["counts"]
            w = max(max(len(n) for n in names), max(len(str(c)) for row in counts for c in row), 5)
            out = ["confusion matrix (rows: truth, columns: prediction):",
                   "  " + " " * w + "  " + "  ".join(f"{n:>{w}}" for n in names)]
            out += [f"  {n:>{w}}  " + "  ".join(f"{c:>{w}}" for c in row) for n, row in zip(names, counts)]
            return "\n".join(out)
        if not self.confusions:
            return "no confusions"
        return "most frequent confusions (truth → prediction):\n" + "\n".join(
            f"  {c['count']:>5}  {c['gt']!r} → {c['pred']!r}" for c in self.confusions)


_AVERAGES = ("macro avg", "weighted avg")
MATRIX_MAX_CLASSES = 12  # above it the terminal shows the most frequent confusions instead of the matrix
TOP_CONFUSIONS = 20


def _confusions(results) -> tuple[list[dict], dict | None]:
    """The most frequent mistakes as (truth, prediction, count), and the whole matrix when there are few classes."""
    pairs = Counter(zip(map(str, results.ytrue), map(str, results.ypred)))
    wrong = sorted(((n, t, p) for (t, p), n in pairs.items() if t != p), key=lambda x: (-x[0], x[1], x[2]))
    confusions = [{"gt": t, "pred": p, "count": n} for n, t, p in wrong[:TOP_CONFUSIONS]]
    names = sorted({name for pair in pairs for name in pair})
    if len(names) > MATRIX_MAX_CLASSES:
        return confusions, None
    return confusions, {"classes": names, "counts": [[pairs.get((t, p), 0) for p in names] for t in names]}


def mistakes_view_name(eval_key: str) -> str:
    return f"{eval_key}-mistakes"


def _field_type(samples: Samples, label_field: str, role: str) -> type:
    """`label_field_type`, with the error saying which argument ("prediction", "ground truth") is wrong."""
    try:
        return label_field_type(samples, label_field)
    except ValueError as exc:
        raise ValueError(f"{role} field: {exc}") from None


def _require_single_label(samples: Samples, field: str, role: str) -> None:
    if _field_type(samples, field, role) is fo.Classifications:
        raise ValueError(f"{role} field '{field}' holds Classifications (multi-label); evaluate() compares one label "
                         f"per sample: use evaluate_multilabel(samples, '{field}', ...) instead")


def resolve_classes(samples: Samples, pred_field: str, classes: Sequence[str] | str | None = None) -> list[str]:
    """Class names in logit order: given (a list, or a label-set name/path), else recorded on the dataset.

    Recorded means `dataset.classes[pred_field]`, the field's `info["classes"]` / `info["label_set"]`, or the
    label set in the settings of the run that `annotate()` registers for the field. Failing those (e.g. after
    a plain `apply_model`), the one catalog label set that explains the stored predictions is used.
    """
    from ..catalog.registry import catalog

    if isinstance(classes, str):
        return list(catalog().labels(classes).names)
    if classes is not None:
        return list(classes)
    dataset = compat.root_dataset(samples)
    if dataset.classes.get(pred_field):
        return list(dataset.classes[pred_field])
    info = dataset.get_field(pred_field).info or {}
    if info.get("classes"):
        return list(info["classes"])
    label_set = info.get("label_set") or _label_set_of_run(dataset, pred_field)
    if label_set:
        return list(catalog().labels(label_set).names)
    found = _classes_from_catalog(samples, pred_field)
    if found:
        return found
    raise ValueError(f"top-k evaluation needs the classes of '{pred_field}' in logit order: pass classes= (a list or "
                     f"a label set name such as 'imagenet-1000'), or set dataset.classes['{pred_field}']")


def _label_set_of_run(dataset: fo.Dataset, pred_field: str) -> str | None:
    """The label set a run recorded for `pred_field` (annotate() stores `label_field` and `settings["labels"]`)."""
    return (run_settings(dataset, pred_field) or {}).get("labels")


def _classes_from_catalog(samples: Samples, pred_field: str, probe: int = 200) -> list[str] | None:
    """The class list of the catalog label set (or catalog model's labels) that has one name per logit and
    names, for every probed sample, its stored label at its argmax logit; None unless exactly one list fits."""
    from ..catalog.registry import catalog
    from ..catalog.schema import CatalogError
    from ..downloads import DownloadError

    labels, logits = samples.exists(f"{pred_field}.logits").limit(probe).values(
        [f"{pred_field}.label", f"{pred_field}.logits"])
    if not logits:
        return None
    n, cat = len(logits[0]), catalog()
    refs = {name for name, e in cat.label_sets.items() if e.num_classes in (n, n - 1)}
    refs |= {m.labels for m in cat.models.values() if m.num_classes == n}
    fits = set()
    for ref in sorted(refs):
        try:
            names = list(cat.labels(ref).names)
        except (CatalogError, DownloadError, OSError):
            continue  # an unreachable label file cannot be checked, so it cannot be chosen
        names = ["background", *names] if len(names) == n - 1 else names
        if len(names) == n and all(names[int(np.argmax(lg))] == lab for lab, lg in zip(labels, logits)):
            fits.add(tuple(names))
    return list(fits.pop()) if len(fits) == 1 else None


def _logit_classes(samples: Samples, pred_field: str, classes: list[str]) -> list[str]:
    """`classes` checked against the stored logits. FiftyOne silently scores samples without logits as wrong:
    refuse instead. A model with one output more than its labels has a leading background logit (see the
    built-in adapter), so 'background' is prepended then."""
    missing = samples.exists(pred_field).exists(f"{pred_field}.logits", False).count()
    if missing:
        raise ValueError(f"{missing} sample(s) have no '{pred_field}.logits'; top-k evaluation needs the model to "
                         "store logits (apply_model(..., store_logits=True))")
    first = samples.exists(f"{pred_field}.logits").first()[pred_field].logits
    if len(first) == len(classes) + 1:
        return ["background", *classes]
    if len(first) != len(classes):
        raise ValueError(f"'{pred_field}.logits' have {len(first)} entries but {len(classes)} classes were given; "
                         "the classes must be the model's labels in logit order")
    return classes


def _run(samples: Samples, pred_field: str, gt_field: str, eval_key: str, **kwargs):
    """A fresh FiftyOne evaluation run under `eval_key` (an earlier run under that key is replaced)."""
    if eval_key in compat.root_dataset(samples).list_evaluations():
        compat.root_dataset(samples).delete_evaluation(eval_key)
    return samples.evaluate_classifications(pred_field, gt_field=gt_field, eval_key=eval_key, **kwargs)


def _plain(report: dict) -> dict:
    """sklearn's report with numpy scalars made JSON-friendly ('accuracy' is a bare float there)."""
    return {k: ({m: int(v) if m == "support" else float(v) for m, v in row.items()} if isinstance(row, dict)
                else float(row)) for k, row in report.items()}


def evaluate(samples: Samples, pred_field: str, gt_field: str = "ground_truth", eval_key: str = "eval",
             top_k: int | None = None, classes: Sequence[str] | str | None = None,
             num_confident_mistakes: int = 10, bins: int = 15, binning: str = "width",
             diagram: str | None = None) -> EvaluationSummary:
    """Evaluate single-label predictions: a FiftyOne evaluation run under `eval_key` (shown in the App's Model
    Evaluation panel), a `<eval_key>` boolean per sample, and the saved view `<eval_key>-mistakes` (confident
    mistakes first). With `top_k`, also FiftyOne's top-k run under `<eval_key>_top<k>`, which needs stored
    logits and `classes` in logit order (see `resolve_classes`).

    A sample without a prediction (below the threshold at annotate time: no label, no logits) is wrong at top-1,
    but its top-k is unknown, where FiftyOne would count a miss: the top-k run covers the samples with a
    prediction only, and the summary says how many were left out (`unpredicted`, `top_k_samples`).

    Also the calibration of the confidences (`ece`, `mce` over `bins` equal-`width` or equal-`mass` bins, per-class
    ECE; `brier`, `nll` when logits are stored), kept as the run `<eval_key>_calibration`; `diagram` saves the
    reliability diagram there (an image path). See docs/calibration.md."""
    _require_single_label(samples, pred_field, "prediction")
    _require_single_label(samples, gt_field, "ground truth")
    results = _run(samples, pred_field, gt_field, eval_key, method="simple")
    predicted = samples.exists(pred_field)
    unpredicted = len(samples) - len(predicted)

    top_k_key = top_k_accuracy = top_k_samples = None
    if top_k:
        names = _logit_classes(samples, pred_field, resolve_classes(samples, pred_field, classes))
        top_k_key = f"{eval_key}_top{top_k}"
        top = _run(predicted if unpredicted else samples, pred_field, gt_field, top_k_key, method="top-k", k=top_k,
                   classes=names)
        top_k_accuracy, top_k_samples = float(top.metrics()["accuracy"]), len(predicted)

    dataset = compat.root_dataset(samples)
    mistakes = samples.match(F(eval_key) == False).sort_by(f"{pred_field}.confidence", reverse=True)  # noqa: E712
    dataset.save_view(mistakes_view_name(eval_key), mistakes, overwrite=True,
                      description=f"{pred_field} vs {gt_field}: wrong predictions, most confident first")
    rows = mistakes.limit(num_confident_mistakes).values(
        ["filepath", f"{gt_field}.label", f"{pred_field}.label", f"{pred_field}.confidence"])
    summary = EvaluationSummary(
        eval_key=eval_key, pred_field=pred_field, gt_field=gt_field, num_samples=len(samples),
        accuracy=float(results.metrics()["accuracy"]), num_mistakes=len(mistakes),
        mistakes_view=mistakes_view_name(eval_key), confident_mistakes=[Mistake(*row) for row in zip(*rows)],
        report=_plain(results.report()), top_k=top_k, top_k_accuracy=top_k_accuracy, top_k_eval_key=top_k_key,
        unpredicted=unpredicted, top_k_samples=top_k_samples)
    summary.confusions, summary.confusion_matrix = _confusions(results)
    return _with_calibration(samples, summary, classes, bins, binning, diagram)


def _with_calibration(samples: Samples, summary: EvaluationSummary, classes: Sequence[str] | str | None, bins: int,
                      binning: str, diagram: str | None) -> EvaluationSummary:
    """`summary` with the calibration of its confidences (Brier/NLL only where the logits' classes are known)."""
    from ..confidence import diagram as reliability_diagram
    from . import confidence

    try:
        names = _logit_classes(samples, summary.pred_field,
                               resolve_classes(samples, summary.pred_field, classes))
    except ValueError:
        names = None  # no logits, or classes unknown: ECE/MCE from the confidences alone
    try:
        report = confidence.measure_field(samples, summary.pred_field, summary.gt_field, bins, binning, names)
    except ValueError:  # labels outside the logits' classes: no Brier/NLL, calibration of top-1 still holds
        report = confidence.measure_field(samples, summary.pred_field, summary.gt_field, bins, binning)
    confidence.record(samples, summary.eval_key, summary.pred_field, report)
    details = report.to_dict()
    if diagram:
        title = f"{summary.pred_field}: ECE {report.ece:.3f}, MCE {report.mce:.3f} ({binning} bins)"
        details["diagram"] = str(reliability_diagram(report, diagram, title))
    summary.ece, summary.mce, summary.brier, summary.nll = report.ece, report.mce, report.brier, report.nll
    summary.calibration = details
    return summary


def confusion_view(dataset: fo.Dataset, eval_key: str, gt_class: str, pred_class: str,
                   save: bool = False) -> fo.DatasetView:
    """Samples of `gt_class` predicted as `pred_class` in evaluation `eval_key`, most confident first.

    With `save`, it is also saved as `<eval_key>-<gt_class>-as-<pred_class>`.
    """
    config = dataset.get_evaluation_info(eval_key).config
    gt, pred = config.gt_field, config.pred_field
    view = dataset.load_evaluation_view(eval_key).match(
        (F(f"{gt}.label") == gt_class) & (F(f"{pred}.label") == pred_class)
    ).sort_by(f"{pred}.confidence", reverse=True)
    if save:
        dataset.save_view(f"{eval_key}-{gt_class}-as-{pred_class}", view, overwrite=True)
    return view


# --- multi-label ---------------------------------------------------------------------------------------------


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int  # ground-truth occurrences
    tp: int
    fp: int
    fn: int


@dataclass
class MultiLabelSummary:
    """Counts and metrics of `evaluate_multilabel`; micro averages pool all labels, macro averages classes."""

    eval_key: str
    pred_field: str
    gt_field: str
    num_samples: int
    tp: int
    fp: int
    fn: int
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    samples_with_errors: int
    errors_view: str
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def errors_view_name(eval_key: str) -> str:
    return f"{eval_key}-errors"


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 with sklearn's zero_division=0 convention."""
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return p, r, _ratio(2 * p * r, p + r)


def _as_list(label) -> list:
    """A Classification, Classifications or None as a list of Classification."""
    if label is None:
        return []
    return list(label.classifications) if isinstance(label, fo.Classifications) else [label]


def _match(pred_labels: list, gt_labels: list, keep: set[str] | None) -> tuple[dict[str, list], tuple[list, list]]:
    """One sample: the TP/FP/FN labels (new Classifications, predictions keep their confidence) and the outcome
    of each predicted and ground-truth label (None: a class outside `keep`, or a repeated prediction)."""
    def scored(label) -> bool:
        return keep is None or label.label in keep

    truth = {g.label for g in gt_labels if scored(g)}
    predicted = {p.label for p in pred_labels if scored(p)}
    hits: dict[str, list] = {"tp": [], "fp": []}
    pred_marks, seen = [], set()
    for p in pred_labels:
        if not scored(p) or p.label in seen:
            pred_marks.append(None)
            continue
        seen.add(p.label)
        kind = "tp" if p.label in truth else "fp"
        pred_marks.append(kind)
        hits[kind].append(fo.Classification(label=p.label, confidence=p.confidence))
    hits["fn"] = [fo.Classification(label=label) for label in sorted(truth - predicted)]
    gt_marks = [("tp" if g.label in predicted else "fn") if scored(g) else None for g in gt_labels]
    return hits, (pred_marks, gt_marks)


def evaluate_multilabel(samples: Samples, pred_field: str, gt_field: str = "ground_truth",
                        eval_key: str = "eval_ml", classes: Sequence[str] | None = None) -> MultiLabelSummary:
    """Evaluate multi-label predictions (Classifications; Classification fields count as one label) per class.

    Writes, in bulk: `<eval_key>_tp`, `<eval_key>_fp`, `<eval_key>_fn` (Classifications: hits, false positives,
    misses), `<eval_key>_{tp,fp,fn}_count`, and an `<eval_key>` attribute ("tp"/"fp"/"fn") on every predicted and
    ground-truth label; saves the view `<eval_key>-errors`; records the summary as a run under `eval_key`.
    With `classes`, labels of other classes are ignored; the per-class table covers exactly `classes`.
    """
    _field_type(samples, pred_field, "prediction")
    _field_type(samples, gt_field, "ground truth")
    keep = set(classes) if classes is not None else None
    preds, gts = samples.values(pred_field), samples.values(gt_field)

    counts: dict[str, Counter] = {"tp": Counter(), "fp": Counter(), "fn": Counter()}
    per_sample: dict[str, list] = {k: [] for k in ("tp", "fp", "fn")}
    pred_marks, gt_marks = [], []
    for pred, gt in zip(preds, gts):
        hits, marks = _match(_as_list(pred), _as_list(gt), keep)
        pred_marks.append(marks[0])
        gt_marks.append(marks[1])
        for kind, labels in hits.items():
            counts[kind].update(c.label for c in labels)
            per_sample[kind].append(labels)

    for kind, labels in per_sample.items():
        samples.set_values(f"{eval_key}_{kind}", [fo.Classifications(classifications=ls) for ls in labels])
        samples.set_values(f"{eval_key}_{kind}_count", [len(ls) for ls in labels])
    _mark_labels(samples, pred_field, preds, pred_marks, eval_key)
    _mark_labels(samples, gt_field, gts, gt_marks, eval_key)

    names = list(classes) if classes is not None else sorted(set().union(*counts.values()))
    per_class = {}
    for name in names:
        tp, fp, fn = (counts[k][name] for k in ("tp", "fp", "fn"))
        per_class[name] = ClassMetrics(*_prf(tp, fp, fn), support=tp + fn, tp=tp, fp=fp, fn=fn)
    total = {k: sum(counts[k][n] for n in names) for k in counts}
    micro = _prf(total["tp"], total["fp"], total["fn"])
    macro = [sum(getattr(m, a) for m in per_class.values()) / len(per_class) if per_class else 0.0
             for a in ("precision", "recall", "f1")]

    errors = samples.match((F(f"{eval_key}_fp_count") > 0) | (F(f"{eval_key}_fn_count") > 0)).sort_by(
        F(f"{eval_key}_fp_count") + F(f"{eval_key}_fn_count"), reverse=True)
    compat.root_dataset(samples).save_view(errors_view_name(eval_key), errors, overwrite=True,
                               description=f"{pred_field} vs {gt_field}: samples with false positives or misses")
    summary = MultiLabelSummary(
        eval_key=eval_key, pred_field=pred_field, gt_field=gt_field, num_samples=len(preds), **total,
        micro_precision=micro[0], micro_recall=micro[1], micro_f1=micro[2],
        macro_precision=macro[0], macro_recall=macro[1], macro_f1=macro[2],
        samples_with_errors=len(errors), errors_view=errors_view_name(eval_key), per_class=per_class)
    _record_run(samples, summary, classes)
    return summary


def _mark_labels(samples: Samples, label_field: str, labels: list, marks: list[list], eval_key: str) -> None:
    """Set the `<eval_key>` attribute of each label in bulk, so the App can filter labels by tp/fp/fn."""
    if label_field_type(samples, label_field) is fo.Classifications:
        samples.set_values(f"{label_field}.classifications.{eval_key}",
                           [m if label is not None else None for label, m in zip(labels, marks)])
    else:
        samples.set_values(f"{label_field}.{eval_key}", [m[0] if m else None for m in marks])


def _record_run(samples: Samples, summary: MultiLabelSummary, classes: Sequence[str] | None) -> None:
    """A custom FiftyOne run under `eval_key`: `dataset.list_runs()` shows it, `load_run_results` returns the
    summary (`.summary`), and the key cannot be taken by another run."""
    config = samples.init_run(method="multilabel", pred_field=summary.pred_field, gt_field=summary.gt_field,
                              classes=list(classes) if classes is not None else None)
    samples.register_run(summary.eval_key, config, overwrite=True)
    samples.save_run_results(summary.eval_key, samples.init_run_results(summary.eval_key, summary=summary.to_dict()))

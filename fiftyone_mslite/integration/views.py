"""Confidence views over prediction fields: non-destructive filters, saved views and the indexes the App needs.

Everything here builds `DatasetView`s (FiftyOne view stages), so filtering never deletes or edits labels;
saving a view only stores its stages on the dataset, where the App lists it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Union

import fiftyone as fo
from fiftyone import ViewField as F

from ..errors import DatasetError
from . import compat

LabelType = Union[type[fo.Classification], type[fo.Classifications]]
Samples = Union[fo.Dataset, fo.DatasetView]


def label_field_type(samples: Samples, field: str) -> LabelType:
    """The label class a field holds, or a clear error naming the field when it is missing or not a label."""
    schema = samples.get_field_schema(embedded_doc_type=fo.Label)
    if field not in schema:
        known = ", ".join(sorted(schema)) or "none"
        name = compat.root_dataset(samples).name
        raise DatasetError(f"dataset '{name}' has no label field '{field}' (label fields: {known})")
    doc_type = schema[field].document_type
    if doc_type not in (fo.Classification, fo.Classifications):
        raise ValueError(f"field '{field}' holds {doc_type.__name__} labels; only Classification and "
                         "Classifications fields are supported")
    return doc_type


def label_path(samples: Samples, field: str) -> str:
    """Path of the individual labels: `field` for Classification, `field.classifications` for Classifications."""
    return f"{field}.classifications" if label_field_type(samples, field) is fo.Classifications else field


def _confidence_expr(min_confidence: float | Mapping[str, float] | None, max_confidence: float | None,
                     classes: Iterable[str] | None, default: float | None = None):
    """A per-label filter expression; a mapping gives per-class minimums (classes absent from it use `default`)."""
    terms = []
    if isinstance(min_confidence, Mapping):
        known = list(min_confidence)
        per_class = [(F("label") == label) & (F("confidence") >= float(t)) for label, t in min_confidence.items()]
        other = ~F("label").is_in(known)
        if default is not None:
            other = other & (F("confidence") >= float(default))
        terms.append(F.any([*per_class, other]))
    elif min_confidence is not None:
        terms.append(F("confidence") >= float(min_confidence))
    if max_confidence is not None:
        terms.append(F("confidence") <= float(max_confidence))
    if classes is not None:
        terms.append(F("label").is_in(list(classes)))
    if not terms:
        raise ValueError("give at least one of min_confidence, max_confidence, classes")
    return F.all(terms) if len(terms) > 1 else terms[0]


def confidence_view(samples: Samples, field: str, min_confidence: float | Mapping[str, float] | None = None,
                    max_confidence: float | None = None, classes: Iterable[str] | None = None) -> fo.DatasetView:
    """Samples with at least one label of `field` in [min_confidence, max_confidence] (and in `classes`).

    Other labels are hidden, not deleted. `min_confidence` may be a `{label: threshold}` mapping; labels it
    does not name are kept. Works for Classification and Classifications fields alike.
    """
    label_field_type(samples, field)
    return samples.filter_labels(field, _confidence_expr(min_confidence, max_confidence, classes))


def class_threshold_view(samples: Samples, field: str, thresholds: Mapping[str, float],
                         default: float | None = None) -> fo.DatasetView:
    """Per-class thresholds (e.g. a label set's calibrated ones): `{label: min_confidence}`, `default` for others."""
    label_field_type(samples, field)
    return samples.filter_labels(field, _confidence_expr(thresholds, None, None, default=default))


def low_confidence_view_name(field: str) -> str:
    """Saved view names become slugs (`a_b` → `a-b`); the name itself keeps the field spelling."""
    return f"{field}-low-confidence"


def run_settings(dataset: fo.Dataset, field: str) -> dict | None:
    """The settings recorded by the run that labeled `field` (annotate() stores `label_field` and `settings`)."""
    for key in dataset.list_runs():
        config = dataset.get_run_info(key).config
        settings = getattr(config, "settings", None)
        if getattr(config, "label_field", None) == field and isinstance(settings, dict):
            return settings
    return None


def calibration_of(dataset: fo.Dataset, field: str) -> dict | None:
    """The confidence calibration the annotate run of `field` applied (`calibrated=True`), else None: then the
    field's confidences are calibrated ones, and every confidence view of it filters on them."""
    return (run_settings(dataset, field) or {}).get("calibration")


def save_low_confidence_view(dataset: fo.Dataset, field: str, threshold: float) -> fo.DatasetView:
    """Save (replacing any earlier one) a view of labels below `threshold`, least confident first."""
    view = samples_below(dataset, field, threshold)
    kind = "calibrated confidence" if calibration_of(dataset, field) else "confidence"
    dataset.save_view(low_confidence_view_name(field), view, overwrite=True,
                      description=f"{field} labels with {kind} < {threshold:g}, least confident first")
    return dataset.load_saved_view(low_confidence_view_name(field))


def samples_below(samples: Samples, field: str, threshold: float) -> fo.DatasetView:
    """Samples with a label of `field` under `threshold`, sorted by that label's confidence ascending."""
    label_field_type(samples, field)
    view = samples.filter_labels(field, F("confidence") < float(threshold))
    return view.sort_by(_min_confidence(samples, field))


def _min_confidence(samples: Samples, field: str):
    if label_field_type(samples, field) is fo.Classifications:
        return F(f"{field}.classifications").map(F("confidence")).min()
    return F(f"{field}.confidence")


def ensure_confidence_index(dataset: fo.Dataset, field: str) -> list[str]:
    """Index the paths the App's confidence slider and label filters query, so they stay fast on large datasets.

    Idempotent: FiftyOne only creates missing indexes. Returns the indexed paths.
    """
    base = label_path(dataset, field)
    paths = [f"{base}.confidence", f"{base}.label"]
    for path in paths:
        dataset.create_index(path)
    return paths

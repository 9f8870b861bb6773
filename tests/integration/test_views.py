"""Confidence views, saved views and App indexes on real FiftyOne + MongoDB."""
import fiftyone as fo
import pytest

from fiftyone_mslite.integration import views

SINGLE = [("cat", 0.95), ("dog", 0.40), ("cat", 0.55), ("bird", 0.20), ("dog", 0.85), (None, None)]
MULTI = [[("cat", 0.9), ("dog", 0.3)], [("dog", 0.6)], [], [("bird", 0.1), ("cat", 0.45)]]


@pytest.fixture
def single() -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/img/{i}.jpg",
                              pred=fo.Classification(label=lab, confidence=conf) if lab else None)
                    for i, (lab, conf) in enumerate(SINGLE)])
    return ds


@pytest.fixture
def multi() -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", pred=fo.Classifications(
        classifications=[fo.Classification(label=lab, confidence=c) for lab, c in labels]))
        for i, labels in enumerate(MULTI)])
    return ds


def _count(rows, keep) -> int:
    return sum(1 for lab, conf in rows if lab is not None and keep(lab, conf))


@pytest.mark.parametrize("kwargs, keep", [
    ({"min_confidence": 0.5}, lambda lab, c: c >= 0.5),
    ({"max_confidence": 0.5}, lambda lab, c: c <= 0.5),
    ({"min_confidence": 0.3, "max_confidence": 0.9}, lambda lab, c: 0.3 <= c <= 0.9),
    ({"classes": ["dog"]}, lambda lab, c: lab == "dog"),
    ({"min_confidence": 0.5, "classes": ["cat", "bird"]}, lambda lab, c: c >= 0.5 and lab in ("cat", "bird")),
    ({"min_confidence": {"cat": 0.9, "dog": 0.3}}, lambda lab, c: c >= {"cat": 0.9, "dog": 0.3}.get(lab, 0)),
])
def test_confidence_view_single(single, kwargs, keep):
    view = views.confidence_view(single, "pred", **kwargs)
    assert len(view) == _count(SINGLE, keep)
    assert len(single) == len(SINGLE)  # non-destructive


def test_confidence_view_multi_filters_labels(multi):
    view = views.confidence_view(multi, "pred", min_confidence=0.5)
    assert len(view) == sum(any(c >= 0.5 for _, c in labels) for labels in MULTI)
    assert all(c >= 0.5 for confs in view.values("pred.classifications.confidence") for c in confs)
    assert multi.count("pred.classifications") == sum(map(len, MULTI))  # hidden, not deleted


def test_class_thresholds_with_default(single, multi):
    thresholds = {"cat": 0.9, "dog": 0.3}
    assert len(views.class_threshold_view(single, "pred", thresholds)) == _count(
        SINGLE, lambda lab, c: c >= thresholds.get(lab, 0))
    strict = views.class_threshold_view(single, "pred", thresholds, default=0.5)
    assert sorted(strict.values("pred.label")) == ["cat", "dog", "dog"]  # bird (0.20) fails the default
    view = views.class_threshold_view(multi, "pred", thresholds)
    assert view.values("pred.classifications.label") == [["cat", "dog"], ["dog"], ["bird"]]  # bird: no threshold


def test_confidence_view_errors(single):
    with pytest.raises(ValueError, match="at least one of"):
        views.confidence_view(single, "pred")
    with pytest.raises(ValueError, match=r"no label field 'predictions' \(label fields: pred\)"):
        views.confidence_view(single, "predictions", min_confidence=0.5)


def test_low_confidence_view_saved(single):
    saved = views.save_low_confidence_view(single, "pred", 0.6)
    assert saved.values("pred.confidence") == [0.20, 0.40, 0.55]  # least confident first
    reloaded = fo.load_dataset(single.name).load_saved_view("pred-low-confidence")
    assert reloaded.values("pred.label") == ["bird", "dog", "cat"]
    views.save_low_confidence_view(single, "pred", 0.3)  # re-saving replaces the view
    assert single.list_saved_views() == ["pred-low-confidence"]
    assert len(single.load_saved_view("pred-low-confidence")) == 1


def test_low_confidence_view_multi_and_slug(multi):
    multi.rename_sample_field("pred", "mobilenet_v2")
    saved = views.save_low_confidence_view(multi, "mobilenet_v2", 0.5)
    assert saved.values("mobilenet_v2.classifications.label") == [["bird", "cat"], ["dog"]]
    # the name keeps the field's spelling (the App's URL slug becomes mobilenet-v2-low-confidence)
    reloaded = fo.load_dataset(multi.name).load_saved_view("mobilenet_v2-low-confidence")
    assert len(reloaded) == 2


@pytest.mark.parametrize("kind, paths", [
    ("single", ["pred.confidence", "pred.label"]),
    ("multi", ["pred.classifications.confidence", "pred.classifications.label"]),
])
def test_ensure_confidence_index(request, kind, paths):
    ds = request.getfixturevalue(kind)
    assert views.ensure_confidence_index(ds, "pred") == paths
    indexes = ds.list_indexes()
    assert set(paths) <= set(indexes)
    views.ensure_confidence_index(ds, "pred")  # idempotent
    assert ds.list_indexes() == indexes

"""Confidence maths (fiftyone_mslite.confidence) against hand-computed cases and scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from fiftyone_mslite import confidence as cm
from fiftyone_mslite.adapters.base import ClassPrediction, MultiLabelPrediction
from fiftyone_mslite.adapters.calibrated import Calibrated
from fiftyone_mslite.catalog.schema import Fact
from fiftyone_mslite.errors import CalibrationError

CONF = np.array([0.9, 0.9, 0.6, 0.6, 0.3])
CORRECT = np.array([True, False, True, True, False])


def test_ece_and_mce_by_hand():
    # 10 equal-width bins: [0.9,1.0] acc 1/2 conf .9 gap .4 (2 samples); [0.6,0.7) acc 1 gap .4 (2); [0.3,0.4)
    # acc 0 gap .3 (1) -> ECE (2*.4 + 2*.4 + .3) / 5 = .38, MCE .4
    ece, mce = cm.calibration_errors(CONF, CORRECT, bins=10)
    assert ece == pytest.approx(0.38) and mce == pytest.approx(0.4)
    # one bin: |mean acc - mean conf| = |3/5 - 3.3/5|
    assert cm.calibration_errors(CONF, CORRECT, bins=1)[0] == pytest.approx(0.06)


def test_equal_mass_bins_hold_equal_counts():
    rng = np.random.default_rng(0)
    conf = rng.beta(5, 1, 1000)
    table = cm.reliability(conf, rng.random(1000) < conf, bins=10, binning="mass")
    assert [b.count for b in table] == [100] * 10
    assert table[0].lower == 0.0 and table[-1].upper == 1.0
    # by hand: 4 samples, 2 equal-mass bins split at the median .75: {.6,.6} acc 1, {.9,.9} acc .5
    ece, mce = cm.calibration_errors(CONF[:4], CORRECT[:4], bins=2, binning="mass")
    assert (ece, mce) == (pytest.approx(0.4), pytest.approx(0.4))


def test_edges_are_inclusive_at_one_and_bad_bins_refused():
    table = cm.reliability(np.array([1.0, 0.0]), np.array([True, False]), bins=4)
    assert (table[-1].count, table[0].count) == (1, 1)
    with pytest.raises(CalibrationError, match="bins"):
        cm.bin_edges(CONF, 0)
    with pytest.raises(CalibrationError, match="binning"):
        cm.bin_edges(CONF, 5, "quantile")


def test_brier_and_nll_match_sklearn():
    rng = np.random.default_rng(1)
    probs = cm.softmax(rng.normal(0, 2, (200, 7)))
    y = rng.integers(0, 7, 200)
    assert cm.brier_score(probs, y) == pytest.approx(brier_score_loss(y, probs, labels=range(7),
                                                                      scale_by_half=False))
    assert cm.nll(probs, y) == pytest.approx(log_loss(y, probs, labels=range(7)))
    assert cm.brier_score(np.eye(3), [0, 1, 2]) == 0.0 and cm.brier_score(np.eye(3), [1, 2, 0]) == 2.0


def test_measure_per_class_and_both_binnings():
    report = cm.measure(CONF, ["a", "a", "b", "b", "c"], ["a", "x", "b", "b", "y"], bins=10)
    assert report.ece == pytest.approx(0.38) and report.ece_equal_width == report.ece
    assert report.per_class_ece == {"a": pytest.approx(0.4), "b": pytest.approx(0.4), "c": pytest.approx(0.3)}
    assert report.brier is None and report.nll is None


def _sampled(n: int, temperature: float, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, classes))
    truth = np.array([rng.choice(classes, p=p) for p in cm.softmax(logits, temperature)])
    return logits, truth


def test_temperature_recovers_the_truth_and_minimises_nll():
    logits, y = _sampled(4000, 2.0)
    t = cm.fit_temperature(logits, y).temperature
    assert t == pytest.approx(2.0, rel=0.08)
    best = cm.nll(cm.softmax(logits, t), y)
    assert all(cm.nll(cm.softmax(logits, t * f), y) >= best for f in (0.9, 0.97, 1.03, 1.1))


def test_vector_scaling_fits_at_least_as_well_and_round_trips():
    logits, y = _sampled(2000, 1.5, classes=5)
    vec = cm.fit_vector_scaling(logits, y)
    temp = cm.fit_temperature(logits, y)
    assert cm.nll(vec.probabilities(logits), y) <= cm.nll(temp.probabilities(logits), y) + 1e-6
    again = cm.Scaling.from_dict(vec.to_dict())
    assert np.allclose(again.probabilities(logits), vec.probabilities(logits))
    with pytest.raises(CalibrationError, match="fitted on 5 classes"):
        vec.probabilities(logits[:, :4])


def test_split_refuses_too_few():
    fit, held = cm.split_indices(200, 0.5, seed=3)
    assert len(fit) == len(held) == 100 and not set(fit) & set(held)
    with pytest.raises(CalibrationError, match="at least 50"):
        cm.split_indices(99, 0.5)
    with pytest.raises(CalibrationError, match="holdout"):
        cm.split_indices(200, 1.0)


def test_thresholds_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    positive = np.array([True, True, False, True, False])
    # cut .9: P 1 R 1/3; .8: P 1 R 2/3 F1 .8; .7: P 2/3 R 2/3; .6: P 3/4 R 1 F1 6/7; .2: P 3/5 R 1 F1 .75
    best = cm.tune_threshold(scores, positive)
    assert best.threshold == 0.6 and best.f1 == pytest.approx(6 / 7) and best.support == 3
    assert cm.tune_threshold(scores, positive, target_precision=1.0).threshold == 0.8
    assert cm.tune_threshold(scores, np.zeros(5, bool)) is None
    g = cm.global_threshold(scores, positive, 0.75)
    assert (g["threshold"], g["coverage"]) == (0.6, 0.8)


def test_conformal_quantile_by_hand_and_coverage():
    probs = np.array([[0.6, 0.3, 0.1]] * 4)
    # APS scores of the truth: class 0 -> .6, class 1 -> .9, class 2 -> 1.0; n = 4, level ceil(5 * .5)/4 = .75
    pred = cm.fit_conformal(probs, np.array([0, 1, 1, 2]), coverage=0.5, penalty=0.0, randomized=False)
    assert pred.qhat == pytest.approx(0.9)
    assert [list(s) for s in pred.sets(probs[:1])] == [[0, 1]]
    assert [list(s) for s in cm.Conformal(0.5, 0.1, 0.0, randomized=False).sets(probs[:1])] == [[0]]  # never empty
    with pytest.raises(CalibrationError, match="at least 9"):
        cm.fit_conformal(probs, np.array([0, 1, 1, 2]), coverage=0.9)

    logits, y = _sampled(4000, 1.0, classes=20, seed=5)
    probs = cm.softmax(logits)
    fit = cm.fit_conformal(probs[:2000], y[:2000], coverage=0.9)
    covered, size = cm.set_coverage(fit.sets(probs[2000:]), y[2000:])
    assert 0.88 <= covered <= 0.93 and 1 <= size < 20


def _fact(field, value):
    return Fact(field=field, value=value, status="calibrated", source="test")


def test_calibrated_predictions_keep_logits_and_follow_the_fact():
    names = ("background", "cat", "dog")
    logits = np.array([0.0, 2.0, 1.0], np.float32)
    raw = ClassPrediction("cat", 1, float(cm.softmax(logits).max()), "n1", (("cat", 0.6), ("dog", 0.3)), logits)
    cal = Calibrated("m", "single", (_fact("confidence_calibration", {"scaling": {"method": "temperature",
                                                                                    "temperature": 2.0}}),),
                     names, ("n1", "n2")).apply([raw])[0]
    assert (cal.label, cal.synset, cal.logits is raw.logits) == ("cat", "n1", True)
    assert cal.confidence == pytest.approx(cm.softmax(logits, 2.0)[1]) and len(cal.top_k) == 2

    multi = Calibrated("m", "multi", (_fact("class_thresholds", {"thresholds": {"cat": 0.2, "dog": 0.9}}),),
                       ("cat", "dog"))
    hits = multi.apply([MultiLabelPrediction((), np.array([0.3, 0.8], np.float32))])[0]
    assert [label for label, _ in hits.labels] == ["cat"]
    with pytest.raises(CalibrationError, match="no stored confidence calibration.*calibrate-confidence m"):
        Calibrated("m", "single", (), names)
    with pytest.raises(CalibrationError, match="classes it does not have"):
        Calibrated("m", "multi", (_fact("class_thresholds", {"thresholds": {"zebra": 0.2}}),), ("cat",))

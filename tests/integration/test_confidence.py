"""Confidence calibration, thresholds and conformal sets, end to end on real models, MindSpore Lite and MongoDB:
annotate with logits, measure, fit and store, apply with calibrated=True, and every bad input refused with one
line and nothing written."""
import json

import fiftyone as fo
import numpy as np
import pytest
from helpers.cli import cli
from PIL import Image

from fiftyone_mslite import confidence as cm
from fiftyone_mslite.catalog import registry
from fiftyone_mslite.catalog.registry import catalog
from fiftyone_mslite.catalog.user import read_user_catalog, write_user_catalog
from fiftyone_mslite.errors import CalibrationError
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.confidence import calibrate_confidence, conformal_sets, tune_thresholds
from fiftyone_mslite.integration.evaluation import evaluate
from fiftyone_mslite.integration.model import load_model
from fiftyone_mslite.integration.views import save_low_confidence_view

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon"]
TRUE_TEMPERATURE = 0.5  # ground truth is drawn from softmax(logits / 0.5): the tiny model is under-confident


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(3)
    paths = []
    for i in range(240):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _forget_fits(model: str) -> None:
    """Drop stored calibrations and thresholds of `model` from the user catalog (each test starts without)."""
    data = read_user_catalog()
    entry = data["models"][model]
    entry["facts"] = [f for f in entry.get("facts", []) if f["field"] not in ("confidence_calibration",
                                                                               "class_thresholds")]
    write_user_catalog(data)
    registry.reset()


@pytest.fixture
def labeled(tiny_model, images, fresh_catalog):
    """240 tiny-model predictions with logits, ground truth drawn from a sharper softmax of the same logits."""
    _forget_fits(tiny_model)
    ds = fo.Dataset()
    ds.persistent = True  # the CLI tests read it from another process
    ds.add_samples([fo.Sample(filepath=str(p)) for p in images])
    annotate(ds, tiny_model, "pred", store_logits=True, progress=False)
    rng = np.random.default_rng(0)
    logits = np.asarray(ds.values("pred.logits"))
    truth = [NAMES[rng.choice(5, p=p)] for p in cm.softmax(logits, TRUE_TEMPERATURE)]
    ds.set_values("ground_truth", [fo.Classification(label=t) for t in truth])
    yield ds
    ds.delete()


def _ok(*args: str):
    out = cli(*args)
    assert out.returncode == 0, out.stderr
    return out


def _facts(model: str) -> dict:
    return {f.field: f.value for f in catalog().model(model).facts}


def test_evaluate_reports_calibration_and_a_diagram(labeled, tmp_path):
    summary = evaluate(labeled, "pred", classes=NAMES, bins=10, diagram=str(tmp_path / "rel.png"))
    data = labeled.values(["pred.confidence", "pred.label", "ground_truth.label", "pred.logits"])
    conf, pred, truth, logits = (np.asarray(v, dtype=object if k in (1, 2) else float) for k, v in enumerate(data))
    ece, mce = cm.calibration_errors(conf.astype(float), pred == truth, bins=10)
    assert (summary.ece, summary.mce) == (pytest.approx(ece), pytest.approx(mce))
    targets = np.asarray([NAMES.index(t) for t in truth])
    assert summary.nll == pytest.approx(cm.nll(cm.softmax(logits), targets))
    assert summary.brier == pytest.approx(cm.brier_score(cm.softmax(logits), targets))
    table = summary.calibration["reliability"]
    assert sum(b["count"] for b in table) == len(labeled) and len(table) == 10
    assert Image.open(summary.calibration["diagram"]).size[0] > 100
    assert set(summary.calibration["per_class_ece"]) == set(pred)
    stored = labeled.load_run_results("eval_calibration").report  # what the App's reliability operator reads
    assert stored["ece"] == pytest.approx(ece)


def test_fit_store_and_apply_temperature(labeled, tiny_model):
    fit = calibrate_confidence(labeled, tiny_model, "pred", view=None)
    assert fit.fit_samples == fit.held_out_samples == 120
    assert 0.3 < fit.scaling["temperature"] < 0.8  # recovers the sharper truth, roughly
    assert fit.after["ece"] < fit.before["ece"] and fit.after["nll"] < fit.before["nll"]
    assert fit.after["accuracy"] == fit.before["accuracy"]  # temperature never changes the top class
    fact = _facts(tiny_model)["confidence_calibration"]
    assert fact["dataset"] == labeled.name and fact["samples"] == 240 and fact["ece_after"] == fit.after["ece"]
    assert fact["date"] and fact["scaling"] == fit.scaling

    # a calibrated run of the same field is refused (never mixed), and works into a new field
    with pytest.raises(Exception, match="already holds labels"):
        annotate(labeled, tiny_model, "pred", store_logits=True, progress=False, calibrated=True)
    annotate(labeled, tiny_model, "cal", store_logits=True, progress=False, calibrated=True)
    raw, cal = labeled.values("pred"), labeled.values("cal")
    t = fit.scaling["temperature"]
    for r, c in zip(raw[:20], cal[:20]):
        assert c.label == r.label and np.allclose(c.logits, r.logits)  # logits stay raw
        assert c.confidence == pytest.approx(cm.softmax(np.asarray(r.logits), t).max(), rel=1e-5)
    assert labeled.get_run_info("mslite_cal").config.settings["calibration"]["scaling"] == fit.scaling

    # the confidence views of the calibrated field filter on calibrated confidences, and say so
    low = save_low_confidence_view(labeled, "cal", 0.5)
    calibrated = np.asarray(labeled.values("cal.confidence"))
    assert len(low) == int((calibrated < 0.5).sum()) != int((np.asarray(labeled.values("pred.confidence")) < 0.5).sum())
    assert "calibrated confidence < 0.5" in labeled.get_saved_view_info("cal-low-confidence")["description"]
    save_low_confidence_view(labeled, "pred", 0.5)
    assert "pred labels with confidence <" in labeled.get_saved_view_info("pred-low-confidence")["description"]

    # evaluating the calibrated field: Brier and NLL of the calibrated probabilities, not of the raw logits
    ev = evaluate(labeled, "cal", classes=NAMES, eval_key="ev_cal")
    targets = np.asarray([NAMES.index(t) for t in labeled.values("ground_truth.label")])
    assert ev.nll == pytest.approx(cm.nll(cm.softmax(np.asarray(labeled.values("pred.logits")), t), targets))

    model = load_model(tiny_model, calibrated=True)  # apply_model path: the same labels
    first = labeled.limit(8)
    first.apply_model(model, "applied", store_logits=True)
    assert [a.confidence for a in first.values("applied")] == pytest.approx(
        [c.confidence for c in first.values("cal")], rel=1e-5)

    import fiftyone.operators as foo  # the App's apply-model operator, "Calibrated confidences" ticked

    from fiftyone_mslite.integration.zoo import install_plugin

    install_plugin()
    done = foo.execute_operator("@fiftyone-mslite/mslite/apply_model", ctx={
        "dataset": labeled.name, "view": first, "params": {"model": tiny_model, "label_field": "app_cal",
                                                            "calibrated": True, "store_logits": True}})
    assert done.error is None, done.error_message
    assert [a.confidence for a in first.values("app_cal")] == pytest.approx(
        [c.confidence for c in first.values("cal")], rel=1e-5)


def test_cli_calibrate_and_predict(labeled, tiny_model, images):
    labeled.save_view("first-200", labeled.limit(200))
    out = _ok("models", "calibrate-confidence", tiny_model, "--dataset", labeled.name, "--pred", "pred",
              "--view", "first-200", "--method", "vector", "--json")
    fit = json.loads(out.stdout)
    assert fit["method"] == "vector" and len(fit["scaling"]["weights"]) == 5 and fit["written"]
    registry.reset()
    fact = _facts(tiny_model)["confidence_calibration"]
    assert (fact["view"], fact["samples"], fact["fit_samples"]) == ("first-200", 200, 100)
    raw = json.loads(_ok("predict", tiny_model, str(images[0]), "--json").stdout.splitlines()[0])
    cal = json.loads(_ok("predict", tiny_model, str(images[0]), "--calibrated", "--json").stdout.splitlines()[0])
    logits = np.asarray(labeled.match(fo.ViewField("filepath") == str(images[0])).first().pred.logits)
    probs = cm.Scaling.from_dict(fit["scaling"]).probabilities(logits[None])[0]
    assert cal["top_k"][0]["confidence"] == pytest.approx(probs.max(), abs=1e-5)
    assert raw["top_k"][0]["confidence"] == pytest.approx(cm.softmax(logits).max(), abs=1e-5)

    ev = json.loads(_ok("evaluate", "--dataset", labeled.name, "--pred", "pred", "--binning", "mass",
                            "--json").stdout)
    assert {"ece", "mce", "brier", "nll"} <= set(ev) and ev["calibration"]["binning"] == "mass"
    text = _ok("evaluate", "--dataset", labeled.name, "--pred", "pred").stdout
    assert f"calibration: ECE {ev['calibration']['ece_equal_width']:.4f}" in text

    sets = json.loads(_ok("conformal", "--dataset", labeled.name, "--pred", "pred", "--coverage", "0.8",
                          "--json").stdout)
    assert sets["sets_field"] == "pred_set" and sets["review_view"] == "pred_set-needs-review"
    suggestion = _ok("models", "thresholds", tiny_model, "--dataset", labeled.name, "--pred", "pred",
                     "--target-precision", "0.5").stdout
    assert "of predictions at precision" in suggestion or "no threshold reaches" in suggestion


def test_conformal_sets_cover_and_feed_a_review_view(labeled, tiny_model):
    result = conformal_sets(labeled, "pred", coverage=0.9, penalty=0.0)
    assert result.fit_samples == result.held_out_samples == 120
    assert result.empirical_coverage >= 0.8  # 0.9 within sampling error on 120 samples
    assert 1 <= result.mean_set_size <= 5
    sets = labeled.values("pred_set")
    assert all(isinstance(s, fo.Classifications) and s.classifications for s in sets)
    truth = labeled.values("ground_truth.label")
    covered = np.mean([t in {c.label for c in s.classifications} for s, t in zip(sets, truth)])
    assert covered >= 0.8
    review = labeled.load_saved_view("pred_set-needs-review")
    assert len(review) == result.needs_review == sum(len(s.classifications) > 1 for s in sets)


def test_bad_input_is_one_line_and_writes_nothing(labeled, tiny_model, fresh_catalog):
    before = _facts(tiny_model)
    no_truth = labeled.exclude_fields("ground_truth")
    with pytest.raises(CalibrationError, match="ground truth"):
        calibrate_confidence(labeled.match(fo.ViewField("ground_truth") == None), tiny_model, "pred")  # noqa: E711
    with pytest.raises(CalibrationError, match="no label field 'ground_truth'|ground truth"):
        calibrate_confidence(no_truth, tiny_model, "pred")
    labeled.clone_sample_field("pred", "nologits")
    labeled.set_values("nologits.logits", [None] * len(labeled))
    with pytest.raises(CalibrationError, match="store_logits=True"):
        calibrate_confidence(labeled, tiny_model, "nologits")
    with pytest.raises(CalibrationError, match="at least 50"):
        calibrate_confidence(labeled.limit(60), tiny_model, "pred")
    with pytest.raises(CalibrationError, match="predicted by model 'tiny', not 'coral-mobilenet-v2-quant'"):
        calibrate_confidence(labeled, "coral-mobilenet-v2-quant", "pred")
    labeled.set_values("odd_truth", [fo.Classification(label="zebra")] * len(labeled))
    with pytest.raises(CalibrationError, match="'zebra'"):
        calibrate_confidence(labeled, tiny_model, "pred", gt_field="odd_truth")
    with pytest.raises(CalibrationError, match="'zebra'"):
        conformal_sets(labeled, "pred", "odd_truth", model=tiny_model)
    assert _facts(tiny_model) == before and not labeled.has_sample_field("pred_set")
    with pytest.raises(CalibrationError, match="no stored confidence calibration"):
        load_model(tiny_model, calibrated=True)
    out = cli("models", "calibrate-confidence", tiny_model, "--dataset", labeled.name, "--pred", "nologits", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["error"] == "CalibrationError"
    single = tune_thresholds(labeled, tiny_model, "pred", target_precision=0.5)
    assert single.suggested_threshold["target_precision"] == 0.5 and not single.written


@pytest.fixture
def tiny_multi(tmp_path_factory, fresh_catalog):
    """The tiny net as a 5-class multi-label model (its softmax outputs read as per-class scores)."""
    from helpers.onnx_graphs import TinyNet

    from fiftyone_mslite.catalog.user import add_model

    folder = tmp_path_factory.mktemp("tiny_multi")
    labels = folder / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    add_model("tiny-multi", str(TinyNet.random(seed=0).save(folder / "tiny.onnx")), str(labels), task="multi",
              resize="squash", crop_fraction=1.0)
    return "tiny-multi"


def test_multilabel_thresholds_tuned_stored_and_applied(tiny_multi, images):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in images[:120]])
    annotate(ds, tiny_multi, "pred", store_logits=True, progress=False)
    scores = 1 / (1 + np.exp(-np.asarray(ds.values("pred.logits"))))
    rng = np.random.default_rng(4)  # class k is present with probability 3 x its score
    truth = [[NAMES[k] for k in range(5) if rng.random() < min(1.0, 3 * s[k])] for s in scores]
    ds.set_values("ground_truth", [fo.Classifications(classifications=[fo.Classification(label=t) for t in ts])
                                   for ts in truth])

    tuned = tune_thresholds(ds, tiny_multi, "pred")
    assert set(tuned.thresholds) == set(NAMES) and tuned.written
    for k, name in enumerate(NAMES):
        positive = np.array([name in ts for ts in truth])
        if positive.any():  # what the tuner found is the best F1 over every cut of this class's scores
            expected = cm.tune_threshold(scores[:, k], positive)
            assert tuned.per_class[name]["f1"] == pytest.approx(expected.f1)
            assert tuned.thresholds[name] == pytest.approx(expected.threshold)
    assert _facts(tiny_multi)["class_thresholds"]["thresholds"] == tuned.thresholds

    annotate(ds, tiny_multi, "tuned", store_logits=True, progress=False, calibrated=True)
    t = np.asarray([tuned.thresholds[n] for n in NAMES])
    for row, label in zip(scores[:20], ds.values("tuned")[:20]):
        kept = {c.label for c in label.classifications}
        assert kept == {NAMES[k] for k in np.flatnonzero(row >= t - 1e-6)}
    precise = tune_thresholds(ds, tiny_multi, "pred", target_precision=0.9, write=False)
    assert all(v["precision"] >= 0.9 for v in precise.per_class.values()) and not precise.written
    ds.delete()


def test_demo_thresholds_import(shared_dir, mirror, fresh_catalog, tmp_path):
    from fiftyone_mslite.integration.confidence import import_thresholds

    tsv = shared_dir / "labels" / "openimages-410-mindspore-demo.tsv"
    result = import_thresholds("mobilenetv2-openimages", tsv)
    stored = _facts("mobilenetv2-openimages")["class_thresholds"]
    assert len(stored["thresholds"]) == 410 and stored["thresholds"]["Herd"] == 0.23 and stored["file"] == str(tsv)
    assert result.method == "imported"
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tlabel\tthreshold\n0\tZebra\t0.5\n")
    with pytest.raises(CalibrationError, match="'Zebra' at index 0"):
        import_thresholds("mobilenetv2-openimages", bad)
    out = cli("models", "thresholds", "mobilenetv2-openimages", "--import", str(bad), "--json")
    assert out.returncode == 1 and "Zebra" in json.loads(out.stdout)["message"]
    assert _facts("mobilenetv2-openimages")["class_thresholds"] == stored  # the bad file changed nothing
    registry.reset()
    data = read_user_catalog()
    del data["models"]["mobilenetv2-openimages"]  # back to the built-in entry
    write_user_catalog(data)


@pytest.mark.shared
def test_real_model_flow(imagenet_dir, tv_mobilenet, tmp_path, fresh_catalog):
    """tv-mobilenet-v2 on 150 real ImageNet images: evaluate measures, the fit improves held-out NLL, the CLI text
    says so, calibrated labels follow the fitted temperature, and conformal sets cover the truth."""
    from fiftyone_mslite.integration.datasets import import_directory

    files = sorted(imagenet_dir.glob("*.JPEG"))
    for f in files[:: len(files) // 150][:150]:
        (tmp_path / f.name).symlink_to(f)
    ds = import_directory("mslite-confidence-real", tmp_path, labels_from="filename-synset", overwrite=True)
    _forget_fits(tv_mobilenet)
    try:
        annotate(ds, tv_mobilenet, "pred", store_logits=True, progress=False)
        summary = evaluate(ds, "pred")
        assert 0 < summary.ece < 0.5 and summary.nll is not None and summary.brier is not None

        out = _ok("models", "calibrate-confidence", tv_mobilenet, "--dataset", ds.name, "--pred", "pred")
        assert "held-out: ECE" in out.stdout and "apply with --calibrated" in out.stdout
        registry.reset()  # the CLI wrote the user catalog
        fact = _facts(tv_mobilenet)["confidence_calibration"]
        assert fact["fit_samples"] == fact["held_out_samples"] == 75
        assert fact["nll_after"] <= fact["nll_before"]

        annotate(ds, tv_mobilenet, "cal", store_logits=True, progress=False, calibrated=True)
        t = fact["scaling"]["temperature"]
        for raw, cal in zip(ds.values("pred")[:10], ds.values("cal")[:10]):
            assert cal.label == raw.label
            assert cal.confidence == pytest.approx(cm.softmax(np.asarray(raw.logits), t).max(), rel=1e-4)

        sets = conformal_sets(ds, "pred", coverage=0.9, seed=1)
        assert sets.written_samples == 150 and sets.empirical_coverage >= 0.8 and sets.mean_set_size >= 1
    finally:
        ds.delete()

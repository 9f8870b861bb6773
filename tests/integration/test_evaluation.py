"""Single- and multi-label evaluation against hand-computed numbers (real FiftyOne + MongoDB)."""
import json

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_mslite.integration.evaluation import confusion_view, evaluate, evaluate_multilabel

CLASSES = ["a", "b", "c"]
# ground truth, logits (in CLASSES order); prediction = argmax, confidence = softmax max
SINGLE = [
    ("a", [3, 1, 0]),  # a: right
    ("a", [1, 2, 0]),  # b: wrong; a is 2nd → right at top-2
    ("b", [0, 5, 1]),  # b: right
    ("c", [4, 1, 2]),  # a: wrong; c is 2nd → right at top-2
    ("c", [0, 0, 1]),  # c: right
    ("b", [5, 0, 1]),  # a: wrong; b is 3rd → wrong at top-2
]


def _softmax(logits):
    e = np.exp(np.asarray(logits, float))
    return e / e.sum()


@pytest.fixture
def single() -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(
        filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label=gt),
        pred=fo.Classification(label=CLASSES[int(np.argmax(lg))], confidence=float(_softmax(lg).max()),
                               logits=np.asarray(lg, float)))
        for i, (gt, lg) in enumerate(SINGLE)])
    return ds


def test_accuracy_report_and_run(single):
    summary = evaluate(single, "pred", num_confident_mistakes=2)
    assert summary.accuracy == pytest.approx(3 / 6) and summary.num_mistakes == 3 and summary.num_samples == 6
    # predicted a: samples 0, 3, 5 (1 right); b: 1, 2 (1 right); c: 4 (right). Truth a: 0, 1; b: 2, 5; c: 3, 4
    expected = {"a": (1 / 3, 1 / 2, 2), "b": (1 / 2, 1 / 2, 2), "c": (1.0, 1 / 2, 2)}
    for label, (precision, recall, support) in expected.items():
        row = summary.report[label]
        assert (row["precision"], row["recall"], row["support"]) == (pytest.approx(precision), recall, support)
    assert summary.top_k is None and summary.top_k_accuracy is None

    assert single.list_evaluations() == ["eval"]  # what the App's Model Evaluation panel lists
    assert single.load_evaluation_results("eval").metrics()["accuracy"] == pytest.approx(0.5)
    assert single.values("eval") == [True, False, True, False, True, False]

    # the two most confident mistakes, most confident first, as JSON-ready rows
    mistakes = summary.to_dict()["confident_mistakes"]
    rows = [(m["filepath"], m["gt"], m["pred"]) for m in mistakes]
    assert rows == [("/img/5.jpg", "b", "a"), ("/img/3.jpg", "c", "a")]
    assert mistakes[0]["confidence"] == pytest.approx(_softmax([5, 0, 1]).max())
    json.dumps(summary.to_dict())


def test_mistakes_view_saved_and_ordered(single):
    evaluate(single, "pred", eval_key="run1")
    view = fo.load_dataset(single.name).load_saved_view("run1-mistakes")
    confidences = view.values("pred.confidence")
    assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True)
    assert set(view.values("run1")) == {False}


def test_top_k_with_logits(single):
    summary = evaluate(single, "pred", top_k=2, classes=CLASSES)
    assert summary.accuracy == pytest.approx(3 / 6)
    assert summary.top_k_accuracy == pytest.approx(5 / 6) and summary.top_k_eval_key == "eval_top2"
    assert sorted(single.list_evaluations()) == ["eval", "eval_top2"]
    assert single.values("eval_top2") == [True, True, True, True, True, False]
    assert single.get_evaluation_info("eval_top2").config.method == "top-k"


def test_top_k_classes_from_dataset(single):
    single.classes["pred"] = CLASSES
    single.save()
    assert evaluate(single, "pred", top_k=1).top_k_accuracy == pytest.approx(3 / 6)


def test_top_k_needs_classes_and_logits(single):
    with pytest.raises(ValueError, match=r"classes of 'pred' in logit order: pass classes="):
        evaluate(single, "pred", top_k=2)
    with pytest.raises(ValueError, match="'pred.logits' have 3 entries but 1 classes"):
        evaluate(single, "pred", top_k=2, classes=["a"])
    sample = single.first()
    sample.pred.logits = None
    sample.save()
    with pytest.raises(ValueError, match=r"1 sample\(s\) have no 'pred.logits'.*store_logits=True"):
        evaluate(single, "pred", top_k=2, classes=CLASSES)


def test_rerun_replaces_run(single):
    evaluate(single, "pred")
    sample = single.first()
    sample.pred.label = "b"  # now wrong
    sample.save()
    summary = evaluate(single, "pred")
    assert summary.num_mistakes == 4 and single.list_evaluations() == ["eval"]
    assert len(single.load_saved_view("eval-mistakes")) == 4


def test_evaluate_a_view(single):
    view = single.match(fo.ViewField("ground_truth.label") == "c")
    summary = evaluate(view, "pred", eval_key="only_c")
    assert (summary.num_samples, summary.accuracy, summary.num_mistakes) == (2, 0.5, 1)
    assert single.load_saved_view("only_c-mistakes").values("filepath") == ["/img/3.jpg"]


def test_confusion_view(single):
    evaluate(single, "pred")
    assert confusion_view(single, "eval", "c", "a").values("filepath") == ["/img/3.jpg"]
    assert len(confusion_view(single, "eval", "a", "c")) == 0
    confusion_view(single, "eval", "b", "a", save=True)
    assert fo.load_dataset(single.name).load_saved_view("eval-b-as-a").values("filepath") == ["/img/5.jpg"]


def test_bad_fields(single):
    single.add_sample_field("multi", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classifications)
    with pytest.raises(ValueError, match=r"prediction field 'multi' holds Classifications.*evaluate_multilabel"):
        evaluate(single, "multi")
    with pytest.raises(ValueError, match=r"ground truth field: .*no label field 'gt' \(label fields: .*pred"):
        evaluate(single, "pred", gt_field="gt")
    assert single.list_evaluations() == []


# --- multi-label ---------------------------------------------------------------------------------------------

# (ground truth, predictions) per sample
MULTI = [
    (["cat", "dog"], ["cat"]),         # tp cat; fn dog
    (["dog"], ["dog", "car"]),         # tp dog; fp car
    ([], ["car"]),                     # fp car
    (["car", "cat"], []),              # fn car, cat
    (["cat"], ["cat"]),                # tp cat
]
# per class (tp, fp, fn): cat (2, 0, 1), dog (1, 0, 1), car (0, 2, 1) → totals (3, 2, 3)


def _labels(names, conf=0.8):
    return fo.Classifications(classifications=[fo.Classification(label=n, confidence=conf) for n in names])


@pytest.fixture
def multi() -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=_labels(gt), pred=_labels(pr))
                    for i, (gt, pr) in enumerate(MULTI)])
    return ds


def test_multilabel_metrics(multi):
    s = evaluate_multilabel(multi, "pred", "ground_truth")
    assert (s.tp, s.fp, s.fn, s.num_samples) == (3, 2, 3, 5)
    assert s.micro_precision == pytest.approx(3 / 5) and s.micro_recall == pytest.approx(3 / 6)
    assert s.micro_f1 == pytest.approx(2 * 0.6 * 0.5 / 1.1)
    cat, dog, car = (s.per_class[n] for n in ("cat", "dog", "car"))
    assert (cat.precision, cat.recall, cat.f1, cat.support) == (1.0, pytest.approx(2 / 3), pytest.approx(0.8), 3)
    assert (dog.precision, dog.recall, dog.f1, dog.support) == (1.0, 0.5, pytest.approx(2 / 3), 2)
    assert (car.precision, car.recall, car.f1, car.support, car.fp) == (0.0, 0.0, 0.0, 1, 2)
    assert s.macro_f1 == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    assert s.macro_precision == pytest.approx(2 / 3) and s.macro_recall == pytest.approx((2 / 3 + 0.5) / 3)
    assert s.samples_with_errors == 4
    json.dumps(s.to_dict())


def test_multilabel_matches_sklearn(multi):
    skm = pytest.importorskip("sklearn.metrics")
    from sklearn.preprocessing import MultiLabelBinarizer

    s = evaluate_multilabel(multi, "pred", "ground_truth")
    binarizer = MultiLabelBinarizer(classes=sorted(s.per_class)).fit([])
    y_true = binarizer.transform([gt for gt, _ in MULTI])
    y_pred = binarizer.transform([pr for _, pr in MULTI])
    for average in ("micro", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        assert (getattr(s, f"{average}_precision"), getattr(s, f"{average}_recall"), getattr(s, f"{average}_f1")) \
            == (pytest.approx(p), pytest.approx(r), pytest.approx(f))
    f1s = skm.f1_score(y_true, y_pred, average=None, zero_division=0)
    assert [s.per_class[c].f1 for c in binarizer.classes_] == pytest.approx(list(f1s))


def test_multilabel_sample_fields(multi):
    evaluate_multilabel(multi, "pred", "ground_truth")
    def names(field):
        return [[c.label for c in v.classifications] for v in multi.values(field)]

    assert names("eval_ml_tp") == [["cat"], ["dog"], [], [], ["cat"]]
    assert names("eval_ml_fp") == [[], ["car"], ["car"], [], []]
    assert names("eval_ml_fn") == [["dog"], [], [], ["car", "cat"], []]
    assert multi.values("eval_ml_fp_count") == [0, 1, 1, 0, 0]
    assert multi.values("eval_ml_fn_count") == [1, 0, 0, 2, 0]
    assert multi.values("eval_ml_tp.classifications.confidence")[0] == [0.8]  # predictions keep their confidence
    # every label carries its outcome, so the App can filter e.g. false positives
    assert multi.values("pred.classifications.eval_ml") == [["tp"], ["tp", "fp"], ["fp"], [], ["tp"]]
    assert multi.values("ground_truth.classifications.eval_ml") == [["tp", "fn"], ["tp"], [], ["fn", "fn"], ["tp"]]

    reloaded = fo.load_dataset(multi.name)
    errors = reloaded.load_saved_view("eval_ml-errors")
    assert errors.values("filepath")[0] == "/img/3.jpg"  # most errors first
    assert sorted(errors.values("filepath")) == ["/img/0.jpg", "/img/1.jpg", "/img/2.jpg", "/img/3.jpg"]
    assert "eval_ml" in reloaded.list_runs()
    assert reloaded.load_run_results("eval_ml").summary["micro_f1"] == pytest.approx(6 / 11)


def test_multilabel_restricted_classes(multi):
    s = evaluate_multilabel(multi, "pred", "ground_truth", eval_key="pets", classes=["cat", "dog", "bird"])
    assert list(s.per_class) == ["cat", "dog", "bird"]  # bird has no support: reported as zeros
    assert (s.tp, s.fp, s.fn) == (3, 0, 2)
    assert s.macro_f1 == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    assert multi.values("pred.classifications.pets")[1] == ["tp", None]  # car is out of scope


def test_multilabel_single_label_fields():
    """A Classification ground truth counts as one label: the multi-label scores of a single-label dataset."""
    ds = fo.Dataset()
    ds.add_samples([
        fo.Sample(filepath="/img/0.jpg", ground_truth=fo.Classification(label="cat"), pred=_labels(["cat", "dog"])),
        fo.Sample(filepath="/img/1.jpg", ground_truth=fo.Classification(label="dog"), pred=_labels([])),
    ])
    s = evaluate_multilabel(ds, "pred", "ground_truth")
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert ds.values("ground_truth.eval_ml") == ["tp", "fn"]


def test_multilabel_missing_field(multi):
    with pytest.raises(ValueError, match=r"prediction field: .*no label field 'preds'"):
        evaluate_multilabel(multi, "preds", "ground_truth")


def test_top_k_background_logit():
    """1001-output ImageNet models: one logit more than the labels, index 0 = background."""
    names = ["background", "x", "y"]
    rows = [("x", [9, 1, 0]), ("y", [9, 0, 1]), ("y", [5, 4, 0])]  # top-2: right, right, wrong
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/img/{i}.jpg", ground_truth=fo.Classification(label=gt),
                              pred=fo.Classification(label=names[int(np.argmax(lg))], confidence=0.9,
                                                     logits=np.asarray(lg, float)))
                    for i, (gt, lg) in enumerate(rows)])
    assert evaluate(ds, "pred", top_k=2, classes=["x", "y"]).top_k_accuracy == pytest.approx(2 / 3)


def test_top_k_classes_from_annotate_run(single, tmp_path):
    """annotate() records the model's label set in its run; top-k evaluation then needs no classes=."""
    labels = tmp_path / "abc.txt"
    labels.write_text("a\nb\nc\n")
    config = single.init_run(method="annotate", label_field="pred", settings={"labels": str(labels)})
    single.register_run("mslite_pred", config)
    assert evaluate(single, "pred", top_k=2).top_k_accuracy == pytest.approx(5 / 6)


def test_apply_model_then_evaluate(tiny_model, tmp_path):
    """End to end: import a folder tree, apply the tiny 5-class model with logits, evaluate with top-k."""
    from PIL import Image

    from fiftyone_mslite.integration.datasets import import_directory
    from fiftyone_mslite.integration.model import load_model

    rng = np.random.default_rng(0)
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for i in range(10):
        folder = tmp_path / names[i % 5]
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ds = import_directory("tiny-eval", tmp_path, persistent=False, overwrite=True)
    model = load_model(tiny_model)
    ds.apply_model(model, "pred", store_logits=True)

    gts, preds, logits = ds.values(["ground_truth.label", "pred.label", "pred.logits"])
    in_top2 = [names.index(gt) in np.argsort(lg)[-2:] for gt, lg in zip(gts, logits)]
    summary = evaluate(ds, "pred", top_k=2, classes=list(model.labels.names))
    assert summary.accuracy == pytest.approx(np.mean([g == p for g, p in zip(gts, preds)]))
    assert summary.top_k_accuracy == pytest.approx(np.mean(in_top2))
    assert summary.num_mistakes == sum(g != p for g, p in zip(gts, preds))
    assert sorted(ds.list_evaluations()) == ["eval", "eval_top2"]
    # without classes=: the catalog's 'tiny' labels are the one list that explains the stored predictions
    assert evaluate(ds, "pred", top_k=2).top_k_accuracy == summary.top_k_accuracy


def test_top_k_leaves_out_samples_without_a_prediction_and_says_so(single):
    """Issue 20: after `annotate --threshold`, samples below it have no prediction and no logits. FiftyOne's top-k
    counts them as misses (5/8 here); they are left out of top-k (5/6) and the summary says how many. Top-1 still
    counts them as wrong (3/8), and says so."""
    from click.testing import CliRunner

    from fiftyone_mslite.cli import main

    single.add_samples([fo.Sample(filepath=f"/img/unsure{i}.jpg", ground_truth=fo.Classification(label="a"))
                        for i in range(2)])
    summary = evaluate(single, "pred", top_k=2, classes=CLASSES)
    assert summary.accuracy == pytest.approx(3 / 8) and summary.unpredicted == 2
    assert summary.top_k_accuracy == pytest.approx(5 / 6) and summary.top_k_samples == 6
    assert single.values("eval_top2") == [True, True, True, True, True, False, None, None]
    single.persistent = True
    single.classes["pred"] = CLASSES
    single.save()
    text = CliRunner().invoke(main, ["evaluate", "--dataset", single.name, "--pred", "pred", "--top-k", "2"])
    assert text.exit_code == 0, text.output
    assert ("accuracy 37.5% (the 2 samples without a prediction count as wrong), top-2 83.3% over the 6 samples "
            "with a prediction (the 2 without one have no logits, e.g. below the threshold at annotate time: "
            "not counted)") in text.output
    single.delete()

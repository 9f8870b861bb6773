"""FiftyOne Brain on annotate's outputs: real ImageNet images, a real MindSpore Lite model, real FiftyOne Brain.

Ground truth is corrupted on purpose on a few samples the model classifies confidently and correctly: those must
come out on top of the likely-label-mistakes view."""
import json

import fiftyone as fo
import pytest
from helpers.cli import cli

from fiftyone_mslite.errors import DatasetError
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.brain import run_brain, visualization_method
from fiftyone_mslite.integration.datasets import import_directory


@pytest.fixture(scope="module")
def labeled(tmp_path_factory, imagenet_dir, tv_mobilenet):
    """60 ImageNet samples annotated with logits and embeddings; 3 confident, correct ones relabeled wrongly."""
    folder = tmp_path_factory.mktemp("brain-images")
    for path in sorted(imagenet_dir.glob("*.JPEG"))[::16][:60]:
        (folder / path.name).symlink_to(path)
    ds = import_directory("brain-test", folder, labels_from="filename-synset", label_set="imagenet-1000",
                          overwrite=True)
    annotate(ds, tv_mobilenet, "pred", store_logits=True, embeddings_field="emb", progress=False)
    right = ds.match(fo.ViewField("pred.label") == fo.ViewField("ground_truth.label"))
    ids = right.sort_by("pred.confidence", reverse=True).limit(3).values("id")
    corrupted = ds.select(ids, ordered=True)  # fixed before relabeling: `right` no longer matches them after
    wrong = sorted(set(ds.values("ground_truth.label")) - set(corrupted.values("ground_truth.label")))[:3]
    corrupted.set_values("ground_truth.label", wrong)
    return ds, set(ids)


def test_run_brain_finds_corrupted_labels_and_saves_views(labeled):
    ds, corrupted = labeled
    summary = run_brain(ds, "pred", "ground_truth")
    assert summary.embeddings_field == "emb"  # found from the annotate run
    assert summary.visualization_method == visualization_method() == "tsne"  # umap-learn is not installed here
    assert set(ds.list_brain_runs()) >= set(summary.brain_keys.values()) == {
        "pred_mistakenness", "pred_hardness", "pred_uniqueness", "pred_viz", "pred_sim"}
    assert set(summary.views.values()) == {"pred-likely-label-mistakes", "pred-hardest", "pred-unique"}
    assert set(ds.list_saved_views()) >= set(summary.views.values())
    mistakes = ds.load_saved_view("pred-likely-label-mistakes")
    assert set(mistakes.limit(3).values("id")) == corrupted
    scores = mistakes.values("pred_mistakenness")
    assert scores == sorted(scores, reverse=True) and len(scores) == summary.likely_label_mistakes
    assert [m["mistakenness"] for m in summary.top_likely_mistakes] == [round(s, 4) for s in scores[:5]]
    hardness = ds.load_saved_view("pred-hardest").values("pred_hardness")
    assert len(hardness) == len(ds) and hardness == sorted(hardness, reverse=True)
    assert len(ds.load_saved_view("pred-unique")) == len(ds)
    viz = ds.load_brain_results("pred_viz")
    assert viz.points.shape == (len(ds), 2)
    first = ds.first()
    assert ds.sort_by_similarity(first.id, k=1, brain_key="pred_sim").values("id") == [first.id]


def test_field_without_logits_says_to_reannotate(labeled, tv_mobilenet):
    ds, _ = labeled
    annotate(ds, tv_mobilenet, "bare", progress=False)
    with pytest.raises(DatasetError, match=r"field 'bare' has no logits on 60 .*store_logits"):
        run_brain(ds, "bare")
    assert not ds.has_field("bare_mistakenness")  # refused before any work


def test_cli_evaluate_brain(labeled):
    ds, _ = labeled
    ds.persistent = True
    result = cli("evaluate", "--dataset", ds.name, "--pred", "pred", "--brain", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["mistakes_view"] == "eval-mistakes" and data["brain"]["likely_label_mistakes"] >= 3
    assert data["brain"]["views"]["uniqueness"] == "pred-unique"
    text = cli("evaluate", "--dataset", ds.name, "--pred", "pred", "--brain")
    assert "likely label mistakes" in text.stdout and "2-D map by tsne" in text.stdout, text.stdout + text.stderr


@pytest.fixture
def demo_dataset():
    """The demo's dataset, deleted afterwards: other tests expect to build it themselves."""
    yield "mslite-demo-imagenet"
    if fo.dataset_exists("mslite-demo-imagenet"):
        fo.load_dataset("mslite-demo-imagenet").delete()


def test_demo_brain_prints_the_top_likely_label_mistakes(shared_dir, demo_dataset):
    run = cli("demo", "--limit", "60", "--brain", "--json", FIFTYONE_MSLITE_SHARED=str(shared_dir))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    data = json.loads(run.stdout)
    brain = data["brain"]
    assert brain["embeddings_field"] == "embeddings" and brain["visualization_method"] == "tsne"
    assert {"predictions-likely-label-mistakes", "predictions-hardest", "predictions-unique"} <= set(
        data["saved_views"])
    scores = [m["mistakenness"] for m in brain["top_likely_mistakes"]]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.75 for s in scores)
    text = cli("demo", "--limit", "60", "--brain", FIFTYONE_MSLITE_SHARED=str(shared_dir)).stdout
    assert "likely label mistakes" in text and "predictions-likely-label-mistakes" in text
    plain = cli("demo", "--limit", "60", "--json", FIFTYONE_MSLITE_SHARED=str(shared_dir))
    assert plain.returncode == 0 and json.loads(plain.stdout)["skipped"] == 60  # a plain rerun still resumes


def test_samples_without_a_prediction_are_not_likely_label_mistakes(labeled, tv_mobilenet):
    """Issue 20: below the annotate threshold a sample has no prediction (None); FiftyOne scores that as
    mistakenness 1.0, "confidently contradicting" its ground truth. Such samples are left unscored."""
    ds, corrupted = labeled
    annotate(ds, tv_mobilenet, "sure", store_logits=True, confidence_thresh=0.5, progress=False)
    unsure = ds.exists("sure", False).count()
    assert 0 < unsure < len(ds)
    ds.exists("sure", False).set_values("sure_mistakenness", [1.0] * unsure)  # a stale score from an earlier run
    summary = run_brain(ds, "sure", "ground_truth")
    mistakes = ds.load_saved_view("sure-likely-label-mistakes")
    assert mistakes.exists("sure", False).count() == 0 and summary.likely_label_mistakes == len(mistakes)
    assert None not in [m["pred"] for m in summary.top_likely_mistakes]
    assert ds.count("sure_mistakenness") == ds.count("sure")  # the unpredicted ones have no score
    assert any(f"{unsure} samples have no prediction" in note for note in summary.notes), summary.notes
    assert corrupted & set(mistakes.values("id"))  # the real mistakes are still found (if confident enough)

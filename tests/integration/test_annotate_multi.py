"""annotate() with several models in one pass: each file decoded once, each field exactly as if annotated alone
(labels, failures, resume, Ctrl-C, locks). Real FiftyOne + MongoDB + MindSpore Lite worker."""
import json
from collections import Counter
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
import test_annotate
from click.testing import CliRunner
from test_annotate import FAILING, _dataset, _good_files, _interrupt_at_batch, _locks_on

from fiftyone_mslite import pipeline
from fiftyone_mslite.classifier import Classifier
from fiftyone_mslite.cli import main
from fiftyone_mslite.errors import FieldLockedError, Interrupted
from fiftyone_mslite.integration.annotation import annotate, run_key
from fiftyone_mslite.integration.locks import FieldLock
from fiftyone_mslite.integration.model import load_model

bad_dir = test_annotate.bad_dir  # the odd and good image files of test_annotate, as this module's fixture


@pytest.fixture(scope="module")
def tiny_models(tiny_model, tmp_path_factory) -> list[str]:
    """'tiny', 'tiny-twin' (other weights, the same recipe: they share the tensor) and 'tiny-b' (another mean
    and std: it shares the decoded image only)."""
    from helpers.onnx_graphs import TinyNet

    from fiftyone_mslite.catalog.user import add_model

    folder = tmp_path_factory.mktemp("tiny-more")
    labels = folder / "labels.txt"
    labels.write_text("alpha\nbeta\ngamma\ndelta\nepsilon\n")
    add_model("tiny-twin", str(TinyNet.random(seed=3).save(folder / "twin.onnx")), str(labels), resize="squash",
              crop_fraction=1.0)
    add_model("tiny-b", str(TinyNet.random(seed=5).save(folder / "b.onnx")), str(labels), resize="squash",
              crop_fraction=1.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return [tiny_model, "tiny-twin", "tiny-b"]


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """Files the pipeline decodes, with how often."""
    counts: Counter = Counter()
    decode = pipeline.open_rgb

    def counting(path, *args, **kwargs):
        counts[path] += 1
        return decode(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "open_rgb", counting)
    return counts


@pytest.fixture
def prepares(monkeypatch) -> Counter:
    """Tensors prepared, by model name."""
    counts: Counter = Counter()
    prepare = Classifier.prepare

    def counting(self, *args, **kwargs):
        counts[self.entry.name] += 1
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "prepare", counting)
    return counts


def _fields(ds: fo.Dataset, field: str) -> list:
    return list(zip(ds.values(f"{field}.label"), ds.values(f"{field}.confidence"), ds.values(f"{field}.logits"),
                    ds.values(f"{field}_error")))


def _same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (label, conf, logits, error), (label2, conf2, logits2, error2) in zip(got, want):
        assert (label, conf, error) == (label2, conf2, error2)
        assert (logits is None) == (logits2 is None)
        if logits is not None:
            np.testing.assert_array_equal(logits, logits2)


def test_one_pass_labels_every_field_as_alone_and_decodes_each_file_once(tiny_models, bad_dir, decodes, prepares):
    fields = ["a", "twin", "b"]
    alone = _dataset(bad_dir.values())
    for name, field in zip(tiny_models, fields):
        annotate(alone, name, field, batch_size=4, store_logits=True, progress=False)
    decodes.clear()
    prepares.clear()
    ds = _dataset(bad_dir.values())
    summaries = annotate(ds, tiny_models, fields, batch_size=4, store_logits=True, progress=False)
    assert [s.label_field for s in summaries] == fields and [s.model for s in summaries] == tiny_models
    assert set(decodes) == {str(p) for p in bad_dir.values()} and set(decodes.values()) == {1}
    good = len(bad_dir) - len(FAILING)
    # 'tiny' and 'tiny-twin' share one tensor per image (made by either), 'tiny-b' makes its own
    assert prepares["tiny-b"] == good and prepares["tiny"] + prepares["tiny-twin"] == good
    for summary, field in zip(summaries, fields):
        assert (summary.processed, summary.failed) == (good, len(FAILING))
        _same(_fields(ds, field), _fields(alone, field))
        assert ds.get_run_info(run_key(field)).config.settings_hash == \
            alone.get_run_info(run_key(field)).config.settings_hash
    # a bad file fails in every field, with the same reason
    reasons = [{Path(f.filepath).stem: f.error for f in s.failures} for s in summaries]
    assert reasons[0] == reasons[1] == reasons[2] and len(reasons[0]) == len(FAILING)
    assert _locks_on(ds) == 0


def test_resume_is_per_field(tiny_models, bad_dir, decodes):
    first, _, other = tiny_models
    ds = _dataset(_good_files(bad_dir, 12))
    annotate(ds.limit(8), first, "a", batch_size=4, progress=False)
    decodes.clear()
    seen = []
    a, b = annotate(ds, [first, other], ["a", "b"], batch_size=4, progress=False,
                    on_progress=lambda done, total: seen.append((done, total)))
    assert (a.skipped, a.processed, b.skipped, b.processed) == (8, 4, 0, 12)
    assert sum(decodes.values()) == 12  # the 8 done for 'a' are decoded once, for 'b' only
    assert seen[0] == (8, 24) and seen[-1] == (24, 24)
    decodes.clear()
    a, b = annotate(ds, [first, other], ["a", "b"], batch_size=4, progress=False)
    assert (a.skipped, a.processed, b.skipped, b.processed) == (12, 0, 12, 0) and not decodes
    alone = _dataset(_good_files(bad_dir, 12))
    annotate(alone, other, "b", batch_size=4, progress=False)
    assert ds.values("b.label") == alone.values("b.label") and ds.count("a") == 12


def test_ctrl_c_keeps_every_fields_finished_labels(tiny_models, bad_dir, monkeypatch):
    first, _, other = tiny_models
    ds = _dataset(_good_files(bad_dir, 40))
    with load_model(first) as model_a, load_model(other) as model_b:
        _interrupt_at_batch(model_b, 3, monkeypatch)
        with pytest.raises(Interrupted) as stopped:
            annotate(ds, [model_a, model_b], ["a", "b"], batch_size=4, progress=False)
        assert [s.label_field for s in stopped.value.summary] == ["a", "b"]
        assert stopped.value.saved == ds.count("a") + ds.count("b") and _locks_on(ds) == 0
        saved_a, saved_b = ds.count("a"), ds.count("b")  # the engine hands batches over as they finish: either
        assert 8 <= saved_b < 40 and saved_b % 4 == 0 and 0 < saved_a <= 40 and saved_a % 4 == 0  # may lead
        monkeypatch.undo()
        a, b = annotate(ds, [model_a, model_b], ["a", "b"], batch_size=4, progress=False)
    assert (b.skipped, b.processed) == (saved_b, 40 - saved_b) and (a.skipped, a.processed) == (saved_a, 40 - saved_a)
    assert ds.count("a") == ds.count("b") == 40


def test_refused_before_anything_is_written(tiny_models, bad_dir):
    first, _, other = tiny_models
    ds = _dataset(_good_files(bad_dir, 4))
    with pytest.raises(ValueError, match="field 'a' is written by more than one model"):
        annotate(ds, [first, other], ["a", "a"], progress=False)
    with pytest.raises(ValueError, match="one label_field per model: got 2 model.*1 field"):
        annotate(ds, [first, other], ["a"], progress=False)
    with pytest.raises(ValueError, match="embeddings_field is a list"):
        annotate(ds, [first, other], ["a", "b"], embeddings_field="emb", progress=False)
    with FieldLock(ds.name, "b"), pytest.raises(FieldLockedError, match="field 'b'"):
        annotate(ds, [first, other], ["a", "b"], progress=False)
    assert not ds.has_sample_field("a") and not ds.has_sample_field("b") and not ds.list_runs()
    assert _locks_on(ds) == 0


def test_cli_repeats_model_and_field(tiny_models, bad_dir):
    first, _, other = tiny_models
    ds = _dataset(_good_files(bad_dir, 6))
    ds.persistent = True
    try:
        done = CliRunner().invoke(main, ["annotate", "--dataset", ds.name, "--model", first, "--field", "a",
                                         "--model", other, "--field", "b", "--batch-size", "4", "--json"])
        assert done.exit_code == 0, done.output
        fields = json.loads(done.output)["fields"]
        assert [(f["label_field"], f["model"], f["processed"]) for f in fields] == [("a", first, 6), ("b", other, 6)]
        again = CliRunner().invoke(main, ["annotate", "--dataset", ds.name, "--model", first, "--field", "a",
                                          "--model", other, "--field", "b"])
        assert again.exit_code == 0 and f"{ds.name}.b: 0 labeled, 6 already labeled" in again.output
        mismatch = CliRunner().invoke(main, ["annotate", "--dataset", ds.name, "--model", first, "--model", other])
        assert mismatch.exit_code == 2 and "one --field per --model (2 --model, 1 --field)" in mismatch.output
    finally:
        ds.delete()


def test_two_real_models_in_one_pass(tv_mobilenet, imagenet_dir, decodes):
    """tv-mobilenet-v2 (224, float) and a quantized Coral MobileNet (128, uint8 input): other input sizes and
    recipes, so they share the decoded image only. Full decoding (draft=False): each gets exactly its own pixels."""
    files = sorted(imagenet_dir.glob("*.JPEG"))[5::97][:6]
    models = [tv_mobilenet, "coral-mobilenet-v1-0.25-128-quant"]
    alone = _dataset(files)
    for name, field, emb in zip(models, ["tv", "coral"], ["emb", None]):
        annotate(alone, name, field, batch_size=4, store_logits=True, draft=False, embeddings_field=emb,
                 progress=False)
    decodes.clear()
    ds = _dataset(files)
    tv, coral = annotate(ds, models, ["tv", "coral"], batch_size=4, store_logits=True, draft=False,
                         embeddings_field=["emb", None], progress=False)
    assert tv.processed == coral.processed == len(files) and not tv.failures and not coral.failures
    assert set(decodes.values()) == {1} and len(decodes) == len(files)
    for field in ("tv", "coral"):
        _same(_fields(ds, field), _fields(alone, field))
    np.testing.assert_array_equal(np.stack(ds.values("emb")), np.stack(alone.values("emb")))
    assert ds.get_run_info(run_key("tv")).config.settings == alone.get_run_info(run_key("tv")).config.settings

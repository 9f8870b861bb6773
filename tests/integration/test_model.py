"""MSLiteModel through FiftyOne's real apply_model (real MongoDB, real MindSpore Lite worker)."""
from pathlib import Path

import fiftyone as fo
import fiftyone.core.models as fom
import numpy as np
import pytest
from PIL import Image

from fiftyone_mslite.adapters.images import load_image
from fiftyone_mslite.classifier import load_classifier
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.model import MSLiteModel, load_model
from fiftyone_mslite.runtime import AdaptiveSession


@pytest.fixture(scope="module")
def odd_sized(tmp_path_factory) -> list[str]:
    """Differently sized RGB images (one batch must hold them all)."""
    folder = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(31, 17), (64, 64), (120, 45), (9, 200), (50, 51), (300, 200)]):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def tiny_multi(tiny_model) -> str:
    from fiftyone_mslite.catalog.registry import catalog
    from fiftyone_mslite.catalog.user import add_model

    entry = catalog().model(tiny_model)
    add_model("tiny-multi", entry.source.path, entry.labels, resize="squash", crop_fraction=1.0, task="multi")
    return "tiny-multi"


def _dataset(paths) -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    return ds


def _direct(name: str, paths, **kw) -> list:
    with load_classifier(name, **kw) as clf:
        return clf.predict([load_image(p) for p in paths])


def test_apply_model_matches_classifier_on_imagenet(tv_mobilenet, imagenet_dir):
    files = sorted(imagenet_dir.glob("*.JPEG"))[::50][:20]
    ds = _dataset(files)
    model = load_model(tv_mobilenet)
    assert isinstance(model, MSLiteModel) and model.has_logits and not model.ragged_batches
    ds.apply_model(model, "pred", batch_size=8, store_logits=True)
    expected = _direct(tv_mobilenet, files)
    got = ds.values("pred")
    for want, label in zip(expected, got):
        assert isinstance(label, fo.Classification)
        assert (label.label, label.confidence) == (want.label, want.confidence)
        np.testing.assert_array_equal(label.logits, want.logits)
        assert label.synset == model.labels.synsets[want.index]
    hits = sum(label.synset == Path(p).name.split("_")[0] for p, label in zip(files, got))
    assert hits >= 14  # MobileNetV2 is ~72 % top-1; the sample images are easy
    # apply_model closed the session on exit; the model reopens it on its own
    again = model.predict(load_image(files[0]))
    assert again.label == got[0].label and again.logits is None  # store_logits was only for that call
    model.close()


def test_batches_of_differently_sized_images(tiny_model, odd_sized):
    ds = _dataset(odd_sized)
    with load_model(tiny_model) as model:
        ds.apply_model(model, "pred", batch_size=len(odd_sized))
    want = _direct(tiny_model, odd_sized)
    assert [(p.label, p.confidence) for p in ds.values("pred")] == [(w.label, w.confidence) for w in want]


def test_confidence_thresh_is_handled_by_the_model(tiny_model, odd_sized):
    ds = _dataset(odd_sized)
    want = _direct(tiny_model, odd_sized)
    cut = float(np.median([w.confidence for w in want]))
    model = load_model(tiny_model)
    ds.apply_model(model, "pred", batch_size=4, confidence_thresh=cut)
    assert model.config.confidence_thresh is None  # apply_model's setting was restored
    for w, label in zip(want, ds.values("pred")):
        assert (label is None) == (w.confidence < cut)
        assert label is None or label.label == w.label


def test_multilabel_model_gives_classifications(tiny_multi, odd_sized):
    ds = _dataset(odd_sized)
    want = _direct(tiny_multi, odd_sized)
    model = load_model(tiny_multi)
    assert model.label_type is fo.Classifications
    ds.apply_model(model, "all", batch_size=3, store_logits=True)
    ds.apply_model(model, "sure", batch_size=3, confidence_thresh=0.75)
    for w, every, sure in zip(want, ds.values("all"), ds.values("sure")):
        assert [(c.label, c.confidence) for c in every.classifications] == list(w.labels)
        assert len(every.logits) == 5
        assert [c.label for c in sure.classifications] == [lbl for lbl, c in w.labels if c >= 0.75]
    model.close()


def test_local_model_file_with_label_file(tiny_model, odd_sized, tmp_path):
    from fiftyone_mslite.catalog.registry import catalog

    with load_classifier(tiny_model) as clf:
        path = clf.path
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\nthree\nfour\nfive\n")
    ds = _dataset(odd_sized)
    with load_model(path, labels=str(labels), resize="squash", crop_fraction=1.0, store_top_k=True, top_k=3) as m:
        ds.apply_model(m, "pred", batch_size=4)
    names = dict(zip(catalog().labels(catalog().model(tiny_model).labels).names, labels.read_text().split()))
    for w, label in zip(_direct(tiny_model, odd_sized), ds.values("pred")):
        assert label.label == names[w.label] and label.confidence == w.confidence
        assert label.top_k_labels == [names[lbl] for lbl, _ in w.top_k[:3]]


def test_loads_through_fiftyones_model_config(tiny_model):
    model = fom.load_model({"type": "fiftyone_mslite.integration.model.MSLiteModel", "config": {"model": tiny_model}},
                           confidence_thresh=0.1)
    with model:
        assert isinstance(model, MSLiteModel) and model.config.confidence_thresh == 0.1
        assert model.predict(np.zeros((20, 30, 3), np.uint8)) is not None


def test_streams_setting_changes_speed_not_labels(tiny_model, odd_sized):
    ds = _dataset(odd_sized)
    for streams in (1, 3, "auto"):
        with load_model(tiny_model, streams=streams) as model:
            ds.apply_model(model, f"pred_{streams}", batch_size=4)
            session = model.classifier.session
            assert getattr(session, "streams", 1) == (2 if streams == "auto" else streams)
    with load_model(tiny_model, threads=1) as model:  # "auto" with one thread: a plain session, pipelined too
        assert annotate(ds, model, "pred_one", batch_size=4, progress=False).processed == len(odd_sized)
    got = [ds.values(f"pred_{k}.label") + ds.values(f"pred_{k}.confidence") for k in (1, 3, "auto", "one")]
    assert got[0] == got[1] == got[2] == got[3] and None not in got[0]
    for bad in (0, "fast", 1.5):
        with pytest.raises(ValueError, match="streams must be 'auto' or a positive integer"):
            load_model(tiny_model, streams=bad)


def test_apply_model_reads_files_as_annotate_does(tiny_model, tmp_path, monkeypatch):
    """FiftyOne hands a non-torch model pixels it decoded itself with OpenCV (truncated JPEGs accepted, any size);
    ours reads the samples' files with annotate's decoder: the same failures, and bounded decoding."""
    import cv2

    whole = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(whole, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert cv2.imread(str(truncated)) is not None  # what FiftyOne decodes and hands over
    large = tmp_path / "large.png"
    Image.open(whole).save(large)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 80 - 1)  # large.png is above the limit: refused unread
    with load_model(tiny_model) as model:
        for path, why in ((truncated, "truncated"), (large, "too large")):
            ds = _dataset([path])
            for batch_size in (None, 2):  # refused by our decoder: no label, the reason in pred_error (issue 20)
                ds.apply_model(model, "pred", batch_size=batch_size, skip_failures=False)
                assert not ds.has_sample_field("pred") and why in ds.first().pred_error
                assert str(path) in ds.first().pred_error
                ds.delete_sample_field("pred_error")
            summary = annotate(ds, model, "ours", progress=False)
            assert summary.failed == 1 and why in summary.failures[0].error and not ds.has_sample_field("pred")
        ds = _dataset([whole])
        ds.apply_model(model, "pred", batch_size=2)
        assert ds.first().pred.label == _direct(tiny_model, [whole])[0].label


def test_apply_model_isolates_a_bad_file_per_sample(tiny_model, tmp_path):
    """Issue 20: one file that does not decode must not cost its batch: the good images of the batch are labeled,
    the bad one gets no label and its reason in `<field>_error` (as annotate records it), also when every file of
    every batch is bad."""
    rng = np.random.default_rng(2)
    good = []
    for i in range(3):
        good.append(tmp_path / f"good{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(good[-1])
    whole = tmp_path / "whole.jpg"
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(whole, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # OpenCV reads it, our decoder refuses
    ds = _dataset([good[0], truncated, good[1], good[2]])
    with load_model(tiny_model) as model:
        for batch_size in (4, None):
            ds.apply_model(model, f"pred{batch_size}", batch_size=batch_size)
            labels = ds.values(f"pred{batch_size}.label")
            assert labels[1] is None and labels[::2] + labels[3:] == [p.label for p in _direct(tiny_model, good)]
            errors = ds.values(f"pred{batch_size}_error")
            assert errors[0] is errors[2] is errors[3] is None and "truncated" in errors[1]
        bad = _dataset([truncated, truncated])
        bad.apply_model(model, "pred", batch_size=2)
        assert bad.count("pred_error") == 2 and not bad.has_sample_field("pred")  # no label to make one


def test_apply_model_retries_a_crashed_batch_sample_by_sample(tiny_model, odd_sized, monkeypatch):
    """The MindSpore Lite worker is SIGKILLed while it runs an apply_model batch: the batch's samples are run
    again one by one (a fresh worker starts), so none is lost."""
    import os
    import signal

    ds = _dataset(odd_sized[:4])
    with load_model(tiny_model) as model:
        session = model.classifier.session
        monkeypatch.setattr(AdaptiveSession, "SWITCH_AFTER_S", 0.0)  # streams at the first batch, as before
        session.run(np.zeros((2, *session.inputs[0].shape[1:]), session.inputs[0].dtype))  # switch to streams now
        killed: list[int] = []
        for ws in session.session.sessions:
            def kill_once(*arrays, ws=ws, run=ws.run):
                if not killed:
                    if ws.pid is None:  # the worker restarts lazily inside run(); start it now to kill it
                        ws._start()
                    killed.append(ws.pid)
                    os.kill(ws.pid, signal.SIGKILL)
                return run(*arrays)

            monkeypatch.setattr(ws, "run", kill_once)
        ds.apply_model(model, "pred", batch_size=4)
    assert len(killed) == 1 and ds.count("pred") == 4 and not ds.has_sample_field("pred_error")
    assert ds.values("pred.label") == [p.label for p in _direct(tiny_model, odd_sized[:4])]

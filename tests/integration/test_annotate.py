"""annotate(): equality with apply_model, bad input, resume, worker crash and Ctrl-C (real FiftyOne + MongoDB +
MindSpore Lite worker)."""
import io
import os
import signal
import struct
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

from fiftyone_mslite.adapters.images import ImageDecodeError, load_image, open_rgb
from fiftyone_mslite.integration.annotation import annotate, run_key
from fiftyone_mslite.integration.model import load_model


def huge_jpeg(path: Path, size: int = 20000) -> Path:
    """A valid size x size grey baseline JPEG of ~5 MB: every 8x8 block is 'DC diff 0, EOB' (6 bits)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, "JPEG")
    data = buf.getvalue()
    sof = data.index(b"\xff\xc0")
    data = data[:sof + 5] + struct.pack(">HH", size, size) + data[sof + 9:]
    sos = data.index(b"\xff\xda")
    header = data[:sos + 2 + struct.unpack(">H", data[sos + 2:sos + 4])[0]]
    path.write_bytes(header + b"\x28\xa2\x8a" * ((size // 8) ** 2 // 4) + b"\xff\xd9")
    return path


def huge_png_header(path: Path, size: int = 20000) -> Path:
    """A PNG that claims size x size (Pillow refuses it from the header, before decoding)."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def rotated_jpeg(path: Path) -> Path:
    """Stored 40x20 (left red, right blue) with EXIF orientation 6: upright it is 20x40, red on top."""
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)
    img[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(path, "JPEG", quality=95, exif=exif)
    return path


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(1)
    good = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    files = {}
    for i in range(3):
        files[f"good{i}"] = d / f"good{i}.jpg"
        good.rotate(90 * i, expand=True).save(files[f"good{i}"], quality=90)
    whole = (d / "good0.jpg").read_bytes()
    (files.setdefault("truncated", d / "truncated.jpg")).write_bytes(whole[: len(whole) // 2])
    (files.setdefault("empty", d / "empty.jpg")).write_bytes(b"")
    files["missing"] = d / "missing.jpg"
    (files.setdefault("text", d / "notes.jpg")).write_text("not an image\n")
    good.convert("L").save(files.setdefault("gray", d / "gray.png"))
    good.convert("RGBA").save(files.setdefault("rgba", d / "rgba.png"))
    good.convert("CMYK").save(files.setdefault("cmyk", d / "cmyk.jpg"))
    good.convert("P").save(files.setdefault("palette", d / "palette.png"))
    ramp = (np.arange(60 * 80, dtype=np.uint32).reshape(60, 80) * 13 % 65536).astype(np.uint16)
    Image.fromarray(ramp).save(files.setdefault("16bit", d / "16bit.png"))
    rotated_jpeg(files.setdefault("exif", d / "exif.jpg"))
    huge_jpeg(files.setdefault("huge_jpeg", d / "huge.jpg"))
    huge_png_header(files.setdefault("huge_png", d / "huge.png"))
    return files


FAILING = {"truncated": "truncated", "empty": "empty file", "missing": "not found", "text": "not an image",
           "huge_png": "too large"}


def _dataset(paths) -> fo.Dataset:
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    return ds


def test_decoding_of_odd_images(bad_dir):
    assert Image.open(bad_dir["16bit"]).mode == "I;16"
    deep = load_image(bad_dir["16bit"])
    ramp = np.asarray(Image.open(bad_dir["16bit"])).astype(np.int64)
    np.testing.assert_array_equal(deep[..., 0], ramp >> 8)  # scaled, not clipped at 255
    assert Image.open(bad_dir["cmyk"]).mode == "CMYK"
    for name in ("gray", "rgba", "cmyk", "palette", "16bit"):
        img = load_image(bad_dir[name])
        assert img.dtype == np.uint8 and img.shape == (60, 80, 3), name
    upright = load_image(bad_dir["exif"])
    assert upright.shape == (40, 20, 3)  # EXIF orientation 6 applied
    assert upright[:20, :, 0].mean() > 200 and upright[20:, :, 2].mean() > 200  # red on top, blue below
    np.testing.assert_array_equal(upright, cv2.imread(str(bad_dir["exif"]))[..., ::-1])  # as FiftyOne reads it
    huge = open_rgb(bad_dir["huge_jpeg"])  # 20000x20000: decoded at 1/8 in DCT space, ~19 MB instead of 1.2 GB
    assert huge.size == (2500, 2500) and np.asarray(huge).mean() == 128
    with pytest.raises(ImageDecodeError, match="too large.*400000000 pixels"):
        open_rgb(bad_dir["huge_png"])


def test_bad_input_fails_only_itself(tiny_model, bad_dir):
    ds = _dataset(bad_dir.values())
    summary = annotate(ds, tiny_model, "pred", batch_size=4, progress=False)
    by_name = {Path(f.filepath).stem: f for f in summary.failures}
    by_key = {k: by_name.get(p.stem) for k, p in bad_dir.items()}
    for key, expected in FAILING.items():
        assert by_key[key] is not None and expected in by_key[key].error, (key, by_key[key])
        assert str(bad_dir[key]) in by_key[key].error
    assert summary.failed == len(FAILING) and summary.processed == len(bad_dir) - len(FAILING)
    assert summary.to_dict()["failed"] == summary.failed
    for sample in ds:
        key = next(k for k, p in bad_dir.items() if str(p) == sample.filepath)
        if key in FAILING:
            assert sample.pred is None and FAILING[key] in sample.pred_error
        else:
            assert isinstance(sample.pred, fo.Classification) and sample.pred_error is None, key
    # fix one file and resume: only the failed samples are retried, and the fixed one loses its error
    bad_dir["missing"].write_bytes(bad_dir["good0"].read_bytes())
    again = annotate(ds, tiny_model, "pred", batch_size=4, progress=False)
    assert again.skipped == summary.processed and again.processed == 1 and again.failed == len(FAILING) - 1
    fixed = ds.match(fo.ViewField("filepath") == str(bad_dir["missing"])).first()
    assert fixed.pred is not None and fixed.pred_error is None
    bad_dir["missing"].unlink()


def test_same_labels_as_apply_model(tv_mobilenet, imagenet_dir):
    files = sorted(imagenet_dir.glob("*.JPEG"))[7::33][:30]
    ds = _dataset(files)
    with load_model(tv_mobilenet) as model:
        ds.apply_model(model, "fo", batch_size=16, store_logits=True, confidence_thresh=0.7)
        summary = annotate(ds, model, "ours", batch_size=16, store_logits=True, confidence_thresh=0.7, draft=False,
                           progress=False)
    assert summary.processed == len(files) and not summary.failures
    theirs, ours = ds.values("fo"), ds.values("ours")
    assert sum(x is None for x in theirs) > 0  # the threshold did something
    for a, b in zip(theirs, ours):
        if a is None:
            assert b is None
            continue
        assert (a.label, a.confidence, a.synset) == (b.label, b.confidence, b.synset)
        np.testing.assert_array_equal(a.logits, b.logits)


def test_refuses_before_any_work(tiny_model, bad_dir):
    ds = _dataset([bad_dir["good0"], bad_dir["good1"]])
    ds.add_sample_field("pred", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    with pytest.raises(ValueError, match="field 'pred' already holds Detections.*writes Classification"):
        annotate(ds, tiny_model, "pred", progress=False)
    with pytest.raises(ValueError, match="excludes field 'other'"):
        annotate(ds.select_fields(), tiny_model, "other", progress=False)
    ds.set_values("boxes", [fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, .5, .5])])
                            for _ in range(2)])
    with pytest.raises(ValueError, match="PatchesView.*never reach the source dataset"):
        annotate(ds.to_patches("boxes"), tiny_model, "other", progress=False)
    assert not ds.has_sample_field("other") and not ds.has_sample_field("pred_error") and not ds.list_runs()
    # another model's (or apply_model's) labels are not overwritten silently
    ds2 = _dataset([bad_dir["good0"], bad_dir["good1"]])
    ds2.apply_model(load_model(tiny_model), "pred")
    with pytest.raises(ValueError, match="overwrite=True"):
        annotate(ds2, tiny_model, "pred", progress=False)
    assert annotate(ds2, tiny_model, "pred", overwrite=True, progress=False).processed == 2
    with pytest.raises(ValueError, match="other settings"):
        annotate(ds2, tiny_model, "pred", store_logits=True, progress=False)


def _good_files(bad_dir, n: int) -> list[Path]:
    return [bad_dir[f"good{i % 3}"] for i in range(n)]


def _killing(model, batch_no: int, times: int, monkeypatch) -> list[int]:
    """SIGKILL the real worker right before it runs the `batch_no`-th batch annotate submits (1-based), the
    first `times` times that batch is run. Batches are told apart by identity: a retry resubmits the same
    array, and with pipelined streams the n-th call is not necessarily the n-th batch."""
    session = model.classifier.session
    session.run(np.zeros((2, *session.inputs[0].shape[1:]), session.inputs[0].dtype))  # switch to streams now
    streams = session.session.sessions
    assert len(streams) == 2
    seen: list[np.ndarray] = []
    kills: list[int] = []
    for ws in streams:
        def run_and_maybe_kill(*arrays, ws=ws, run=ws.run):
            if not any(b is arrays[0] for b in seen):
                seen.append(arrays[0])
            k = next(i for i, b in enumerate(seen) if b is arrays[0]) + 1
            if k == batch_no and len(kills) < times:
                kills.append(ws.pid)
                if ws.pid is None:  # the worker restarts lazily inside run(); start it now to kill it
                    ws._start()
                os.kill(ws.pid, signal.SIGKILL)
            return run(*arrays)

        monkeypatch.setattr(ws, "run", run_and_maybe_kill)
    return kills


def test_worker_crash_is_retried_once_then_fails_the_batch(tiny_model, bad_dir, monkeypatch):
    ds = _dataset(_good_files(bad_dir, 12))
    with load_model(tiny_model) as model:
        _killing(model, 2, 1, monkeypatch)
        once = annotate(ds, model, "pred", batch_size=4, progress=False)
        assert once.crashed_batches == 1 and once.processed == 12 and not once.failures
        monkeypatch.undo()
        _killing(model, 2, 2, monkeypatch)  # the retry crashes too
        twice = annotate(ds, model, "pred2", batch_size=4, progress=False)
        assert twice.crashed_batches == 2 and twice.processed == 8 and twice.failed == 4
        assert all("crashed twice" in f.error for f in twice.failures)
        assert ds.count("pred2") == 8 and ds.count("pred2_error") == 4  # finished batches are saved
        monkeypatch.undo()
        resumed = annotate(ds, model, "pred2", batch_size=4, progress=False)
    assert (resumed.skipped, resumed.processed, resumed.failed) == (8, 4, 0)
    assert ds.count("pred2") == 12 and ds.count("pred2_error") == 0
    assert ds.values("pred2.label") == ds.values("pred.label")


def test_ctrl_c_keeps_finished_labels_and_resumes(tiny_model, bad_dir, monkeypatch):
    ds = _dataset(_good_files(bad_dir, 40))
    model = load_model(tiny_model)
    to_labels, calls = model.to_labels, []

    def interrupted(predictions):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C reaches the main thread while it turns batch 3 into labels
            raise KeyboardInterrupt
        return to_labels(predictions)

    monkeypatch.setattr(model, "to_labels", interrupted)
    with pytest.raises(KeyboardInterrupt):
        annotate(ds, model, "pred", batch_size=4, progress=False)
    saved = ds.count("pred")
    # batches 1-2 for sure; then batch 3 and those whose inference had already finished, never a partial batch
    assert 8 <= saved < 40 and saved % 4 == 0
    assert ds.get_run_info(run_key("pred")).config.model == tiny_model
    monkeypatch.undo()
    resumed = annotate(ds, model, "pred", batch_size=4, progress=False)  # the session is still usable
    assert (resumed.skipped, resumed.processed) == (saved, 40 - saved) and ds.count("pred") == 40
    full = annotate(ds, model, "full", batch_size=4, progress=False)
    assert full.processed == 40 and ds.values("pred.label") == ds.values("full.label")
    model.close()

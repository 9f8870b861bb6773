"""annotate(): equality with apply_model, bad input, resume, worker crash, Ctrl-C and one writer per field (real
FiftyOne + MongoDB + MindSpore Lite worker)."""
import io
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import fiftyone as fo
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pymongo.collection import Collection

from fiftyone_mslite.adapters.images import ImageDecodeError, load_image, open_rgb
from fiftyone_mslite.cli import main
from fiftyone_mslite.errors import DatasetError, FieldLockedError, Interrupted
from fiftyone_mslite.integration.annotation import annotate, run_key
from fiftyone_mslite.integration.locks import LOCKS
from fiftyone_mslite.integration.model import MSLiteModel, load_model
from fiftyone_mslite.runtime import AdaptiveSession


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
    os.mkfifo(files.setdefault("fifo", d / "fifo.jpg"))  # opening it for reading blocks until a writer comes
    return files


FAILING = {"truncated": "truncated", "empty": "empty file", "missing": "not found", "text": "not an image",
           "huge_png": "too large", "fifo": "a FIFO, not a regular file"}


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


def test_one_update_per_sample_stores_what_set_values_stores(tiny_model, bad_dir, monkeypatch):
    """annotate writes a sample's label, digest, error and embedding in one update (one bulk write per flush): the
    documents and the schema are those FiftyOne's own set_values makes of the same values, field by field."""
    ds = _dataset(bad_dir.values())
    fields = ("pred", "pred_run", "pred_error", "emb", "emb_run")
    bulk_write, writes = Collection.bulk_write, []

    def counted(self, requests, *args, **kwargs):  # the real write, counted by collection
        writes.append(self.name)
        return bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(Collection, "bulk_write", counted)
    summary = annotate(ds, tiny_model, "pred", batch_size=4, store_logits=True, embeddings_field="emb",
                       progress=False)
    monkeypatch.undo()
    recorded = writes
    assert summary.failed == len(FAILING) and summary.processed == len(bad_dir) - len(FAILING)
    sample_updates = [c for c in recorded if c.startswith("samples.")]
    assert len(sample_updates) == 1, recorded  # < FLUSH_EVERY samples: one round trip for all five fields

    theirs = _dataset(bad_dir.values())
    values = dict(zip(fields, ds.values(list(fields))))
    ids = dict(zip(ds.values("filepath"), ds.values("id")))
    their_ids = theirs.values("id")
    for name in fields:
        by_path = dict(zip(ds.values("filepath"), values[name]))
        if any(v is not None for v in by_path.values()):  # set_values cannot declare a field from Nones alone
            theirs.set_values(name, {i: by_path[p] for p, i in zip(theirs.values("filepath"), their_ids)},
                              key_field="id")
    def schema(samples) -> dict[str, str]:
        return {name: str(field) for name, field in samples.get_field_schema(flat=True).items()}

    assert schema(ds) == schema(theirs)
    ignore = {"id", "_id", "last_modified_at", "created_at", "_dataset_id"}
    for sample in theirs:
        ours = ds[ids[sample.filepath]].to_dict()
        mine = sample.to_dict()
        assert {k: v for k, v in ours.items() if k not in ignore} == {k: v for k, v in mine.items() if k not in ignore}
    assert ds.count("pred_error") == len(FAILING) and ds.count("emb") == summary.processed


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
    monkeypatch.setattr(AdaptiveSession, "SWITCH_AFTER_S", 0.0)  # streams at the first batch, as before
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


def _interrupt_at_batch(owner, batch_no: int, monkeypatch) -> None:
    """Ctrl-C reaches the main thread while it turns batch `batch_no` into labels. `owner` is a model, or the
    MSLiteModel class for the models the CLI loads."""
    to_labels, calls = owner.to_labels, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == batch_no:
            raise KeyboardInterrupt
        return to_labels(*args)

    monkeypatch.setattr(owner, "to_labels", interrupted)


def _locks_on(ds: fo.Dataset) -> int:
    import fiftyone.core.odm as foo

    return foo.get_db_conn()[LOCKS].count_documents({"_id": {"$regex": f"^{ds.name}:"}})


def test_ctrl_c_keeps_finished_labels_and_resumes(tiny_model, bad_dir, monkeypatch):
    ds = _dataset(_good_files(bad_dir, 40))
    model = load_model(tiny_model)
    _interrupt_at_batch(model, 3, monkeypatch)
    with pytest.raises(KeyboardInterrupt) as stopped:
        annotate(ds, model, "pred", batch_size=4, progress=False)
    saved = ds.count("pred")
    assert isinstance(stopped.value, Interrupted) and stopped.value.saved == saved and _locks_on(ds) == 0
    # batches 1-2 for sure; then batch 3 and those whose inference had already finished, never a partial batch
    assert 8 <= saved < 40 and saved % 4 == 0
    assert ds.get_run_info(run_key("pred")).config.model == tiny_model
    monkeypatch.undo()
    resumed = annotate(ds, model, "pred", batch_size=4, progress=False)  # the session is still usable
    assert (resumed.skipped, resumed.processed) == (saved, 40 - saved) and ds.count("pred") == 40
    full = annotate(ds, model, "full", batch_size=4, progress=False)
    assert full.processed == 40 and ds.values("pred.label") == ds.values("full.label")
    model.close()


def test_resumed_overwrite_finishes_the_overwrite(tiny_model, bad_dir, monkeypatch):
    """Interrupted --overwrite with new settings, then a resume: no label of the old settings may survive."""
    ds = _dataset(_good_files(bad_dir, 40))
    with load_model(tiny_model) as model:
        annotate(ds, model, "pred", batch_size=4, progress=False)  # old settings: no logits
        _interrupt_at_batch(model, 3, monkeypatch)
        with pytest.raises(Interrupted) as stopped:
            annotate(ds, model, "pred", batch_size=4, store_logits=True, overwrite=True, progress=False)
        saved = stopped.value.saved
        assert 8 <= saved < 40 and ds.count("pred.logits") == saved
        monkeypatch.undo()
        resumed = annotate(ds, model, "pred", batch_size=4, store_logits=True, progress=False)
    assert (resumed.skipped, resumed.processed) == (saved, 40 - saved)
    assert ds.count("pred.logits") == ds.count("pred") == 40


def test_settings_check_covers_the_whole_field(tiny_model, bad_dir):
    """A run on one view, another with other settings on a disjoint view: refused unless asked to overwrite, and a
    later whole-dataset resume never keeps labels of both settings."""
    ds = _dataset(_good_files(bad_dir, 8))
    first, second = ds.limit(4), ds.skip(4)
    with load_model(tiny_model) as model:
        annotate(first, model, "pred", batch_size=4, progress=False)
        with pytest.raises(DatasetError, match="on 4 samples.*whole dataset.*other settings.*overwrite=True"):
            annotate(second, model, "pred", batch_size=4, store_logits=True, progress=False)
        assert ds.count("pred") == 4 and _locks_on(ds) == 0  # refused before any work; the claim is released
        annotate(second, model, "pred", batch_size=4, store_logits=True, overwrite=True, progress=False)
        whole = annotate(ds, model, "pred", batch_size=4, store_logits=True, progress=False)
    assert (whole.skipped, whole.processed) == (4, 4) and ds.count("pred.logits") == 8


def test_two_runs_on_one_field_at_once(tiny_model, bad_dir, monkeypatch):
    """Two real annotate runs at once (threads, each with its own worker): the later one is refused while the first
    holds the field, even on a disjoint view; the claim is released when the first ends."""
    ds = _dataset(_good_files(bad_dir, 12))
    first_inside, release = threading.Event(), threading.Event()
    with load_model(tiny_model) as slow, load_model(tiny_model) as other:
        to_labels = slow.to_labels

        def held(predictions):
            first_inside.set()
            assert release.wait(300)
            return to_labels(predictions)

        monkeypatch.setattr(slow, "to_labels", held)
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(annotate, ds, slow, "pred", batch_size=4, progress=False)
            try:
                assert first_inside.wait(300)
                for target in (ds, ds.skip(8)):
                    with pytest.raises(FieldLockedError, match=f"field 'pred' of dataset '{ds.name}' is being "
                                                               f"written by another annotate run \\(pid {os.getpid()}"):
                        annotate(target, other, "pred", batch_size=4, store_logits=True, progress=False)
            finally:
                release.set()
            assert running.result(timeout=300).processed == 12
        assert _locks_on(ds) == 0 and ds.count("pred") == 12 and ds.count("pred.logits") == 0
        again = annotate(ds, other, "pred", batch_size=4, progress=False)
    assert (again.skipped, again.processed) == (12, 0)


def test_a_crashed_runs_claim_expires(tiny_model, bad_dir):
    """A claim left by a run that died: another host's is honoured until it expires; this host's dead process's is
    taken over at once (resuming after a SIGKILL needs no wait)."""
    import fiftyone.core.odm as foo

    ds = _dataset(_good_files(bad_dir, 4))
    locks, key = foo.get_db_conn()[LOCKS], f"{ds.name}:pred"
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    now = datetime.now(timezone.utc)
    claim = {"_id": key, "owner": "crashed", "pid": gone, "pid_started": 0.0, "started": now, "heartbeat": now,
             "expires": now + timedelta(hours=1)}
    with load_model(tiny_model) as model:
        locks.insert_one({**claim, "host": "elsewhere"})
        with pytest.raises(FieldLockedError, match=f"pid {gone} on elsewhere"):
            annotate(ds, model, "pred", progress=False)
        locks.update_one({"_id": key}, {"$set": {"expires": now - timedelta(seconds=1)}})  # heartbeat stopped long ago
        assert annotate(ds, model, "pred", progress=False).processed == 4
        locks.insert_one({**claim, "host": socket.gethostname()})
        assert annotate(ds, model, "pred", overwrite=True, progress=False).processed == 4
    assert _locks_on(ds) == 0


def test_cli_ctrl_c_says_what_was_saved_and_how_to_resume(tiny_model, bad_dir, monkeypatch):
    ds = _dataset(_good_files(bad_dir, 40))
    ds.persistent = True
    _interrupt_at_batch(MSLiteModel, 3, monkeypatch)
    args = ["annotate", "--dataset", ds.name, "--model", tiny_model, "--field", "pred", "--batch-size", "4",
            "--no-store-logits", "--overwrite"]
    stopped = CliRunner().invoke(main, args)
    saved = ds.count("pred")
    assert stopped.exit_code == 130 and 8 <= saved < 40, stopped.output
    line, command = stopped.output.strip().splitlines()[-1].split("; resume with: ")  # after the progress bar
    assert line == f"interrupted: {saved} predictions saved to {ds.name}.pred (0 were already there)"
    words = shlex.split(command)
    assert words[0] == "fiftyone-mslite" and "--overwrite" not in words and "--no-store-logits" in words
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, words[1:])
    assert resumed.exit_code == 0, resumed.output
    assert f"{40 - saved} labeled, {saved} already labeled, 0 failed" in resumed.output
    ds.delete()


def test_cli_ctrl_c_before_the_run_is_the_same_contract(tiny_model, bad_dir, monkeypatch):
    """Ctrl-C while the model loads (before any progress bar): exit 130 and a rerun line too, not click's
    "Aborted!" with exit 1; the line keeps --overwrite, since no run was registered to resume."""
    from fiftyone_mslite.integration import model as model_module

    ds = _dataset(_good_files(bad_dir, 4))
    ds.persistent = True

    def loading(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_module, "load_model", loading)
    args = ["annotate", "--dataset", ds.name, "--model", tiny_model, "--field", "pred", "--overwrite"]
    stopped = CliRunner().invoke(main, args)
    assert stopped.exit_code == 130 and "Aborted" not in stopped.output, stopped.output
    line, command = stopped.output.strip().splitlines()[-1].split("; rerun with: ")
    assert line == "interrupted: nothing saved yet" and "--overwrite" in shlex.split(command)
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 130 and json.loads(as_json.output)["saved"] == 0
    monkeypatch.undo()
    assert CliRunner().invoke(main, shlex.split(command)[1:]).exit_code == 0 and ds.count("pred") == 4
    ds.delete()

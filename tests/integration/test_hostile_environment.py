"""A full disk and a read-only cache/HOME (issue 20, item 6): every command ends in one line naming what could not
be written, and nothing half-written is left where a later command would take it for a model or a catalog."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers.confined import confined_cli, split_after

CORAL = "raw.githubusercontent.com/google-coral/test_data/master/mobilenet_v2_1.0_224_quant.tflite"


def one_line_error(run, *words: str) -> str:
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and run.stderr.startswith("error: "), run.stderr
    for word in words:
        assert word in run.stderr, run.stderr
    return run.stderr


@pytest.fixture
def disk(tmp_path) -> Path:
    folder = tmp_path / "disk"
    folder.mkdir()
    return folder


def test_full_disk_during_upgrade_leaves_nothing(shared_dir, disk):
    out = disk / "retinaface.ms"
    run = confined_cli("upgrade", str(shared_dir / "ms-corpus" / "retinaface1.ms"), "-o", str(out),
                       full={disk: "256k"}, after=f"ls -A {disk}")
    one_line_error(run, "No space left on device", str(out), "nothing was written")
    assert run.stderr.count("\n") == 1
    assert split_after(run.stdout)[1] == ""  # no partial file, no temporary file


def test_full_disk_during_conversion_leaves_nothing(shared_dir, disk):
    """The converter writes in place; it now writes into a scratch folder and only a checked model is renamed."""
    run = confined_cli("convert", str(shared_dir / "onnx" / "cifar10_resnet20.onnx"), "-o", str(disk / "r20.ms"),
                       full={disk: "300k"}, after=f"ls -A {disk}")
    one_line_error(run, "converter failed")
    assert split_after(run.stdout)[1] == ""


def test_full_cache_during_download_and_models_add(shared_dir, mirror, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    fetch = confined_cli("models", "fetch", "coral-mobilenet-v2-quant", full={cache: "300k"},
                         after=f"find {cache} -name '*.part' -o -name '*.tflite'", FIFTYONE_MSLITE_HOME=str(cache))
    one_line_error(fetch, "No space left on device")
    assert split_after(fetch.stdout)[1] == ""  # neither the model nor a part of it

    catalog = tmp_path / "user.yaml"
    add = confined_cli("models", "add", "r20", "--source", str(shared_dir / "onnx" / "cifar10_resnet20.onnx"),
                       "--labels", str(shared_dir / "labels" / "cifar10.txt"), full={cache: "300k"},
                       after=f"ls -A {cache}/converted", FIFTYONE_MSLITE_HOME=str(cache),
                       FIFTYONE_MSLITE_USER_CATALOG=str(catalog))
    assert add.returncode == 1 and "Traceback" not in add.stderr and "converter failed" in add.stderr, add.stderr
    assert split_after(add.stdout)[1] == ""  # the failed add removed its converted/r20/
    assert not catalog.exists()


def test_read_only_cache_and_home(shared_dir, tmp_path):
    """A local .ms still runs (worker logs go to the temp folder); what must be written names the folder."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    for folder in (home, cache):
        folder.mkdir()
    image = next((shared_dir / "mirror").rglob("*.jpg"))
    labels = tmp_path / "face.txt"
    labels.write_text("face\nnot face\n")
    model = shared_dir / "ms-corpus" / "ml_face_isface.ms"
    env = {"HOME": str(home), "FIFTYONE_MSLITE_HOME": str(cache), "FIFTYONE_MSLITE_USER_CATALOG": ""}
    read_only = (home, cache)

    predict = confined_cli("predict", str(model), str(image), "--labels", str(labels), read_only=read_only, **env)
    assert predict.returncode == 0 and "face" in predict.stdout, predict.stderr
    inspect = confined_cli("inspect", str(shared_dir / "ms-corpus" / "retinaface1.ms"), read_only=read_only, **env)
    assert inspect.returncode == 0 and "upgradable" in inspect.stdout
    add = confined_cli("models", "add", "face", "--source", str(model), "--labels", str(labels), "--input-size", "48",
                       read_only=read_only, **env)
    one_line_error(add, "Read-only file system", str(home / ".config"))
    legacy = confined_cli("predict", str(shared_dir / "ms-corpus" / "retinaface1.ms"), str(image), "--labels",
                          str(labels), read_only=read_only, **env)
    one_line_error(legacy, "Read-only file system", str(cache))

"""Model names and what a failed `models add` leaves (issue 20, item 5): one name rule checked before any work, a
failed add removes the folder it made, an oversized catalog is refused in one line."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.cli import cli

from fiftyone_mslite.catalog import model_files as store
from fiftyone_mslite.catalog.binding import entry_for_file
from fiftyone_mslite.catalog.builtin import CATALOG_MAX_BYTES
from fiftyone_mslite.catalog.schema import check_model_name, parse_entries
from fiftyone_mslite.errors import CatalogError, ConversionError

BAD_NAMES = [".", "..", "", "-rm", ".hidden", "a;b", "$(id)", "a b", "a/b", "a\\b", "x`y`", "a|b", "é", "m" * 101]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"\x08\x07 not really onnx")
    return src


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_in_one_line_by_the_one_rule(name):
    with pytest.raises(CatalogError) as err:
        check_model_name(name)
    assert "\n" not in str(err.value) and repr(name) in str(err.value)
    with pytest.raises(CatalogError, match="is not allowed"):  # catalog files and plugins: the same rule
        parse_entries({"models": {name: {"labels": "x", "num_classes": 2, "preprocess": {"input_size": 8},
                                         "source": {"path": "/m.ms"}}}}, origin="my.yaml")


@pytest.mark.parametrize("name", ["m", "tv-mobilenet-v2", "coral-mobilenet-v1-0.25-128-quant", "r20_tuned", "A1"])
def test_plain_names_are_accepted(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", [".", "..", "$(touch x);"])
def test_models_add_refuses_a_bad_name_before_any_work(name, tmp_path, onnx_file):
    """Regression: '.' converted into the converted/ root; '..' was refused only after the whole conversion;
    shell characters got pydantic's multi-line message."""
    home = tmp_path / "home"
    run = cli("models", "add", name, "--source", str(onnx_file), "--labels", "imagenet-1000",
              FIFTYONE_MSLITE_HOME=str(home), FIFTYONE_MSLITE_USER_CATALOG=str(tmp_path / "user.yaml"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: model name") and run.stderr.count("\n") == 1, run.stderr
    assert not home.exists() or not any(home.rglob("*"))  # nothing fetched, converted or cached
    as_json = cli("models", "add", name, "--source", str(onnx_file), "--labels", "imagenet-1000", "--json",
                  FIFTYONE_MSLITE_HOME=str(home))
    assert as_json.returncode == 1 and "model name" in json.loads(as_json.stdout)["message"]


def test_failed_models_add_removes_the_folder_it_made(tmp_path, monkeypatch, onnx_file):
    """Regression: a failed add left converted/<name>/ (scratch directory, records) behind."""
    from fiftyone_mslite.catalog.user import add_model, user_catalog_path

    def half_then_fail(source, output, **_):
        Path(output).write_bytes(b"half a model")
        raise ConversionError("converter crashed")

    monkeypatch.setattr(store, "convert_model", half_then_fail)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    kept = store.converted_dir() / "kept"
    (kept / "earlier.ms").parent.mkdir(parents=True)
    (kept / "earlier.ms").write_bytes(b"an earlier conversion")
    for name in ("fresh", "kept"):
        with pytest.raises(ConversionError, match="converter crashed"):
            add_model(name, str(onnx_file), str(labels))
    assert not (store.converted_dir() / "fresh").exists()
    assert [p.name for p in kept.iterdir()] == ["earlier.ms"]  # what existed before the command stays
    assert not user_catalog_path().exists()


def test_files_run_ad_hoc_get_a_valid_name(tmp_path):
    src = tmp_path / "My model (v2); final.ms"
    src.write_bytes(b"x" * 32)
    assert entry_for_file(src, "imagenet-1000", {}).name == "My-model-v2-final"


def test_an_oversized_user_catalog_is_refused_in_one_line_without_parsing(tmp_path):
    """Regression: a 200 MB user catalog kept `models list` busy past a minute."""
    catalog = tmp_path / "huge.yaml"
    with catalog.open("w") as f:
        f.write("models: {}\n")
        f.write(("# " + "x" * 1022 + "\n") * (CATALOG_MAX_BYTES // 1024 + 1))
    start = time.monotonic()
    run = cli("models", "list", FIFTYONE_MSLITE_USER_CATALOG=str(catalog))
    assert run.returncode == 1 and "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert str(catalog) in run.stderr and "above the read limit for a catalog file" in run.stderr
    assert time.monotonic() - start < 60  # generous: the bug took minutes; the refusal reads no byte


def test_a_catalog_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    import os

    fifo = tmp_path / "user.yaml"
    os.mkfifo(fifo)
    run = cli("models", "list", FIFTYONE_MSLITE_USER_CATALOG=str(fifo))
    assert run.returncode == 1 and "a FIFO, not a regular file" in run.stderr

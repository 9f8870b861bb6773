"""The converted-model cache (issue 13, item 17): nothing lands outside it, a failed add or conversion replaces nothing.

No MindSpore Lite here: the paths under test fail (or are stubbed) before the runtime would be needed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fiftyone_mslite.catalog import model_files
from fiftyone_mslite.catalog.schema import parse_entries
from fiftyone_mslite.errors import CatalogError, ConversionError, DownloadError


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    monkeypatch.delenv("FIFTYONE_MSLITE_MIRROR", raising=False)
    monkeypatch.delenv("FIFTYONE_MSLITE_OFFLINE", raising=False)


def onnx_entry(name: str, src: Path):
    body = {"labels": "x.txt", "num_classes": 2, "preprocess": {"input_size": 8},
            "source": {"path": str(src), "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}}
    models, _ = parse_entries({"models": {name: body}}, origin="test")
    return models[name]


def test_failed_models_add_cannot_overwrite_another_models_converted_file(tmp_path, monkeypatch):
    """A dot host once mapped the download into <cache>/converted/<victim>/ (with a --sha256 matching the planted
    bytes, the fetch "succeeded"), and the add then failed, leaving the victim's model replaced."""
    from fiftyone_mslite.catalog.user import add_model, user_catalog_path

    victim = model_files.converted_dir() / "victim" / "victim-0123456789abcdef.ms"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"the victim's converted model")
    planted = tmp_path / "m" / "converted" / "victim" / victim.name  # <mirror>/../converted/victim/...
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"attacker bytes")
    (tmp_path / "m" / "sub").mkdir()
    monkeypatch.setenv("FIFTYONE_MSLITE_MIRROR", str(tmp_path / "m" / "sub"))
    crafted = hashlib.sha256(b"attacker bytes").hexdigest()
    with pytest.raises(DownloadError, match="Cannot fetch"):
        add_model("evil", f"http://../converted/victim/{victim.name}", "imagenet-1000", sha256=crafted)
    assert victim.read_bytes() == b"the victim's converted model"
    assert not user_catalog_path().exists()


def test_converted_files_stay_inside_the_converted_dir(tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx")
    with pytest.raises(CatalogError, match="model name '..' is not allowed"):  # refused when read (issue 20)
        onnx_entry("..", src)
    escaping = onnx_entry("m", src).model_copy(update={"name": ".."})  # and, should one get through, here
    with pytest.raises(CatalogError, match="outside"):
        model_files.model_file(escaping)
    assert not any(model_files.converted_dir().parent.glob("model-*"))


def test_failed_conversion_leaves_no_file_to_reuse(tmp_path, monkeypatch):
    """A conversion that dies midway must not leave a half file that the next call would take as converted."""
    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx")

    def half_then_fail(source, output, **_):
        Path(output).write_bytes(b"half a model")
        raise ConversionError("converter crashed")

    monkeypatch.setattr(model_files, "convert_model", half_then_fail)
    with pytest.raises(ConversionError, match="converter crashed"):
        model_files.model_file(onnx_entry("m", src))
    assert [p for p in model_files.converted_dir().rglob("*") if p.is_file()] == []


def test_existing_converted_file_is_reused_not_replaced(tmp_path, monkeypatch):
    from fiftyone_mslite.modelfiles.convert import ConversionResult

    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx")
    entry = onnx_entry("m", src)

    def convert(source, output, **_):
        Path(output).write_bytes(b"converted earlier")
        return ConversionResult(Path(source), "onnx", Path(output), "ms", ())

    monkeypatch.setattr(model_files, "convert_model", convert)
    monkeypatch.setattr(model_files, "_check_ms", lambda path: None)  # the stub's bytes are no real .ms
    out = model_files.model_file(entry).path
    assert out.is_relative_to(model_files.converted_dir() / "m") and out.read_bytes() == b"converted earlier"
    monkeypatch.setattr(model_files, "convert_model", lambda *a, **k: pytest.fail("must not convert again"))
    assert model_files.model_file(entry).path == out and out.read_bytes() == b"converted earlier"

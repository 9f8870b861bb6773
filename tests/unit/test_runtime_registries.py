"""The runtime's two registries without a runtime: the format table and its one detector, and backends walked in
preference order (fake backends here; real ones in tests/integration/test_plugin_seams.py)."""
from __future__ import annotations

from collections import OrderedDict

import pytest
from helpers.onnx_graphs import TinyNet

from fiftyone_mslite.runtime import Backend, ModelFileError, backends, formats


def test_every_list_of_formats_comes_from_the_table():
    assert formats.names(builtin=True, runnable=True) == ("ms", "mindir")
    assert formats.names(builtin=True, convertible=True) == ("onnx", "tflite", "tf", "caffe", "mindir")
    assert formats.names(builtin=True, embedding=True) == ("onnx", "tflite")
    assert formats.names(builtin=True, catalog_source=True) == ("ms", "onnx", "tflite", "mindir")
    assert formats.from_suffix("https://host/m.TFLite?raw=1") == "tflite" and formats.from_suffix("m.bin") is None


def test_one_detector_says_what_to_do_with_each_file(tmp_path):
    onnx = TinyNet.random(seed=0).save(tmp_path / "m.onnx")
    assert formats.detect(onnx) == formats.detect(onnx, convertible=True) == "onnx"
    with pytest.raises(ModelFileError, match=r"is an ONNX model, not a MindSpore Lite model \(.ms/.mindir\). "
                                             r"Convert it first: `fiftyone-mslite convert"):
        formats.detect(onnx, runnable=True)
    legacy = tmp_path / "old.ms"
    legacy.write_bytes(b"\x10\x00\x00\x00MSL1" + bytes(100))
    assert formats.detect(legacy) == "ms-v0"
    for mode in ({"runnable": True}, {"convertible": True}):
        with pytest.raises(ModelFileError, match="old schema.*fiftyone-mslite upgrade"):
            formats.detect(legacy, **mode)
    current = tmp_path / "new.ms"
    current.write_bytes(b"\x10\x00\x00\x00MSL2" + bytes(100))
    assert formats.detect(current, runnable=True) == "ms"
    with pytest.raises(ModelFileError, match="nothing to convert"):
        formats.detect(current, convertible=True)
    truncated = tmp_path / "cut.ms"
    truncated.write_bytes(b"\xff\x00\x00\x00MSL2" + bytes(8))
    with pytest.raises(ModelFileError, match="truncated"):
        formats.detect(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="cannot tell the format"):
        formats.detect(text)
    with pytest.raises(ModelFileError, match="not a MindSpore Lite model"):
        formats.detect(text, runnable=True)


def test_a_registered_format_is_detected_by_its_signature(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "_FORMATS", OrderedDict(formats._FORMATS))
    formats.register(formats.ModelFormat("zz", "a zz file", (".zz",), lambda head, name: head[:2] == b"ZZ",
                                         converter="ONNX"))
    (tmp_path / "m.bin").write_bytes(b"ZZ" + bytes(30))
    assert formats.detect(tmp_path / "m.bin", convertible=True) == "zz" and "zz" in formats.names(convertible=True)
    with pytest.raises(ValueError, match="already registered"):
        formats.register(formats.ModelFormat("onnx", "another onnx"))


class Fake(Backend):
    def __init__(self, name: str, up: bool, priority: int | None = None, fmts: tuple = ("ms", "mindir")):
        self.name, self.up, self.priority, self.formats = name, up, priority, fmts

    def available(self) -> bool:
        return self.up


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(backends, "_BACKENDS", OrderedDict())
    monkeypatch.delenv("FIFTYONE_MSLITE_BACKEND", raising=False)
    fakes = Fake("low", True, 1), Fake("high", False, 5), Fake("named", True), Fake("toy-only", True, 9, ("toy",))
    for fake in fakes:
        backends.register(fake)
    return backends


def test_auto_walks_the_backends_with_a_priority_highest_first(registry):
    assert [b.name for b in registry.preference()] == ["toy-only", "high", "low"]
    assert registry.choose().name == "toy-only"  # no format asked: any available backend
    assert registry.choose(fmt="ms").name == "low"  # high is not available, toy-only does not run .ms
    registry.get("low").up = False
    assert registry.choose(fmt="ms").name == "low"  # none available: the last that could, to say what is missing


def test_a_name_or_a_preference_list_from_the_argument_or_the_setting(registry, monkeypatch):
    assert registry.choose("named", fmt="ms").name == "named"
    assert [b.name for b in registry.preference("high, named,auto")] == ["high", "named", "toy-only", "low"]
    monkeypatch.setenv("FIFTYONE_MSLITE_BACKEND", "high,named")
    assert registry.choose(fmt="mindir").name == "named"
    with pytest.raises(ValueError, match="backend must be one of auto, low, high, named, toy-only, got 'nope'"):
        registry.choose("nope")
    with pytest.raises(ValueError, match="no backend of named runs toy"):
        registry.choose("named", fmt="toy")
    with pytest.raises(TypeError):
        registry.register(Fake("auto", True))

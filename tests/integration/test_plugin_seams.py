"""The seams are open: the test plugin (tests/plugin_package, installed like a user's plugin) registers a model
format and a runtime backend through the hooks only, and both are used end to end against real MindSpore Lite."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers.cli import cli
from helpers.env import REPO
from helpers.onnx_graphs import TinyNet, random_batch
from PIL import Image

from fiftyone_mslite import hooks, runtime
from fiftyone_mslite.catalog import registry
from fiftyone_mslite.classifier import load_classifier
from fiftyone_mslite.modelfiles.convert import convert_model

NET = TinyNet.random(seed=3)
pytestmark = pytest.mark.usefixtures("fresh_catalog")


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Environment for subprocesses that see the test plugin. scripts/setup.sh installs it into .venv; where it is
    not installed (a venv set up before it existed) it is pip-installed into a temporary directory here."""
    try:
        importlib.metadata.distribution("mslite-test-plugin")
        return {}
    except importlib.metadata.PackageNotFoundError:
        site = tmp_path_factory.mktemp("plugin-site")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(REPO / "tests" / "plugin_package")],
                             capture_output=True, text=True)
        assert pip.returncode == 0, pip.stderr
        sys.path.insert(0, str(site))
        hooks.reset()
        return {"PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory, plugin_env):
    from mslite_test_plugin.toy_format import wrap

    work = tmp_path_factory.mktemp("toy")
    return wrap(NET.save(work / "net.onnx"), work / "net.toy")


def test_toy_format_is_detected_converted_and_run_on_the_recording_backend(toy_file, tmp_path):
    from mslite_test_plugin.recording_backend import RECORDING

    converted = convert_model(toy_file, tmp_path / "net.ms", embedding="auto")
    assert runtime.formats.detect(toy_file) == "toy" and converted.source_format == "toy"
    assert converted.embedding is not None  # the ONNX format's own step ran on the unwrapped graph
    before = len(RECORDING.opened)
    x = random_batch(3, seed=5)
    with runtime.open_model(converted.output, threads=1, backend="recording") as session:
        assert session.backend == "worker"  # the recording backend wraps the worker
        probs = session.run(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))[0]
    np.testing.assert_allclose(probs, NET.reference(x), atol=1e-4)
    assert RECORDING.opened[before:] == [{"path": str(converted.output), "threads": 1, "batch_size": None,
                                          "device": "cpu"}]
    with pytest.raises(ValueError, match="recording"):  # named, it is checked against the format it runs
        runtime.backends.choose("recording", fmt="toy")


def test_backend_preference_list_walks_to_the_first_available(plugin_env, monkeypatch):
    hooks.plugin_manager()
    monkeypatch.setenv("FIFTYONE_MSLITE_BACKEND", "inprocess,recording,worker")
    assert [b.name for b in runtime.backends.preference()] == ["inprocess", "recording", "worker"]
    assert runtime.choose_backend() == "recording"  # inprocess is not available on this Python
    assert "recording" not in [b.name for b in runtime.backends.preference("auto")]  # no priority: only by name


def test_cli_convert_takes_a_plugin_format_by_name(toy_file, tmp_path, plugin_env):
    """`convert --from` offers the plugins' formats too (its help shows ours, then '...')."""
    out = tmp_path / "named.ms"
    converted = cli("convert", str(toy_file), "-o", str(out), "--from", "toy", "--json", env=plugin_env)
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert json.loads(converted.stdout)["source_format"] == "toy" and out.stat().st_size > 0
    wrong = cli("convert", str(toy_file), "-o", str(out), "--from", "bogus", env=plugin_env)
    assert wrong.returncode == 2 and "'toy'" in wrong.stderr and "'onnx'" in wrong.stderr
    assert "--from [onnx|tflite|tf|caffe|mindir|...]" in cli("convert", "--help", env=plugin_env).stdout


def test_catalog_entry_with_a_toy_source_through_the_cli_on_the_plugin_backend(toy_file, tmp_path, plugin_env):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    log = tmp_path / "opened.jsonl"
    env = {**plugin_env, "FIFTYONE_MSLITE_USER_CATALOG": str(tmp_path / "user.yaml")}
    added = cli("models", "add", "toy-tiny", "--source", str(toy_file), "--labels", str(labels), "--resize",
                "squash", "--json", env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    info = json.loads(cli("models", "info", "toy-tiny", "--json", env=env).stdout)
    assert info["source"]["path"].endswith("net.toy")
    image = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    env.update(FIFTYONE_MSLITE_BACKEND="recording", MSLITE_TEST_PLUGIN_LOG=str(log))
    runtime_info = json.loads(cli("runtime", "info", "--json", env=env).stdout)
    assert runtime_info["backend"] == "recording" and runtime_info["backends_available"]["recording"] is True
    predicted = cli("predict", "toy-tiny", str(image), "--json", env=env)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout.splitlines()[0])["top_k"][0]["label"] in "abcde"
    opened = [json.loads(line) for line in log.read_text().splitlines()]
    assert opened and opened[0]["path"].endswith(".ms") and opened[0]["device"] == "cpu"


def test_classifier_opens_a_catalog_model_on_the_named_backend(toy_file, tmp_path, monkeypatch, plugin_env):
    from mslite_test_plugin.recording_backend import RECORDING

    from fiftyone_mslite.catalog.user import add_model

    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    entry, _ = add_model("toy-py", str(toy_file), str(labels), resize="squash")
    assert entry.embedding.tensor  # found in the toy's ONNX, recorded by `models add`
    registry.reset()
    before = len(RECORDING.opened)
    with load_classifier("toy-py", backend="recording") as clf:
        assert clf.has_embeddings and clf.predict([np.full((8, 8, 3), 90, np.uint8)])[0].label in "abcde"
    assert len(RECORDING.opened) == before + 1

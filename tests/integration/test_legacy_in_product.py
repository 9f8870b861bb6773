"""Legacy-schema (v0) .ms files in the product path: served over loopback, fetched through the catalog, upgraded
once (cached by source sha256), inspected and predicted with; a local v0 file through predict."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml
from helpers.cli import cli
from helpers.legacy_v0 import KHWC, V0Graph
from PIL import Image

from fiftyone_mslite.modelfiles.upgrade import is_legacy

LABELS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def tiny_v0_classifier(path):
    """8x8 RGB → one 8x8 'valid' convolution to 5 channels → [1, 1, 1, 5] scores, in the v0 schema."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 8, 8, 3)).astype(np.float32) * 0.05
    g = V0Graph()
    o = g.activation((1, 1, 1, 5))
    g.node("Conv2D", [g.input((1, 8, 8, 3)), g.const(w, KHWC)], [o], group=1, channelIn=3, channelOut=5,
           kernelH=8, kernelW=8, strideH=1, strideW=1, dilateH=1, dilateW=1, padMode=2)  # ops_v0 PadMode VALID
    g.outputs = [o]
    return g.save(path), w


@pytest.fixture
def served_legacy(http_root, tmp_path, monkeypatch):
    root, base = http_root
    model, w = tiny_v0_classifier(root / "tiny-v0.ms")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    catalog = tmp_path / "user.yaml"
    entry = {"labels": str(labels), "num_classes": 5, "source": {"url": f"{base}/tiny-v0.ms",
             "sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "schema": "v0"},
             "preprocess": {"input_size": 8, "resize": "squash", "crop_fraction": 1.0}}
    catalog.write_text(yaml.safe_dump({"version": 1, "models": {"tiny-v0": entry}}))
    env = {"FIFTYONE_MSLITE_USER_CATALOG": str(catalog), "FIFTYONE_MSLITE_HOME": str(tmp_path / "cache")}
    return env, model, w, labels


def test_fetch_upgrades_once_then_predicts(served_legacy, tmp_path):
    env, model, w, labels = served_legacy
    assert is_legacy(model)
    first = cli("models", "fetch", "tiny-v0", "--json", env=env)
    assert first.returncode == 0, first.stderr
    path = json.loads(first.stdout)["path"]
    assert "upgraded legacy-schema (v0)" in first.stderr  # said on the console, once
    again = cli("models", "fetch", "tiny-v0", "--json", env=env)
    assert json.loads(again.stdout)["path"] == path and "upgraded" not in again.stderr  # cached
    info = json.loads(cli("inspect", path, "--json", env=env).stdout)
    assert info["schema"] == "v2" and info["loadable"] and info["inputs"][0]["dims"] == [1, 8, 8, 3]

    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    pred = cli("predict", "tiny-v0", str(tmp_path / "x.png"), "--json", "--top-k", "5", env=env)
    assert pred.returncode == 0, pred.stderr
    ranked = [d["label"] for d in json.loads(pred.stdout)["top_k"]]
    x = (image / 255.0 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)  # the entry's (default) normalisation
    scores = np.einsum("hwc,khwc->k", x, w)  # what the v0 convolution computes
    assert ranked == [LABELS[i] for i in np.argsort(-scores)]


def test_local_legacy_file_predicts_and_inspect_says_upgradable(tmp_path):
    model, _ = tiny_v0_classifier(tmp_path / "local-v0.ms")
    text = cli("inspect", str(model)).stdout
    assert "legacy schema v0, upgradable (1 ops, all supported)" in text
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "z.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    pred = cli("predict", str(model), str(tmp_path / "z.png"), "--labels", str(labels), "--json",
               FIFTYONE_MSLITE_HOME=str(tmp_path / "cache"))
    assert pred.returncode == 0, pred.stderr
    assert json.loads(pred.stdout)["top_k"][0]["label"] in LABELS
    assert list((tmp_path / "cache" / "upgraded").glob("*-local-v0.ms"))


def test_unupgradable_legacy_file_is_one_clear_line(tmp_path):
    g = V0Graph()
    o = g.activation((1, 8, 8, 3))
    g.node("Rank", [g.input((1, 8, 8, 3))], [o])  # a primitive the upgrader does not translate
    g.outputs = [o]
    model = g.save(tmp_path / "odd-v0.ms")
    out = tmp_path / "new.ms"
    run = cli("upgrade", str(model), "-o", str(out))
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "Rank" in run.stderr and not out.exists()

"""The demo (README command 1) end to end, and its message when nothing can serve the data."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers.env import python_env

CLI = [sys.executable, "-m", "fiftyone_mslite", "demo"]


def demo(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=python_env(**env), timeout=900)


def test_imagenet_demo_annotates_evaluates_and_saves_views(shared_dir):
    first = demo("--limit", "60", "--json", FIFTYONE_MSLITE_SHARED=str(shared_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    data = json.loads(first.stdout)
    assert data["model"] == "tv-mobilenet-v2" and data["samples"] == 60 and data["annotated"] == 60
    assert 0.6 <= data["accuracy"] <= 1.0 and data["top5_accuracy"] >= data["accuracy"]
    assert data["mistakes"] == round(60 * (1 - data["accuracy"]))
    assert data["saved_views"] == ["eval-mistakes", "predictions-low-confidence"]
    confidences = [m["confidence"] for m in data["confident_mistakes"]]
    assert confidences == sorted(confidences, reverse=True) and all(m["gt"] != m["pred"] for m in
                                                                     data["confident_mistakes"])
    again = json.loads(demo("--limit", "60", "--json", FIFTYONE_MSLITE_SHARED=str(shared_dir)).stdout)
    assert again["skipped"] == 60 and again["annotated"] == 0 and again["accuracy"] == data["accuracy"]  # resumed
    text = demo("--limit", "60", FIFTYONE_MSLITE_SHARED=str(shared_dir)).stdout
    assert "top-1 accuracy" in text and "fiftyone-mslite app --dataset mslite-demo-imagenet" in text


def test_cifar10_demo(shared_dir):
    result = demo("--variant", "cifar10", "--limit", "100", "--json", FIFTYONE_MSLITE_SHARED=str(shared_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["model"] == "cifar10-resnet20" and data["samples"] == 100 and data["accuracy"] >= 0.6


def test_demo_says_what_is_missing_without_mirror_or_internet(tmp_path):
    result = demo("--json", FIFTYONE_MSLITE_SHARED=str(tmp_path / "none"), FIFTYONE_MSLITE_MIRROR="",
                  FIFTYONE_MSLITE_OFFLINE="1", FIFTYONE_MSLITE_HOME=str(tmp_path / "cache"))
    assert result.returncode == 1
    message = json.loads(result.stdout)["message"]
    assert "raw.githubusercontent.com" in message and "FIFTYONE_MSLITE_MIRROR" in message

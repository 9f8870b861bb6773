"""The runtime-level CLI: runtime install/info, convert, predict on model files; quiet by default."""
from __future__ import annotations

import json
import os

from helpers.cli import cli
from helpers.onnx_graphs import TinyNet


def test_runtime_info_json_says_what_runs_and_why():
    data = json.loads(cli("runtime", "info", "--json").stdout)
    assert data["default_backend"] == "worker" and data["inprocess_available"] is False
    assert data["worker_mindspore_lite"] == "2.0.0" and data["worker_python_version"].startswith("3.7")
    assert "FIFTYONE_MSLITE_RUNTIME_PYTHON" in data["worker_python_source"]
    assert data["python37"] and data["python37_source"]


def test_runtime_install_is_idempotent_on_the_real_cache():
    real = os.environ["REAL_HOME"]
    env = {"HOME": real, "FIFTYONE_MSLITE_HOME": os.path.join(real, ".cache", "fiftyone-mslite")}
    result = cli("runtime", "install", "--json", **env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["action"] == "already installed" and data["mindspore_lite"] == "2.0.0"


def test_convert_and_predict_json_without_log_spam(tmp_path, shared_dir, mirror):
    src = TinyNet.random(seed=0).save(tmp_path / "tiny.onnx", conv_attrs=False)
    done = cli("convert", str(src), "--output", str(tmp_path / "tiny.mindir"), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["source_format"] == "onnx" and data["output"].endswith(".mindir") and data["fixes"]
    assert os.access(data["output"], os.W_OK)
    for noise in ("[WARNING]", "[ERROR]", "CONVERT RESULT"):
        assert noise not in done.stdout + done.stderr
    ms = cli("convert", str(shared_dir / "onnx/mobilenet_v2_tv.onnx"), "-o", str(tmp_path / "mnv2.ms"), "--json")
    assert ms.returncode == 0, ms.stderr
    folder = shared_dir / "mirror/raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"
    images = [folder / "n01440764_tench.JPEG", folder / "n01443537_goldfish.JPEG", tmp_path / "missing.jpg"]
    pred = cli("predict", str(tmp_path / "mnv2.ms"), *map(str, images), "--labels", "imagenet-1000", "--top-k", "3",
               "--json")
    assert pred.returncode == 1  # one image failed: non-zero, but the others are answered
    rows = [json.loads(line) for line in pred.stdout.splitlines()]
    assert [r["top_k"][0]["label"] for r in rows[:2]] == ["tench", "goldfish"]
    assert all(len(r["top_k"]) == 3 for r in rows[:2]) and "missing.jpg" in rows[2]["error"]
    assert pred.stderr == ""



def test_benchmark_reports_like_mindspore_lites_tool(tiny_model):
    run = cli("benchmark", tiny_model, "--loop-count", "4", "--warmup-loop-count", "1", "--numThreads", "1", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["model"] == tiny_model and data["threads"] == 1 and data["loop_count"] == 4
    assert 0 < data["min_ms"] <= data["avg_ms"] <= data["max_ms"] and 0 < data["runtime_avg_ms"] <= data["max_ms"]
    text = cli("benchmark", tiny_model, "--loop-count", "2").stdout
    assert "NumThreads = 2, MinRunTime = " in text and "Run Benchmark" in text and "Success." in text
    bad = cli("benchmark", "no-such-model", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"] == "CatalogError"

"""Smoke test of the benchmark engine: structure and positive ratios only (timings are never asserted)."""
import json
import math

import fiftyone  # noqa: F401 - imported first, so the engine keeps conftest's isolated database
from suite import SECTIONS, render_markdown, run_benchmarks, write_docs


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_benchmark_engine_smoke(tv_mobilenet, tmp_path):
    results = run_benchmarks(SECTIONS, limit=8, repeats=1, pairs=2, models=[tv_mobilenet], log=None)

    (row,) = results["models"]["measured"]
    assert row["model"] == tv_mobilenet and row["images"] == 8 and not row["reduced"]
    assert _positive(row["size_mb"]) and set(row["latency_ms"]) == {"1", "2"}
    assert all(_positive(v) for v in row["latency_ms"].values())
    assert 0 <= row["top1"] <= row["top5"] <= 100
    assert results["models"]["seed"] and all(r["latency_ms"] for r in results["models"]["seed"])

    assert [r["threads"] for r in results["peers"]["latency"]] == [1, 2]
    assert all(_positive(r["ort_over_mslite"]) and r["max_abs_logit_diff"] < 1e-2 for r in results["peers"]["latency"])

    tp = results["throughput"]
    assert set(tp["paths"]) == {"runtime only", "runtime only, 1 session x 2 threads", "apply_model",
                                "apply_model, streams=1", "annotate", "onnxruntime only",
                                "apply_model (ONNX Runtime model)"}
    assert all(_positive(v["images_per_s"]) and len(v["rounds"]) == 2 for v in tp["paths"].values())
    assert all(v["iqr"][0] <= v["images_per_s"] <= v["iqr"][1] for v in tp["paths"].values())
    annotate = tp["paths"]["annotate"]  # CPU accounted to the workers and the decode threads, limit derived
    assert annotate["components_ms"]["inference"] > 0 and annotate["components_ms"]["decode"] > 0
    assert _positive(annotate["physical_limit"]) and _positive(annotate["limit_ratio"])
    assert tp["paths"]["runtime only"]["components_ms"].get("decode", 0) == 0  # pre-made tensors: no decoding
    assert len(tp["ratios"]) == 7 and all(_positive(v["median"]) and v["q1"] <= v["median"] <= v["q3"]
                                          for v in tp["ratios"].values())
    assert tp["noise"]["pairs"] == 2 and 0 <= tp["noise"]["idle_pct"] <= 100
    assert tp["agreement"]["annotate vs apply_model"]["pct"] == 100.0  # same labels through both FiftyOne paths

    text = render_markdown(results)
    assert "| `tv-mobilenet-v2` |" in text and "annotate / apply_model" in text
    written = write_docs(results, tmp_path)
    doc = written[0].read_text()
    for key in ("models", "peers"):
        assert f"<!-- {key}:start -->" in doc and f"<!-- {key}:end -->" in doc
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a later partial run keeps the other sections' results for the plot
    write_docs({"meta": results["meta"], "throughput": tp}, tmp_path)
    stored = json.loads(written[1].read_text())
    assert set(stored) == {"meta", "models", "peers", "throughput"}
    assert stored["models"]["measured"][0]["model"] == tv_mobilenet

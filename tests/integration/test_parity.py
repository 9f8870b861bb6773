"""MindSpore Lite predicts what the source runtime predicts, on the same tensors (benchmarks/parity.py, small).

The full run (1000 ImageNet / 5000 CIFAR-10 images) is the benchmark; here an evenly spread subset, with the
same thresholds. Subsets of 50 and 100 images make >= 99.5 % agreement mean "no image flips" — which is what
float models converted without loss should give (their probabilities differ by ~1e-5).
"""
from __future__ import annotations

import importlib.util
import sys

import pytest
from helpers.env import REPO

AGREEMENT = 0.995
MAX_PROB_DIFF = 1e-3


@pytest.fixture(scope="module")
def parity(mirror):
    """benchmarks/parity.py as a module (the benchmark is the one implementation of the comparison)."""
    pytest.importorskip("onnxruntime", reason="the reference runtime for the ONNX exports")
    spec = importlib.util.spec_from_file_location("parity", REPO / "benchmarks" / "parity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def case(parity, name: str):
    return next(c for c in parity.CASES if c.name == name)


@pytest.mark.parametrize(("name", "fmt", "limit", "min_top1"), [
    ("mobilenet_v2_tv", "ms", 50, 0.6),
    ("cifar10_resnet20", "ms", 100, 0.8),
    ("cifar10_resnet20", "mindir", 100, 0.8),
])
def test_onnx_exports_match_onnx_runtime(parity, name, fmt, limit, min_top1):
    result = parity.run_case(case(parity, name), fmt, limit=limit)

    assert result.images == limit
    assert result.agreement >= AGREEMENT, f"top-1 differs on {result.disagreements}"
    assert result.max_prob_diff <= MAX_PROB_DIFF
    # Agreement on garbage (e.g. both fed a blank tensor) would pass the above: the predictions must be right too.
    assert result.ms_top1 >= min_top1
    assert result.ms_top1 == pytest.approx(result.ref_top1, abs=1 / limit)


def test_float_tflite_matches_litert(parity):
    pytest.importorskip("ai_edge_litert", reason="the TFLite interpreter (pip install ai-edge-litert)")
    result = parity.run_case(case(parity, "mobilenet-v1-0.25-224-tflite"), "ms", limit=50)

    assert result.agreement >= AGREEMENT, f"top-1 differs on {result.disagreements}"
    assert result.max_prob_diff <= MAX_PROB_DIFF
    assert result.ms_top1 >= 0.3  # MobileNetV1 0.25 is a weak model: ~50 % top-1 on ImageNet


def test_subsets_spread_over_all_classes(parity):
    samples = parity.dataset("cifar10", limit=100)

    assert len({s.truth for s in samples}) == 10
    assert len({s.path for s in samples}) == 100

"""`quantize` end to end where MindSpore Lite 2.0.0 can finish it: weight quantization of the tiny test CNN.

Its layers are below 2.0.0's default `min_quant_weight_channel` (16), so the converter, run with the real
`WEIGHT_QUANT` config, leaves every weight float: the file loads (a quantized convolution would not, see
test_quantize_compare.py) and this checks what happens after a successful conversion — the model is registered
with its provenance, loads, predicts what the source model predicts, and the CLI reports it as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import cli

from fiftyone_mslite import runtime
from fiftyone_mslite.catalog.registry import catalog
from fiftyone_mslite.catalog.user import remove_model
from fiftyone_mslite.classifier import load_classifier
from fiftyone_mslite.files import sha256_of
from fiftyone_mslite.integration.quantization import quantize

pytestmark = pytest.mark.usefixtures("fresh_catalog")


def test_weight_quantized_model_is_registered_with_provenance_and_loads(tiny_model):
    source = catalog().model(tiny_model)
    result = quantize(tiny_model, mode="weight")
    try:
        assert result.name == f"{tiny_model}-w8" and result.path == runtime.cache_home() / "quantized" / "tiny-w8.ms"
        assert not result.emulated and result.device_path == result.path  # nothing quantized: it loads as it is
        entry = catalog().model(result.name)
        [fact] = [f for f in entry.facts if f.field == "quantization"]
        assert fact.value["source_model"] == tiny_model and fact.value["mode"] == "weight"
        assert fact.value["source_sha256"] == source.source.sha256 == sha256_of(Path(source.source.path))
        assert fact.value["converter"] == {"mindspore_lite": "2.0.0", "mode": "weight", "bits": 8,
                                           "min_quant_weight_size": 0, "min_quant_weight_channel": 16}
        assert fact.value["calibration"] is None  # weight mode needs no images
        assert fact.value["device_file"]["sha256"] == sha256_of(result.path)
        assert entry.labels == source.labels and entry.preprocess.resize == source.preprocess.resize
        assert entry.source.sha256 == sha256_of(result.path)
        images = list(np.random.default_rng(3).integers(0, 255, (6, 12, 10, 3), dtype=np.uint8))
        with load_classifier(tiny_model) as float_model, load_classifier(result.name) as quantized:
            assert [p.label for p in quantized.predict(images)] == [p.label for p in float_model.predict(images)]
    finally:
        remove_model(result.name)
        result.path.unlink()


def test_cli_quantize_reports_json(tiny_model):
    run = cli("quantize", tiny_model, "--mode", "weight", "--name", "tiny-cli-w8", "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["name"] == "tiny-cli-w8" and data["settings"]["mode"] == "weight" and data["size_mb"] > 0
    info = json.loads(cli("models", "info", "tiny-cli-w8", "--json").stdout)
    assert "quantization" in json.dumps(info)
    again = cli("quantize", tiny_model, "--mode", "weight", "--name", "tiny-cli-w8", "--json")
    assert again.returncode == 1 and "already exists" in json.loads(again.stdout)["message"]
    assert cli("models", "remove", "tiny-cli-w8").returncode == 0

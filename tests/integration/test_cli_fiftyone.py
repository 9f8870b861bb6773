"""The FiftyOne-level CLI: dataset import → annotate (resume, overwrite) → evaluate, all with --json."""
from __future__ import annotations

import json

import numpy as np
from helpers.cli import cli
from PIL import Image

CLASSES = ("alpha", "beta", "gamma", "delta", "epsilon")




def test_import_annotate_evaluate(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    for label in CLASSES:
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / label / f"{i}.png")
    (tmp_path / "imgs" / "alpha" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "beta" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")

    imported = cli("dataset", "import", "--name", "cli-tiny", "--dir", str(tmp_path / "imgs"), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"name": "cli-tiny", "samples": 21, "classes": 5}

    run = cli("annotate", "--dataset", "cli-tiny", "--model", tiny_model, "--json")
    assert run.returncode == 1  # the broken JPEG failed (and only it)
    summary = json.loads(run.stdout)
    assert summary["processed"] == 20 and summary["failed"] == 1 and "broken.jpg" in summary["failures"][0]["filepath"]

    again = json.loads(cli("annotate", "--dataset", "cli-tiny", "--model", tiny_model, "--json").stdout)
    assert again["skipped"] == 20 and again["processed"] == 0  # resumed: only the failed sample retried
    redo = json.loads(cli("annotate", "--dataset", "cli-tiny", "--model", tiny_model, "--overwrite", "--json").stdout)
    assert redo["processed"] == 20

    evaluated = cli("evaluate", "--dataset", "cli-tiny", "--pred", "predictions", "--top-k", "2", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["num_samples"] == 21 and result["mistakes_view"] == "eval-mistakes"
    assert 0 <= result["accuracy"] <= result["top_k_accuracy"] <= 1
    text = cli("evaluate", "--dataset", "cli-tiny", "--pred", "predictions").stdout
    assert "accuracy" in text and "eval-mistakes" in text


def test_fiftyone_commands_name_a_missing_dataset():
    for args in (["annotate", "--dataset", "nope", "--model", "tiny"],
                 ["evaluate", "--dataset", "nope", "--pred", "p"]):
        result = cli(*args)
        assert result.returncode != 0 and "no FiftyOne dataset named 'nope'" in result.stderr

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


def test_empty_dataset_and_unknown_dataset_are_one_line_each(tiny_model):
    import fiftyone as fo

    fo.Dataset("cli-empty", overwrite=True).persistent = True
    empty = cli("annotate", "--dataset", "cli-empty", "--model", tiny_model)
    assert empty.returncode == 1 and empty.stderr.strip() == "error: dataset 'cli-empty' has no samples"
    unknown = cli("annotate", "--dataset", "no-such-dataset", "--model", tiny_model, "--json")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["error"] == "DatasetError"
    assert "oldest supported major version" not in empty.stderr + unknown.stderr  # FiftyOne's MongoDB 6 notice


def test_concurrent_first_starts_give_pure_json(tmp_path):
    """Several commands at once with no database running yet: each starts or joins FiftyOne's database
    service, and --json stdout stays pure JSON even though mongod inherits the process's file descriptors."""
    import subprocess

    from helpers.cli import CLI
    from helpers.env import python_env

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / label / "0.png")
    env = python_env(FIFTYONE_DATABASE_DIR=str(tmp_path / "db"), HOME=str(tmp_path))
    runs = [subprocess.Popen([*CLI, "dataset", "import", "--name", f"race-{i}", "--dir", str(tmp_path / "imgs"),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for i in range(3)]
    try:
        outs = [p.communicate(timeout=300) for p in runs]
    finally:
        subprocess.run(["pkill", "-f", str(tmp_path / "db")], check=False)  # the private mongod this test started
    for p, (out, err) in zip(runs, outs):
        assert p.returncode == 0, err
        assert json.loads(out)["samples"] == 2

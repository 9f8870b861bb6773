"""The catalog as a FiftyOne model zoo source: listed, 'downloaded' through the catalog, loaded and applied."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def zoo_source(tiny_model):
    from fiftyone_mslite.integration.zoo import install_zoo_source

    return install_zoo_source()


@pytest.fixture()
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (24 + 4 * i, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_zoo_lists_the_catalog(zoo_source, tiny_model):
    import fiftyone.zoo as foz

    from fiftyone_mslite.catalog.registry import catalog
    from fiftyone_mslite.integration.zoo import install_zoo_source

    manifest = (zoo_source / "manifest.json").read_text()
    assert install_zoo_source() == zoo_source
    assert (zoo_source / "manifest.json").read_text() == manifest  # idempotent
    names = foz.list_zoo_models()
    assert set(catalog().models) <= set(names)
    zoo_model = foz.get_zoo_model(tiny_model)
    assert isinstance(zoo_model, foz.RemoteZooModel)  # what the stock "apply zoo model" operator expects
    assert {"classification", "logits", "mindspore-lite"} <= set(zoo_model.tags)


def test_load_zoo_model_downloads_through_the_catalog_and_applies(zoo_source, tiny_model, images):
    import fiftyone as fo
    import fiftyone.zoo as foz

    assert not foz.is_zoo_model_downloaded(tiny_model)
    model = foz.load_zoo_model(tiny_model)
    assert foz.is_zoo_model_downloaded(tiny_model)
    marker = json.loads(Path(foz.find_zoo_model(tiny_model)).read_text())
    assert marker["model"] == tiny_model and Path(marker["file"]).is_file()

    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=p) for p in images])
    dataset.apply_model(model, "zoo_pred", store_logits=True)
    preds = dataset.values("zoo_pred")
    assert all(isinstance(p, fo.Classification) for p in preds)
    assert {p.label for p in preds} <= {"alpha", "beta", "gamma", "delta", "epsilon"}
    assert all(len(p.logits) == 5 for p in preds)
    dataset.delete()


def test_catalog_changes_reach_the_zoo(zoo_source, tiny_model, tmp_path):
    import fiftyone.zoo as foz
    from helpers.onnx_graphs import TinyNet

    from fiftyone_mslite.catalog.user import add_model, remove_model
    from fiftyone_mslite.integration.zoo import refresh_zoo_source

    src = TinyNet.random(seed=1).save(tmp_path / "other.onnx")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    add_model("tiny-zoo-extra", str(src), str(labels), resize="squash", crop_fraction=1.0)
    try:
        assert refresh_zoo_source() == zoo_source
        assert "tiny-zoo-extra" in foz.list_zoo_models()
    finally:
        remove_model("tiny-zoo-extra")
    refresh_zoo_source()
    assert "tiny-zoo-extra" not in foz.list_zoo_models()
    assert tiny_model in foz.list_zoo_models()

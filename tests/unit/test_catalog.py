"""The catalog: schema validation, label sets, user catalog, plugins, fetch/convert, load-time checks, CLI."""
from __future__ import annotations

import pytest
from helpers.env import REPO

from fiftyone_mslite import plugins
from fiftyone_mslite.catalog import registry
from fiftyone_mslite.catalog.model_files import model_file
from fiftyone_mslite.catalog.schema import CatalogError, parse_entries

pytestmark = pytest.mark.usefixtures("fresh_catalog")


def test_builtin_catalog_has_the_13_seed_models_with_reported_figures():
    cat = registry.catalog()
    seeds = [e for e in cat.models.values() if "seed" in e.tags]
    assert len(seeds) == 13
    assert all(e.reported is not None and e.reported.latency_ms for e in seeds)
    ghost = cat.model("ghostnet600")
    assert ghost.labels == "oxford-pets-37" and ghost.preprocess.input_size == 240
    assert {f.status for f in ghost.facts} >= {"corrected", "verified"}
    assert cat.model("mobilenetv2-openimages").task == "multi"
    assert len(cat.model("mobilenetv2-openimages").alternatives) == 3


@pytest.mark.parametrize("body, message", [
    ({"models": {"m": {"labels": "cifar10", "num_classes": 10, "preprocess": {"input_size": 32}}}},
     "model 'm':\n  field 'source': Field required"),
    ({"models": {"m": {"labels": "cifar10", "num_classes": 10, "preprocess": {"input_size": 32},
                       "source": {"url": "https://x/y.ms", "path": "/y.ms"}}}}, "exactly one of 'url' or 'path'"),
    ({"models": {"m": {"labels": "cifar10", "num_classes": 10, "preprocess": {"input_size": -1},
                       "source": {"path": "/y.ms"}}}}, "field 'preprocess.input_size'"),
    ({"models": {"m": {"labels": "x", "num_classes": 10, "preprocess": {"input_size": 3, "crop": 1},
                       "source": {"path": "/y.ms"}}}}, "field 'preprocess.crop': Extra inputs"),
    ({"models": {"m": {"labels": "x", "num_classes": 3, "task": "multi", "preprocess": {"input_size": 3},
                       "source": {"path": "/y.ms"}}}}, "multi-label adapter"),
    ({"models": {"m": {"labels": "x", "num_classes": 3, "preprocess": {"input_size": 3},
                       "source": {"path": "/y.ms", "sha256": "abc"}}}}, "sha256 must be 64"),
    ({"version": 2}, "top level"),
])
def test_schema_errors_name_the_file_entry_and_field(body, message):
    with pytest.raises(CatalogError) as err:
        parse_entries(body, origin="my.yaml")
    assert "my.yaml" in str(err.value) and message in str(err.value)


def test_imagenet_label_sets(mirror, shared_dir):
    cat = registry.catalog()
    in1k, in1001 = cat.labels("imagenet-1000"), cat.labels("imagenet-1001")
    torchvision = (shared_dir / "labels" / "imagenet-1000.txt").read_text().splitlines()
    assert list(in1k.names) == torchvision  # eta's file is in torchvision's order
    assert in1k.synsets[0] == "n01440764" and in1k.key(0) == "n01440764"
    assert len(in1001) == 1001 and in1001.background and in1001.names[0] == "background"
    assert in1001.raw_names[1] == "tench, Tinca tinca" and in1001.names[1] == "tench"
    assert all(in1001.key(i + 1) == in1k.key(i) for i in range(1000))  # same class, same key
    # a 1001-way TF-slim head on the 1000 ImageNet labels is known; any other label set must say so itself
    assert in1k.background_head and not in1001.background_head
    assert not any(cat.labels(name).background_head for name in ("cifar10", "oxford-pets-37"))
    tsv = [ln.split("\t") for ln in (shared_dir / "labels" / "imagenet-1000-synsets.tsv").read_text().splitlines()[1:]]
    assert [row[1] for row in tsv] == list(in1k.synsets)


def test_openimages_label_set_matches_the_android_strings(mirror):
    labels = registry.catalog().labels("openimages-410")
    assert len(labels) == 410 and len(labels.thresholds) == 410
    strings = (mirror / "raw.githubusercontent.com/mindspore-ai/models/master/official/lite/MindSpore_inhand/"
               "imageObject/src/main/res/values-en/strings.xml").read_text()
    block = strings.split('<string-array name="image_category">')[1].split("</string-array>")[0]
    items = [s.split("</item>")[0] for s in block.split("<item>")[1:]]
    assert items == list(labels.names)
    assert labels.thresholds[:2] == (0.23, 0.03)


def test_small_label_sets_are_inline():
    cat = registry.catalog()
    assert cat.labels("cifar10").names[0] == "airplane" and len(cat.labels("oxford-pets-37")) == 37


def test_seed_download_failure_is_clear(monkeypatch):
    monkeypatch.setenv("FIFTYONE_MSLITE_OFFLINE", "1")
    with pytest.raises(CatalogError) as err:
        model_file(registry.catalog().model("ghostnet"))
    assert "ghostnet.ms" in str(err.value) and "FIFTYONE_MSLITE_MIRROR" in str(err.value)


def test_plugin_names_include_the_defaults():
    names = plugins.plugin_names()
    assert set(plugins.DEFAULT_PLUGINS) <= set(names)


def test_repo_models_yaml_is_the_packaged_one():
    from fiftyone_mslite.catalog.builtin import catalog_file

    assert catalog_file().read_text() == (REPO / "models.yaml").read_text()



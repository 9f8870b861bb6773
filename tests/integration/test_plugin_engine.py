"""An annotate engine brought by a plugin (tests/plugin_package: `mslite_test_plugin.engine`, registered through the
`register_engines` hook) used end to end: looked up by name, its own options checked and converted, batches handed
in reverse order written exactly as the local engine's, the CLI's --engine choice and --engine-option."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fiftyone_mslite import plugins
from fiftyone_mslite.cli import main
from fiftyone_mslite.engines import engine_names
from fiftyone_mslite.integration.annotation import annotate, run_key
from fiftyone_mslite.integration.model import load_model

PLUGIN_PACKAGE = Path(__file__).resolve().parents[1] / "plugin_package"


@pytest.fixture()
def engine_plugin(monkeypatch):
    """The test plugin's engine module, as its entry point registers it (scripts/setup.sh installs the test plugin);
    where the plugin is not installed, registered here as the entry point would, and unregistered afterwards."""
    monkeypatch.syspath_prepend(str(PLUGIN_PACKAGE))  # when the test plugin package is not installed
    module = importlib.import_module("mslite_test_plugin.engine")
    pm = plugins.plugin_manager()
    ours = module.NAME not in engine_names()
    if ours:
        pm.register(module, name="mslite_test_plugin.engine")
    module.HANDED.clear()
    yield module
    if ours:
        pm.unregister(module)


@pytest.fixture()
def dataset(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (12, 14, 3), dtype=np.uint8)).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.png")
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    yield ds
    ds.delete()


def test_a_plugin_engine_labels_as_the_local_engine(engine_plugin, dataset, tiny_model):
    assert engine_names() == ["local", "ray", engine_plugin.NAME]
    with load_model(tiny_model) as model:
        local = annotate(dataset, model, "local", batch_size=3, store_logits=True, progress=False)
        ours = annotate(dataset, model, "ours", batch_size=3, store_logits=True, progress=False,
                        engine=engine_plugin.NAME, engine_options={"reverse": "true"})  # as the CLI passes it
    handed = engine_plugin.HANDED
    assert [len(ids) for ids in handed] == [2, 3, 3, 3]  # the local engine's batches of 3, last first
    assert sorted(i for ids in handed for i in ids) == sorted(dataset.values("id"))  # each sample once
    assert (ours.processed, ours.failed, ours.skipped) == (local.processed, local.failed, 0) == (10, 1, 0)
    for a, b in zip(dataset.values("local"), dataset.values("ours")):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a.label, a.confidence) == (b.label, b.confidence)
            np.testing.assert_array_equal(a.logits, b.logits)
    assert dataset.values("local_error") == dataset.values("ours_error")
    settings = [dataset.get_run_info(run_key(field)).config.settings for field in ("local", "ours")]
    assert settings[0] == settings[1]


def test_a_plugin_engine_refuses_options_it_lacks_before_any_work(engine_plugin, dataset, tiny_model):
    with pytest.raises(ValueError, match=r"engine='recording' has no option 'actors' \(its options: reverse\); "
                                         r"actors is one of the options of engine='ray'"):
        annotate(dataset, tiny_model, "pred", engine=engine_plugin.NAME, engine_options={"actors": 2}, progress=False)
    with pytest.raises(ValueError, match=r"engine='recording' option reverse='sideways': Input should be a valid "
                                         r"boolean"):
        annotate(dataset, tiny_model, "pred", engine=engine_plugin.NAME, engine_options={"reverse": "sideways"},
                 progress=False)
    assert not dataset.has_sample_field("pred") and not dataset.list_runs() and not engine_plugin.HANDED


def test_the_cli_offers_the_plugin_engine_and_passes_its_options(engine_plugin, dataset, tiny_model):
    assert "[local|ray|...]" in CliRunner().invoke(main, ["annotate", "--help"]).output  # ours, then plugins'
    assert "'local', 'ray', 'recording'" in CliRunner().invoke(main, ["annotate", "--dataset", dataset.name,
                                                                      "--model", tiny_model, "--engine", "x"]).output
    dataset.persistent = True
    run = CliRunner().invoke(main, ["annotate", "--dataset", dataset.name, "--model", tiny_model, "--field", "pred",
                                    "--batch-size", "4", "--engine", "recording", "--engine-option", "reverse=yes",
                                    "--json"])
    assert run.exit_code == 1, run.output  # 1: a sample failed
    assert (json.loads(run.output)["processed"], json.loads(run.output)["failed"]) == (10, 1)
    assert [len(ids) for ids in engine_plugin.HANDED] == [3, 4, 4]
    bad = CliRunner().invoke(main, ["annotate", "--dataset", dataset.name, "--model", tiny_model, "--field", "x",
                                    "--engine", "recording", "--engine-option", "reverse", "--json"])
    assert bad.exit_code == 2 and "expected KEY=VALUE, got 'reverse'" in bad.output
    earlier = CliRunner().invoke(main, ["annotate", "--dataset", dataset.name, "--model", tiny_model, "--field", "x",
                                        "--engine", "recording", "--actors", "2"])  # a flag of earlier releases
    assert earlier.exit_code == 1 and "actors is one of the options of engine='ray'" in earlier.output
    unknown = CliRunner().invoke(main, ["annotate", "--dataset", dataset.name, "--model", tiny_model, "--field", "x",
                                        "--engine", "spark"])
    assert unknown.exit_code == 2 and "'spark' is not one of 'local', 'ray', 'recording'" in unknown.output

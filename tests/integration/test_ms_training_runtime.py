"""Training graphs cut to their inference graph, run on MindSpore Lite 2.0.0 (which refuses the training files).

lenet_tod.ms (1.2.0) is checked against a numpy LeNet-5 built from the file's own weights; lenet_train_2.1.1.ms
against MindSpore's own inference export of the same network (lenet_tod_infer.ms, 1.5.0) with equal weights.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import numpy_ops as ref
from helpers.legacy_v0 import run_models
from helpers.ms_files import tiny_training_graph

from fiftyone_mslite import runtime
from fiftyone_mslite.errors import ModelFileError
from fiftyone_mslite.modelfiles.legacy.reader import read_current
from fiftyone_mslite.modelfiles.legacy.writer import write_current
from fiftyone_mslite.modelfiles.ms_training import cut_inference_graph

FLOAT32 = 43
FEATURES = "Default/network-WithLossCell/_backbone-LeNet5/relu-ReLU/ReLU-op101"


@pytest.fixture(scope="module")
def corpus(shared_dir) -> Path:
    return shared_dir / "ms-corpus"


def cut_file(corpus: Path, name: str, folder: Path, output: str | None = None) -> Path:
    path = folder / f"{Path(name).stem}-{'features' if output else 'inference'}.ms"
    path.write_bytes(cut_inference_graph((corpus / name).read_bytes(), output))
    return path


def weights_of(path: Path) -> dict[str, np.ndarray]:
    graph = read_current(path.read_bytes())
    return {t.name: np.frombuffer(t.data, np.float32).reshape(t.dims) for t in graph.tensors
            if t.is_const and t.dtype == FLOAT32}


def lenet5(x: np.ndarray, w: dict[str, np.ndarray], features: bool = False) -> np.ndarray:
    """LeNet-5 as MindSpore's model zoo defines it: valid 5x5 convs, ReLU, 2x2 max pools, NCHW flatten, 3 dense."""
    h = ref.pool2d(np.maximum(ref.conv2d(x, w["conv1.weight"]), 0), (2, 2), (2, 2))
    h = ref.pool2d(np.maximum(ref.conv2d(h, w["conv2.weight"]), 0), (2, 2), (2, 2))
    h = np.maximum(ref.dense(h.transpose(0, 3, 1, 2).reshape(len(x), -1), w["fc1.weight"], w["fc1.bias"]), 0)
    h = np.maximum(ref.dense(h, w["fc2.weight"], w["fc2.bias"]), 0)
    return h if features else ref.dense(h, w["fc3.weight"], w["fc3.bias"])


@pytest.mark.parametrize("name", ["lenet_tod.ms", "lenet_train_2.1.1.ms"])
def test_training_file_is_refused_and_its_cut_loads_and_runs(corpus, name, tmp_path):
    with pytest.raises(ModelFileError):
        runtime.open_model(corpus / name).close()
    with runtime.open_model(cut_file(corpus, name, tmp_path)) as session:
        assert [s.shape[1:] for s in session.inputs] == [(32, 32, 1)] and session.outputs[0].shape[-1] == 10
        (scores,) = session.run(np.random.default_rng(1).random((5, 32, 32, 1), np.float32))
    assert scores.shape == (5, 10) and np.isfinite(scores).all() and np.ptp(scores) > 0


def test_lenet_tod_inference_graph_equals_numpy_lenet_from_the_files_weights(corpus, runtime_python, tmp_path,
                                                                             record_property):
    weights = weights_of(corpus / "lenet_tod.ms")
    x = np.random.default_rng(2).normal(size=(32, 32, 32, 1)).astype(np.float32) * 50
    logits, features = run_models(runtime_python, [(cut_file(corpus, "lenet_tod.ms", tmp_path), [x]),
                                                   (cut_file(corpus, "lenet_tod.ms", tmp_path, FEATURES), [x])])
    for got, expected in ((logits[0], lenet5(x, weights)), (features[0], lenet5(x, weights, features=True))):
        assert got.shape == expected.shape
        relative = np.abs(got - expected).max() / np.abs(expected).max()
        record_property(f"max_rel_diff_{got.shape[1]}", float(relative))
        assert relative < 1e-5


def test_lenet_train_cut_computes_what_mindspores_inference_export_computes(corpus, runtime_python, tmp_path):
    """Same network, trained a little further in lenet_tod_infer.ms: with its weights, the cut gives its output."""
    graph = read_current(cut_file(corpus, "lenet_train_2.1.1.ms", tmp_path).read_bytes())
    exported = read_current((corpus / "lenet_tod_infer.ms").read_bytes())
    trained = {t.name: t.data for t in exported.tensors if t.is_const}
    changed = sum(t.data != trained[t.name] for t in graph.tensors if t.is_const and t.name in trained)
    graph.tensors = [replace(t, data=trained[t.name]) if t.is_const and t.name in trained else t
                     for t in graph.tensors]
    (tmp_path / "cut-trained.ms").write_bytes(write_current(graph))
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 1)).astype(np.float32) * 50
    ours, theirs = run_models(runtime_python, [(tmp_path / "cut-trained.ms", [x]),
                                               (corpus / "lenet_tod_infer.ms", [x])])
    assert changed == 8  # every weight and bias differs between the two files
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-5 * np.abs(theirs[0]).max())


def test_bypassed_dropout_and_carried_over_ops_compute_the_network(runtime_python, tmp_path):
    jobs, expected = [], []
    x = np.random.default_rng(4).normal(size=(2, 4)).astype(np.float32)
    for middle, fn in (("Dropout", lambda h: h), ("Abs", np.abs)):
        path = tmp_path / f"tiny-{middle}.ms"
        path.write_bytes(cut_inference_graph(tiny_training_graph(middle)))
        w = weights_of(path)
        jobs.append((path, [x]))
        expected.append(fn(ref.dense(x, w["fc.weight"])) + w["fc.bias"])
    for (out,), want in zip(run_models(runtime_python, jobs), expected):
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)

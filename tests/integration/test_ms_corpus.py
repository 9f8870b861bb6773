"""Real users' .ms files (../shared/ms-corpus, MindSpore Lite 1.0 … 2.5): every file runs after the bridge or is
refused in one line; inspect's `loadable` agrees with MindSpore Lite 2.0.0 on every file; the weight-quantized
2.2 classifier reproduces its reference output; malformed variants get clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import cli
from helpers.legacy_v0 import run_models

from fiftyone_mslite import runtime
from fiftyone_mslite.errors import MsInspectError
from fiftyone_mslite.modelfiles import ms_compat
from fiftyone_mslite.modelfiles.bridge import bridge_bytes
from fiftyone_mslite.modelfiles.flatbuf import MutableFlatBuffer
from fiftyone_mslite.modelfiles.legacy import schema as S
from fiftyone_mslite.modelfiles.ms_inspect import inspect_ms

# What the bridge does with each corpus file (None: runs as is); refused files name why.
EXPECTED = {
    "lenet_tod_infer.ms": None, "ml_face_isface.ms": None, "ml_face_isface_r13.ms": None,
    "ml_headpose_pb2tflite.ms": None, "mnet.caffemodel.ms": None, "two_add_operators.ms": None,
    "ml_face_isface_quant.ms": "decoded 5 weight-quantized tensors to float32",
    "ml_face_isface_offline_model.ms": "unwrapped the MindSpore Lite model held by node 'Custom'",
    "retinaface1.ms": "upgraded legacy-schema (v0) to the current schema (347 ops)",
    "lenet_tod.ms": "training", "lenet_train_2.1.1.ms": "training",
}
TRAINING = ("lenet_tod.ms", "lenet_train_2.1.1.ms")


@pytest.fixture(scope="session")
def corpus(shared_dir) -> Path:
    path = shared_dir / "ms-corpus"
    if not path.is_dir():
        pytest.skip(f"needs the real .ms corpus at {path}; absent")
    return path


def read_openharmony(path: Path) -> np.ndarray:
    """OpenHarmony's reference layout: int32 ndim, int32 dims[ndim], then float32 data."""
    raw = path.read_bytes()
    ndim = int(np.frombuffer(raw, np.int32, 1)[0])
    dims = np.frombuffer(raw, np.int32, ndim, 4)
    return np.frombuffer(raw, np.float32, offset=4 + 4 * ndim).reshape(dims)


def run_once(path: Path, *inputs: np.ndarray) -> list[np.ndarray]:
    with runtime.open_model(path, threads=1) as session:
        return session.run(*inputs)


def test_corpus_is_complete(corpus):
    assert sorted(p.name for p in corpus.glob("*.ms")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_claims_what_mindspore_lite_does(corpus, name):
    """`loadable` is never true for a file 2.0.0 refuses nor false for one it loads."""
    info = inspect_ms(corpus / name)
    loads, why = ms_compat.trial_load(corpus / name) if info.schema != "v0" else (False, "v0")
    assert info.loadable is loads, (info.hint, why)
    assert info.version.startswith("MindSpore Lite ")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_file_runs_after_the_bridge_or_is_refused_in_one_line(corpus, name, tmp_path, runtime_python):
    expected = EXPECTED[name]
    out = tmp_path / "bridged.ms"
    run = cli("upgrade", str(corpus / name), "-o", str(out), "--json")
    if expected is None:
        assert run.returncode == 1 and "nothing to do" in json.loads(run.stdout)["message"] and not out.exists()
        out = corpus / name
    else:
        assert run.returncode == 0, run.stderr
        assert expected in " ".join(json.loads(run.stdout)["steps"]) or name in TRAINING
        assert inspect_ms(out).loadable is True
    # Every graph input filled (ml_headpose has three of different leading sizes), as MindSpore Lite's own tools do.
    inputs = [np.full(tuple(max(d, 1) for d in t.dims), 0.5, np.float32) for t in inspect_ms(out).inputs]
    [outputs] = run_models(runtime_python, [(out, inputs)])
    assert not isinstance(outputs, str), outputs
    assert outputs and all(np.isfinite(o).all() for o in outputs)


def test_quantized_classifier_reproduces_its_reference(corpus, tmp_path):
    """ml_face_isface_quant.ms (2.2 converter, int8 per-channel weights) on its reference input: the reference was
    computed with the fp16 plan, so 0.01 is the bound (the float model under 2.0.0's fp32 is 0.0023 off)."""
    out = tmp_path / "quant.ms"
    out.write_bytes(bridge_bytes((corpus / "ml_face_isface_quant.ms").read_bytes(), "quant").data)
    x = np.fromfile(corpus / "ml_face_isface_quant_0.input", np.float32).reshape(1, 48, 48, 3)
    ref = read_openharmony(corpus / "ml_face_isface_quant0.output")
    got = run_once(out, x)[0]
    diff = float(np.abs(got - ref).max())
    assert diff < 0.01, (got, ref)
    float_model = run_once(corpus / "ml_face_isface.ms", x)[0]
    assert float(np.abs(got - float_model).max()) < 0.01  # the quantized weights stay close to the float ones


def test_offline_wrapper_computes_the_float_model(corpus, tmp_path):
    out = tmp_path / "unwrapped.ms"
    out.write_bytes(bridge_bytes((corpus / "ml_face_isface_offline_model.ms").read_bytes(), "offline").data)
    x = np.fromfile(corpus / "ml_face_isface_0.input", np.float32).reshape(1, 48, 48, 3)
    np.testing.assert_array_equal(run_once(out, x)[0], run_once(corpus / "ml_face_isface.ms", x)[0])


def test_leading_padding_is_skipped_by_inspect_and_the_bridge(corpus, tmp_path):
    for name in ("ml_face_isface.ms", "ml_face_isface_quant.ms"):
        padded = tmp_path / f"padded-{name}"
        padded.write_bytes(bytes(4096 + 3) + (corpus / name).read_bytes())
        info = inspect_ms(padded)
        assert (info.padding, info.loadable, info.bridgeable) == (4099, False, True)
        assert info.inputs[0].dims == (1, 48, 48, 3) and "zero bytes precede the model" in info.hint
        text = cli("inspect", str(padded)).stdout
        assert "4099 zero bytes precede the model" in text and "bridge: rewrites it" in text
        result = bridge_bytes(padded.read_bytes(), padded.name)
        assert result.steps[0] == "skipped 4099 bytes of leading zero padding"
    nothing = tmp_path / "only-zeros.ms"
    nothing.write_bytes(bytes(5000))
    with pytest.raises(MsInspectError, match="starts with 5000 zero bytes and no MindSpore Lite model follows"):
        inspect_ms(nothing)
    run = cli("upgrade", str(nothing), "-o", str(tmp_path / "x.ms"))
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "no MindSpore Lite model follows" in run.stderr
    assert not (tmp_path / "x.ms").exists()


def _patched(src: Path, dst: Path, edit) -> Path:
    """A copy of `src` with `edit(buf, graph)` applied to its bytes."""
    graph = ms_compat.read_graph(src.read_bytes())
    buf = MutableFlatBuffer(src.read_bytes())
    edit(buf, graph)
    dst.write_bytes(bytes(buf.buf))
    return dst


def _refused(path: Path, tmp_path: Path, *phrases: str) -> None:
    out = tmp_path / "never.ms"
    run = cli("upgrade", str(path), "-o", str(out))
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert all(p in run.stderr for p in phrases), run.stderr
    assert not out.exists()
    info = inspect_ms(path)
    assert info.loadable is False and not info.bridgeable


def test_truncated_quant_tables_are_refused(corpus, tmp_path):
    src = corpus / "ml_face_isface_quant.ms"

    def fewer_params(buf, graph):  # conv2/weight: 32 per-channel parameters → 31
        start, _ = buf.vector_span(graph.tensors[7].table, S.T_QUANT, 4, "quantParams")
        buf.put("I", start - 4, 31)

    def short_data(buf, graph):  # conv3/weight: 18432 int8 values → 1000 bytes left
        start, _ = buf.vector_span(graph.tensors[12].table, S.T_DATA, 1, "data")
        buf.put("I", start - 4, 1000)

    _refused(_patched(src, tmp_path / "q1.ms", fewer_params), tmp_path, "node 'conv2'", "31 per-channel parameters")
    _refused(_patched(src, tmp_path / "q2.ms", short_data), tmp_path, "node 'conv3'", "it holds 1000 bytes")


def test_device_compiled_node_is_refused(corpus, tmp_path):
    def om_payload(buf, graph):
        start, _ = buf.vector_span(graph.tensors[1].table, S.T_DATA, 1, "data")
        buf.buf[start:start + 8] = b"IMOD\0\0\0\0"

    path = _patched(corpus / "ml_face_isface_offline_model.ms", tmp_path / "om.ms", om_payload)
    _refused(path, tmp_path, "node 'Custom' holds a graph compiled for an Ascend/HiAI NPU",
             "it runs only on that device: export the float model from its source")


def test_constant_output_and_newer_op_are_refused(corpus, tmp_path):
    def output_is_weight(buf, graph):  # the graph output points at conv1's weights (issue 20's hang)
        for tab, slot in ((graph.meta, S.MG_OUTPUTS), (buf.tables(graph.meta, S.MG_SUBGRAPHS, "sg")[0], S.SG_OUTPUTS)):
            start, _ = buf.vector_span(tab, slot, 4, "outputs")
            buf.put("I", start, 2)

    def newer_op(buf, graph):  # the softmax becomes FillV2, which came after 2.0.0
        prim = buf.sub_table(graph.nodes[-1].table, S.N_PRIMITIVE, "primitive")
        buf.put("B", buf.field_pos(prim, S.P_TYPE, 1, "type"), len(S.PRIMITIVES_2_0_0) + 1)

    src = corpus / "ml_face_isface.ms"
    _refused(_patched(src, tmp_path / "const.ms", output_is_weight), tmp_path,
             "graph output 'conv1/bias' is a constant (weights), not computed from the inputs")
    _refused(_patched(src, tmp_path / "newer.ms", newer_op), tmp_path, "op FillV2 (node 'prob') is newer than")


@pytest.mark.parametrize("name", ["ml_face_isface.ms", "ml_face_isface_quant.ms"])
def test_face_classifier_added_by_a_user_annotates_real_images(corpus, imagenet_dir, tmp_path, name):
    """The face/not-face classifier, float and 2.2-quantized, as a user adds it: `models add` → `annotate`."""
    import fiftyone as fo

    images = sorted(imagenet_dir.glob("*.JPEG"))[:6]
    if not images:
        pytest.skip(f"needs ImageNet sample images in {imagenet_dir}")
    (tmp_path / "imgs" / "unlabeled").mkdir(parents=True)
    for image in images:
        shutil.copy(image, tmp_path / "imgs" / "unlabeled" / image.name)
    labels = tmp_path / "face.txt"
    labels.write_text("face\nnot-face\n")
    model = f"face-{name.split('.')[0].replace('_', '-')}"
    added = cli("models", "add", model, "--source", str(corpus / name), "--labels", str(labels), "--resize",
                "squash", "--crop-fraction", "1.0", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["input_size"] == 48
    dataset = f"faces-{model}"
    imported = cli("dataset", "import", "--name", dataset, "--dir", str(tmp_path / "imgs"), "--overwrite", "--json")
    assert imported.returncode == 0, imported.stdout
    run = cli("annotate", "--dataset", dataset, "--model", model, "--field", "face", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["processed"] == len(images)
    predictions = [s["face"] for s in fo.load_dataset(dataset).select_fields("face")]
    assert all(p.label in ("face", "not-face") and 0.5 <= p.confidence <= 1.0 for p in predictions)
    cli("models", "remove", model)
    fo.delete_dataset(dataset)


def test_inspect_trial_load_names_the_refusing_node(corpus):
    ok = json.loads(cli("inspect", str(corpus / "two_add_operators.ms"), "--json", "--trial-load", "always").stdout)
    assert (ok["loadable"], ok["decided_by"], ok["version"]) == (True, "trial load in MindSpore Lite 2.0.0",
                                                                 "MindSpore Lite 2.5.0")
    quant = cli("inspect", str(corpus / "ml_face_isface_quant.ms"), "--json", "--trial-load", "always")
    quant = json.loads(quant.stdout)
    assert quant["loadable"] is False and "node 'conv2' failed to prepare" in quant["hint"]
    assert quant["bridgeable"] and [f["kind"] for f in quant["findings"]] == ["weight-quant"]
    text = cli("inspect", str(corpus / "ml_face_isface_quant.ms")).stdout
    assert "converter MindSpore Lite 2.2.0.20231129" in text and "NOT loadable by MindSpore Lite 2.0.0" in text
    assert "weights decoded to float32" in text and "bridge: rewrites it" in text


@pytest.mark.parametrize("name", ["mobilefacenet0924.ms", "retinaface0924.ms"])
def test_legacy_files_are_not_claimed_loadable_and_run_after_the_bridge(shared_dir, name, tmp_path):
    path = shared_dir / "legacy-ms" / name
    if not path.is_file():
        pytest.skip(f"needs {path}; absent")
    info = inspect_ms(path)
    assert (info.schema, info.loadable, info.bridgeable) == ("v0", False, True)
    assert ms_compat.trial_load(path)[0] is False
    out = tmp_path / name
    out.write_bytes(bridge_bytes(path.read_bytes(), name).data)
    assert ms_compat.trial_load(out) == (True, "")

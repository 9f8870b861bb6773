"""Embeddings from MindSpore Lite models: the penultimate tensor exposed at conversion, checked against ONNX
Runtime (LiteRT for TFLite sources) at the same node, and used by stock FiftyOne / FiftyOne Brain calls (real
worker, real MongoDB)."""
import json

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter
from helpers.catalog import write_user_catalog
from helpers.cli import cli
from PIL import Image, ImageOps

from fiftyone_mslite import downloads
from fiftyone_mslite.adapters.images import load_image
from fiftyone_mslite.catalog.model_files import model_file
from fiftyone_mslite.catalog.registry import catalog
from fiftyone_mslite.classifier import load_classifier
from fiftyone_mslite.errors import CatalogError, DatasetError, EmbeddingNotFoundError
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.model import MSLiteModel, load_model
from fiftyone_mslite.modelfiles.convert import convert_model
from fiftyone_mslite.modelfiles.embedding import EmbeddingOutput
from fiftyone_mslite.modelfiles.tflite_dequant import dequantize_tflite

TV_EMBEDDING = "/Flatten_output_0"  # torchvision MobileNetV2: GlobalAveragePool → Flatten → Gemm (classifier)
TFLITE_MODEL = "mobilenet-v1-0.25-224-tflite"  # float TFLite: AVERAGE_POOL_2D → CONV_2D → SQUEEZE → SOFTMAX
TFLITE_EMBEDDING = "MobilenetV1/Logits/AvgPool_1a/AvgPool"


@pytest.fixture(scope="module")
def sample_files(imagenet_dir) -> list:
    return sorted(imagenet_dir.glob("*.JPEG"))[::41][:24]


@pytest.fixture(scope="module")
def tv_model(tv_mobilenet):
    with load_model(tv_mobilenet) as model:
        yield model


def _ort_at(onnx_path, tensor: str, batch_nchw: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the source model with `tensor` as an extra output: the reference embedding."""
    model = onnx.load(str(onnx_path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name  # the export takes batches of one
    return np.concatenate([session.run([tensor], {name: x[None]})[0].reshape(1, -1) for x in batch_nchw])


def _litert_at(tflite_path, tensor: str, batch_nhwc: np.ndarray) -> np.ndarray:
    """LiteRT on the source TFLite with every tensor kept: the reference embedding at `tensor`."""
    interp = Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    (index,) = [t["index"] for t in interp.get_tensor_details() if t["name"] == tensor]
    feed = interp.get_input_details()[0]["index"]
    rows = []
    for x in batch_nhwc:  # the file takes batches of one
        interp.set_tensor(feed, x[None].astype(np.float32))
        interp.invoke()
        rows.append(interp.get_tensor(index).reshape(1, -1).copy())
    return np.concatenate(rows)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_conversion_records_the_penultimate_tensor(tv_mobilenet):
    entry = catalog().model(tv_mobilenet)
    assert (entry.embedding.tensor, entry.embedding.size) == (TV_EMBEDDING, 1280)
    info = cli("models", "info", tv_mobilenet, "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["embedding"] == {"tensor": TV_EMBEDDING, "size": 1280}
    with load_classifier(tv_mobilenet) as clf:  # two outputs; the adapter sees only the logits
        assert [o.name for o in clf.session.outputs] == ["logits", TV_EMBEDDING]
        assert clf.has_embeddings and clf.embedding_size == 1280 and len(clf.labels) == 1000


def test_embeddings_equal_onnxruntime_at_the_same_node(tv_model, sample_files, shared_dir):
    images = [load_image(p) for p in sample_files]
    ours = tv_model.embed_all(images)
    batch = np.stack([tv_model.classifier.prepare(img) for img in images])  # NHWC, as the .ms takes it
    ref = _ort_at(shared_dir / "onnx" / "mobilenet_v2_tv.onnx", TV_EMBEDDING, batch.transpose(0, 3, 1, 2))
    assert ours.shape == (len(images), 1280) and ours.dtype == np.float32
    cos = _cosine(ours.astype(np.float64), ref.astype(np.float64))
    assert cos.min() >= 0.9999, cos.min()
    # the embedding of a predict() is the one of the same inference
    labels = tv_model.predict_all(images[:3])
    np.testing.assert_array_equal(tv_model.get_embeddings(), tv_model.embed_all(images[:3]))
    assert [lbl.label for lbl in labels] == [p.label for p in tv_model.classifier.predict(images[:3])]


def test_stock_fiftyone_embedding_calls(tv_model, sample_files):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sample_files])
    assert isinstance(tv_model, MSLiteModel) and tv_model.has_embeddings
    ds.compute_embeddings(tv_model, embeddings_field="emb", batch_size=8)
    stored = np.stack(ds.values("emb"))
    np.testing.assert_allclose(stored, tv_model.embed_all([load_image(p) for p in sample_files]), rtol=1e-5,
                               atol=1e-6)
    viz = fob.compute_visualization(ds, model=tv_model, method="pca", brain_key="viz", batch_size=8)
    assert viz.points.shape == (len(ds), 2)
    sim = fob.compute_similarity(ds, model=tv_model, brain_key="sim", backend="sklearn", batch_size=8)
    assert sim.total_index_size == len(ds)
    fob.compute_uniqueness(ds, model=tv_model, uniqueness_field="uniq", batch_size=8)
    assert all(0 <= u <= 1 for u in ds.values("uniq"))
    assert set(ds.list_brain_runs()) >= {"viz", "sim"}


def test_similarity_puts_a_resized_flipped_copy_nearest(tv_model, sample_files, tmp_path):
    """A sample and a resized, mirrored copy of it come out nearest each other, and among the least unique."""
    original = sample_files[5]
    copy = tmp_path / f"copy-{original.name}"
    with Image.open(original) as img:
        ImageOps.mirror(img.convert("RGB").resize((img.width * 2 // 3, img.height * 2 // 3))).save(copy)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in [*sample_files, copy]])
    ids = dict(zip(ds.values("filepath"), ds.values("id")))
    a, b = ids[str(original)], ids[str(copy)]
    ds.compute_embeddings(tv_model, embeddings_field="emb", batch_size=8)
    fob.compute_similarity(ds, embeddings="emb", brain_key="sim", backend="sklearn")
    assert ds.sort_by_similarity(a, k=2, brain_key="sim").values("id") == [a, b]
    assert ds.sort_by_similarity(b, k=2, brain_key="sim").values("id") == [b, a]
    fob.compute_uniqueness(ds, embeddings="emb")
    least = ds.sort_by("uniqueness").limit(3).values("id")  # uniqueness weighs 3 neighbours, not only the nearest
    assert {a, b} <= set(least)


def test_model_without_a_penultimate_tensor_says_how_to_set_it(tiny_onnx, fresh_catalog, monkeypatch, tmp_path):
    """Conv → ReLU → pool → flatten is all there is: no classifier layer, so no embedding; predictions still work."""
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    labels = tmp_path / "four.txt"
    labels.write_text("a\nb\nc\nd\n")
    from fiftyone_mslite.catalog.user import add_model

    entry, _ = add_model("no-head", str(tiny_onnx), str(labels), resize="squash", crop_fraction=1.0)
    assert entry.embedding.tensor is None
    with load_model("no-head") as model:
        assert not model.has_embeddings
        img = np.zeros((8, 8, 3), np.uint8)
        assert model.predict(img) is not None
        with pytest.raises(EmbeddingNotFoundError, match=r"model 'no-head'.*embedding: \{tensor: NAME\}"):
            model.embed(img)
        ds = fo.Dataset()
        ds.add_sample(fo.Sample(filepath=str(labels)))
        with pytest.raises(ValueError, match="must expose embeddings"):
            ds.compute_embeddings(model)


def test_catalog_names_the_tensor(tiny_model, fresh_catalog, monkeypatch, tmp_path, shared_dir):
    """`embedding: {tensor: NAME}` overrides the search; a name the graph lacks is refused with the model named."""
    source = catalog().model(tiny_model)
    body = source.model_dump(mode="json", exclude={"name", "origin", "embedding"})
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    write_user_catalog(tmp_path, {"tiny-relu": {**body, "embedding": {"tensor": "r"}},
                                  "tiny-typo": {**body, "embedding": {"tensor": "nope"}}})
    with pytest.raises(CatalogError, match=r"model 'tiny-typo'.*no tensor named 'nope'.*embedding: \{tensor"):
        load_classifier("tiny-typo")
    with pytest.raises(CatalogError, match="feature map"):  # the ReLU output is 8x8 per channel, not pooled
        load_classifier("tiny-relu")


def test_ms_graph_surgery_adds_the_embedding(fresh_catalog, monkeypatch, tmp_path, shared_dir, sample_files,
                                             tv_model):
    """A .ms source with a named tensor: the current-schema writer re-emits it with that tensor as an output.
    (The converter names a .ms tensor after the op that makes it: ONNX's '/Flatten_output_0' is '/Flatten'.)"""
    plain = convert_model(shared_dir / "onnx" / "mobilenet_v2_tv.onnx", tmp_path / "plain.ms").output
    images = [load_image(p) for p in sample_files[:6]]
    want = tv_model.embed_all(images)  # before the catalog below hides tv-mobilenet-v2 (the model may reopen)
    monkeypatch.setenv("FIFTYONE_MSLITE_USER_CATALOG", str(tmp_path / "user.yaml"))
    write_user_catalog(tmp_path, {"tv-ms": {"labels": "imagenet-1000", "num_classes": 1000,
                                            "source": {"path": str(plain)}, "preprocess": {"input_size": 224},
                                            "embedding": {"tensor": "/Flatten"}}})
    with load_model("tv-ms") as model:
        assert model.has_embeddings and model.embedding_size == 1280
        np.testing.assert_allclose(model.embed_all(images), want, rtol=1e-4, atol=1e-5)


def _counting_submits(model, monkeypatch) -> list:
    """Record every batch the classifier sends to MindSpore Lite."""
    clf, calls = model.classifier, []
    real = clf.submit
    monkeypatch.setattr(clf, "submit", lambda batch: calls.append(len(batch)) or real(batch))
    return calls


def test_annotate_writes_labels_and_embeddings_from_one_inference(tv_model, sample_files, tmp_path, monkeypatch):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    files = [*sample_files[:10], broken]
    with_emb, plain = fo.Dataset(), fo.Dataset()
    for ds in (with_emb, plain):
        ds.add_samples([fo.Sample(filepath=str(p)) for p in files])
    calls = _counting_submits(tv_model, monkeypatch)
    summary = annotate(with_emb, tv_model, "pred", batch_size=4, draft=False, embeddings_field="emb")
    assert calls == [4, 4, 2]  # the 10 decodable images, each inferred once: no second pass for the embeddings
    assert summary.processed == 10 and summary.failed == 1
    annotate(plain, tv_model, "pred", batch_size=4, draft=False)
    assert with_emb.values("pred.label") == plain.values("pred.label")
    emb = with_emb.values("emb")
    assert emb[-1] is None and with_emb.values("pred_error")[-1]  # the failed sample has neither
    np.testing.assert_allclose(np.stack(emb[:-1]), tv_model.embed_all([load_image(p) for p in files[:-1]]),
                               rtol=1e-5, atol=1e-6)
    again = annotate(with_emb, tv_model, "pred", batch_size=4, draft=False, embeddings_field="emb")
    assert again.skipped == 10 and again.processed == 0  # resumes like any run
    fob.compute_visualization(with_emb.exists("emb"), embeddings="emb", method="pca", brain_key="v")


def test_annotate_refuses_embeddings_of_another_size(tv_model, sample_files, tiny_model, monkeypatch):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sample_files[:3]])
    with load_model(tiny_model) as tiny:  # TinyNet's penultimate tensor: 4 values
        annotate(ds, tiny, "tiny_pred", embeddings_field="emb")
    assert len(ds.values("emb")[0]) == 4
    calls = _counting_submits(tv_model, monkeypatch)
    with pytest.raises(DatasetError, match=r"field 'emb' holds embeddings of size 4.*size 1280"):
        annotate(ds, tv_model, "pred", embeddings_field="emb")
    assert calls == [] and not ds.has_field("pred")  # refused before any work
    with pytest.raises(DatasetError, match="holds EmbeddedDocumentField|holds Classification"):
        annotate(ds, tv_model, "pred", embeddings_field="tiny_pred")


def test_cli_annotate_embeddings(tv_mobilenet, sample_files):
    ds = fo.Dataset("cli-embeddings")
    ds.persistent = True
    try:
        ds.add_samples([fo.Sample(filepath=str(p)) for p in sample_files[:6]])
        run = cli("annotate", "--dataset", ds.name, "--model", tv_mobilenet, "--embeddings", "emb", "--json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["processed"] == 6
        ds.reload()
        assert [len(v) for v in ds.values("emb")] == [1280] * 6 and ds.count("predictions") == 6
    finally:
        ds.delete()


def test_tflite_conversion_adds_the_penultimate_tensor(mirror):
    """A float TFLite source gets its classifier layer's input as an extra output, found by the graph walk."""
    assert catalog().model(TFLITE_MODEL).embedding.tensor is None  # nothing named in the catalog: found
    with load_classifier(TFLITE_MODEL) as clf:
        assert [o.name for o in clf.session.outputs] == ["MobilenetV1/Predictions/Reshape_1", TFLITE_EMBEDDING]
        assert clf.has_embeddings and clf.embedding_size == 256 and len(clf.labels) == 1001
        assert clf.entry.embedding.tensor == TFLITE_EMBEDDING
    found = model_file(catalog().model(TFLITE_MODEL))  # recorded beside the converted file, reused as it is
    assert found.embedding == EmbeddingOutput(TFLITE_EMBEDDING, 256) and found.embedding_problem is None


def test_tflite_embeddings_equal_litert_at_the_same_node(mirror, sample_files):
    entry = catalog().model(TFLITE_MODEL)
    source = downloads.fetch(entry.source.url, sha256=entry.source.sha256)
    images = [load_image(p) for p in sample_files[:8]]
    with load_model(TFLITE_MODEL) as model:
        ours = model.embed_all(images)
        batch = np.stack([model.classifier.prepare(img) for img in images])  # NHWC, as both files take it
        labels = [p.label for p in model.classifier.predict(images)]
    ref = _litert_at(source, TFLITE_EMBEDDING, batch)
    assert ours.shape == (len(images), 256) and ours.dtype == np.float32
    cos = _cosine(ours.astype(np.float64), ref.astype(np.float64))
    assert cos.min() >= 0.9999, cos.min()
    assert len(set(labels)) > 1  # real, distinct predictions from the same inference


def test_quantized_tflite_gets_the_output_on_the_dequantized_file(mirror, sample_files, tmp_path):
    """`dequantize: true`: the output is added to the float file that is converted, and equals LiteRT there."""
    name = "coral-mobilenet-v1-0.25-128-quant"
    entry = catalog().model(name)
    assert entry.source.conversion.dequantize
    found = model_file(entry)
    assert found.embedding == EmbeddingOutput(TFLITE_EMBEDDING, 256)
    images = [load_image(p) for p in sample_files[:4]]
    with load_model(name) as model:
        ours = model.embed_all(images)
        batch = np.stack([model.classifier.prepare(img) for img in images])
    floated = dequantize_tflite(downloads.fetch(entry.source.url, sha256=entry.source.sha256),
                                tmp_path / "float.tflite")
    cos = _cosine(ours.astype(np.float64), _litert_at(floated, TFLITE_EMBEDDING, batch).astype(np.float64))
    assert cos.min() >= 0.9999, cos.min()


CORAL = "coral-mobilenet-v2-quant"  # uint8 TFLite, dequantized: 1280-d embeddings like tv-mobilenet-v2's


def test_another_models_embeddings_are_refused_and_brain_checks_their_model(tv_mobilenet, mirror, sample_files):
    """Issue 20: tv-mobilenet-v2 then coral-mobilenet-v2-quant (both 1280-d) into one embeddings field: the second
    is refused before any work (the CLI in one line); replaced on purpose, Brain on the first model's predictions
    refuses them, and refuses embeddings of unknown origin."""
    from fiftyone_mslite.integration.brain import run_brain

    ds = fo.Dataset("emb-owner")
    ds.persistent = True
    try:
        ds.add_samples([fo.Sample(filepath=str(p)) for p in sample_files[:6]])
        annotate(ds, tv_mobilenet, "p2", store_logits=True, embeddings_field="emb2", progress=False)
        tv_vectors = np.stack(ds.values("emb2"))
        with load_model(CORAL) as coral:
            assert coral.embedding_size == tv_vectors.shape[1] == 1280
            with pytest.raises(DatasetError, match=r"^field 'emb2' already holds embeddings of tv-mobilenet-v2 "
                                                   r"\(written with 'p2'\) on 6 samples.*another embeddings field"):
                annotate(ds, coral, "p3", embeddings_field="emb2", progress=False)
            assert not ds.has_field("p3")  # refused before any work
            np.testing.assert_array_equal(np.stack(ds.values("emb2")), tv_vectors)
            run = cli("annotate", "--dataset", ds.name, "--model", CORAL, "--field", "p3", "--embeddings", "emb2")
            assert run.returncode == 1 and run.stderr.startswith("error: field 'emb2' already holds embeddings of "
                                                                 "tv-mobilenet-v2") and run.stderr.count("\n") == 1
            annotate(ds, coral, "p3", store_logits=True, embeddings_field="emb3", progress=False)  # its own field
            ds.compute_embeddings(coral, embeddings_field="emb_x")  # not annotate's: origin unknown
        assert run_brain(ds, "p2", "p3").embeddings_field == "emb2"  # its own run's embeddings: fine
        for field, why in (("emb3", r"6 samples come from coral-mobilenet-v2-quant"),
                           ("emb_x", r"6 samples were not written by annotate")):
            with pytest.raises(DatasetError, match=rf"^'{field}' cannot serve Brain on 'p2' \(predicted by "
                                                   rf"tv-mobilenet-v2\): its embeddings on {why}"):
                run_brain(ds, "p2", "p3", embeddings_field=field)
        with load_model(CORAL) as coral:  # replacing them on purpose is allowed...
            annotate(ds, coral, "p3", store_logits=True, embeddings_field="emb2", overwrite=True, progress=False)
        ds.delete_sample_field("p2_mistakenness")
        with pytest.raises(DatasetError, match=r"^'emb2' cannot serve Brain on 'p2'.*coral-mobilenet-v2-quant"):
            run_brain(ds, "p2", "p3")  # ...and then Brain on tv's predictions refuses them, before any work
        assert not ds.has_field("p2_mistakenness")
        assert run_brain(ds, "p3", "p2", embeddings_field="emb2").embeddings_field == "emb2"
        brain = cli("evaluate", "--dataset", ds.name, "--pred", "p2", "--gt", "p3", "--brain")
        assert brain.returncode == 1 and brain.stderr.startswith("error: 'emb2' cannot serve Brain on 'p2'")
    finally:
        ds.delete()

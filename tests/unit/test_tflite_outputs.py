"""The TFLite embedding output: the graph walk on a real TFLite file finds the classifier layer's input, the copy
gets it as an extra subgraph output (the source untouched), and a name the graph lacks is one clear error."""
from __future__ import annotations

import hashlib

import pytest

from fiftyone_mslite.errors import EmbeddingNotFoundError, ModelFileError
from fiftyone_mslite.modelfiles.embedding import AUTO, EmbeddingOutput
from fiftyone_mslite.modelfiles.flatbuf import FlatReader
from fiftyone_mslite.modelfiles.tflite_outputs import add_tflite_embedding

FLOAT = ("mirror/raw.githubusercontent.com/tensorflow/tflite-support/master/tensorflow_lite_support/cc/test/"
         "testdata/task/vision/mobilenet_v1_0.25_224_1_default_1.tflite")
POOL = "MobilenetV1/Logits/AvgPool_1a/AvgPool"  # AVERAGE_POOL_2D → CONV_2D (logits) → SQUEEZE → SOFTMAX


def _output_names(data: bytes) -> list[str]:
    rd = FlatReader(data)
    (subgraph,) = rd.tables(rd.root("Model"), 2, "Model.subgraphs")
    tensors = rd.tables(subgraph, 0, "SubGraph.tensors")
    return [rd.string(tensors[i], 3, "Tensor.name") for i in rd.values(subgraph, 2, "[i32]", "SubGraph.outputs")]


def test_the_walk_finds_the_pooled_features_and_the_copy_outputs_them(shared_dir, tmp_path):
    source = shared_dir / FLOAT
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    found = add_tflite_embedding(source, tmp_path / "emb.tflite", AUTO)
    assert found == EmbeddingOutput(POOL, 256)  # [1, 1, 1, 256]: one spatial position, so an embedding
    assert _output_names((tmp_path / "emb.tflite").read_bytes()) == ["MobilenetV1/Predictions/Reshape_1", POOL]
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_a_named_tensor_is_taken_and_an_unpooled_one_refused(shared_dir, tmp_path):
    source = shared_dir / FLOAT
    assert add_tflite_embedding(source, tmp_path / "a.tflite", POOL) == EmbeddingOutput(POOL, 256)
    with pytest.raises(EmbeddingNotFoundError, match=r"7x7 feature map"):
        add_tflite_embedding(source, tmp_path / "b.tflite", "MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6")
    assert not (tmp_path / "b.tflite").exists()


def test_a_tensor_name_that_does_not_exist_is_a_clear_error(shared_dir, tmp_path):
    with pytest.raises(EmbeddingNotFoundError, match=r"mobilenet.*no tensor named 'nope'.*last tensors: .*Reshape_1"):
        add_tflite_embedding(shared_dir / FLOAT, tmp_path / "out.tflite", "nope")
    assert not (tmp_path / "out.tflite").exists()


def test_a_file_that_is_not_tflite_is_refused(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x10\0\0\0TFL3" + b"\xff" * 40)
    with pytest.raises(ModelFileError, match="bad.tflite is not a readable TFLite model"):
        add_tflite_embedding(bad, tmp_path / "out.tflite", AUTO)

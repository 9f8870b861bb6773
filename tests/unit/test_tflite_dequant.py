"""The TFLite dequantizer on the shared bounds-checked FlatBuffer reader: real Coral model in, float model out;
damaged files give one clear error, never struct.error/IndexError."""
from __future__ import annotations

import numpy as np
import pytest

from fiftyone_mslite.errors import TFLiteDequantizeError
from fiftyone_mslite.modelfiles.flatbuf import FlatReader
from fiftyone_mslite.modelfiles.tflite_dequant import QUANT_SCALE, TENSOR_QUANTIZATION, TENSOR_TYPE, dequantize_tflite

CORAL = "mirror/raw.githubusercontent.com/google-coral/test_data/master/mobilenet_v1_0.25_128_quant.tflite"


def _tensors(data: bytes):
    rd = FlatReader(data)
    (subgraph,) = rd.tables(rd.root("Model"), 2, "Model.subgraphs")
    return rd, rd.tables(subgraph, 0, "SubGraph.tensors")


def test_every_quantized_tensor_becomes_float_without_quantization(shared_dir, tmp_path):
    src_rd, src = _tensors((shared_dir / CORAL).read_bytes())
    quants = [src_rd.sub_table(t, TENSOR_QUANTIZATION, "q") for t in src]
    was_quantized = [q is not None and src_rd.array(q, QUANT_SCALE, "[f32]", "scale").size > 0 for q in quants]
    out = dequantize_tflite(shared_dir / CORAL, tmp_path / "float.tflite")
    rd, tensors = _tensors(out.read_bytes())
    assert len(tensors) == len(src) and sum(was_quantized) > len(src) // 2
    assert all(rd.sub_table(t, TENSOR_QUANTIZATION, "quantization") is None for t in tensors)
    assert all(rd.scalar(t, TENSOR_TYPE, "i8", 0, "type") == 0 for t, q in zip(tensors, was_quantized) if q)


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.9, 0.95])  # cuts through what the rewrite reads
def test_truncated_files_are_one_clear_error(shared_dir, tmp_path, fraction):
    data = (shared_dir / CORAL).read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(TFLiteDequantizeError, match="cut.tflite"):
        dequantize_tflite(cut, tmp_path / "out.tflite")
    assert not (tmp_path / "out.tflite").exists()


def test_random_bytes_after_the_identifier(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x10\x00\x00\x00TFL3" + np.random.default_rng(0).bytes(4096))
    with pytest.raises(TFLiteDequantizeError, match="junk.tflite"):
        dequantize_tflite(junk, tmp_path / "out.tflite")

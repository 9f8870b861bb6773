"""A weight-quantized `.ms` rewritten with its weights dequantized to float32: what a device runtime computes.

Weight quantization (`WEIGHT_QUANT`) stores int8 weights with per-channel (or per-tensor) scale and zero point
and computes in float: MindSpore Lite dequantizes every such weight when it loads the model
(`WeightDecoder` / `DequantUtil`: `((q - zero_point) * scale) * var_corr + mean_corr` per channel). The x86 wheel
of 2.0.0 cannot load such a file (its shared packed-weight manager does not know the dequantized buffers:
docs/quantization.md), so to measure what the quantized model predicts, this applies the same formula ahead of
time: each quantized weight becomes float32 data, its node is marked unquantized, and the file runs on the fp32
kernels, giving the numbers a phone computes after loading the quantized file. The file is patched in place
(`flatbuf.MutableFlatBuffer`); nothing else changes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .flatbuf import CorruptFlatBuffer, MutableFlatBuffer
from .legacy import schema as S

INT8, FLOAT32 = 32, 43  # TypeId numbers of the .ms schema
T_HUFFMAN, T_COMPRESS = 10, 11  # Tensor.enableHuffmanCode, Tensor.weightQuantCompressType
QUANT_NONE = 0


def _dequantized(q: np.ndarray, dims: list[int], params: list[dict], where: str) -> np.ndarray:
    """The runtime's dequantization: per channel along the first axis (conv KHWC weights, transposed fully
    connected weights), or one scale for the whole tensor."""
    if len(params) == 1:
        p = params[0]
        return ((q.astype(np.float64) - p["zero_point"]) * p["scale"]).astype(np.float32)
    if not dims or len(params) != dims[0]:
        raise ModelFileError(f"{where}: {len(params)} quantization parameters for a tensor of shape {dims}; "
                             "only per-tensor and first-axis per-channel weights are supported")
    rows = q.reshape(len(params), -1).astype(np.float64)
    scale = np.array([p["scale"] for p in params])[:, None]
    zero = np.array([p["zero_point"] for p in params])[:, None]
    var = np.array([p["var_corr"] if 0 <= p["var_corr"] <= 10 else 1.0 for p in params])[:, None]
    mean = np.array([p["mean_corr"] for p in params])[:, None]
    return (((rows - zero) * scale).astype(np.float32) * var.astype(np.float32)
            + mean.astype(np.float32)).astype(np.float32).reshape(-1)


def dequantize_weights(source: str | os.PathLike, output: str | os.PathLike) -> int:
    """Write `source` (a weight-quantized .ms) to `output` with every int8 weight as float32; returns how many
    weights were dequantized (0: the file had none, and `output` is a copy)."""
    where = Path(source)
    try:
        fb = MutableFlatBuffer(where.read_bytes())
        meta = fb.root("MetaGraph")
        count = 0
        for i, tensor in enumerate(fb.tables(meta, S.MG_TENSORS, "MetaGraph.allTensors")):
            what = f"{where.name}: tensor {i}"
            params = [fb.fields(q, S.QUANT_PARAM, what) for q in fb.tables(tensor, S.T_QUANT, what)]
            data = fb.raw(tensor, S.T_DATA, what)
            if not params or not data or fb.scalar(tensor, S.T_DTYPE, "i32", 0, what) != INT8:
                continue
            if fb.scalar(tensor, T_HUFFMAN, "bool", False, what) or fb.scalar(tensor, T_COMPRESS, "i32", 0, what):
                raise ModelFileError(f"{what} is stored compressed (Huffman or packed): not supported")
            dims = fb.values(tensor, S.T_DIMS, "[i32]", what)
            values = _dequantized(np.frombuffer(data, np.int8), dims, params, what).tobytes()
            vec = fb.append_vector(values, len(values))
            data_field = fb.field_pos(tensor, S.T_DATA, 4, what)
            fb.put("I", data_field, vec - data_field)
            fb.put("i", fb.field_pos(tensor, S.T_DTYPE, 4, what), FLOAT32)
            count += 1
        for i, node in enumerate(fb.tables(meta, S.MG_NODES, "MetaGraph.nodes")):
            pos = fb.field_pos(node, S.N_QUANT_TYPE, 4, f"{where.name}: node {i}")
            if pos is not None:
                fb.put("i", pos, QUANT_NONE)
    except CorruptFlatBuffer as exc:
        raise ModelFileError(f"{where}: not a readable .ms ({exc})") from None
    Path(output).write_bytes(bytes(fb.buf))
    return count

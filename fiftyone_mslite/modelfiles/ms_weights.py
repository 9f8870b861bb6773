"""Decode the weight encodings of weight-quantized ``.ms`` files to float32, as MindSpore Lite's runtime does.

Why: MindSpore Lite 2.0.0 fails to pack the weights of every weight-quantized convolution (its shared weight
packing looks for the dequantized buffer in the model file and stops at "pack weight is nullptr"), so the bridge
stores the float32 weights the writing release's runtime would have computed at load time. Transcribed from
``mindspore-lite/src/litert/weight_decoder.{h,cc}`` (unchanged in this respect from 1.6 to 2.5):

* bit packing (``numBits`` 1..7 or 9..15): LSB-first bit stream of uint8 (int8 tensors) or uint16 words,
  value = bits - 2^(numBits-1) (``UnPackUtil``);
* ``INDEXING`` / ``SPARSE``: MSB-first bit streams of unique values and indices (``IndexingDecompress``,
  ``SparseDecompress``, zero points filling the gaps);
* k-means: ``quantClusters[q + 128]`` (``DecodeKMeansData``);
* dequantization: per tensor ``(q - zp) * scale``; per channel along the op's preferred dimension
  ``(q - zp) * scale * varCorr + meanCorr`` in double precision, then float32 (``DequantPerChannelData``).

* ``FSE`` / ``FSE_INT``: finite-state-entropy coded symbols of float32 / int32 centroids
  (``tools/converter/quantizer/fse_decoder.{h,cc}``, ``fse_bit_stream.cc``: 64-bit chunks popped from the end).

* Huffman (``enableHuffmanCode``): ``huffman_decode.cc``'s "keys#codes#bits" string.

``FSE_INFER`` tensors are refused with their name (not decoded here yet). Every table is bounds-checked: a
truncated or inconsistent one raises WeightDecodeError naming the tensor.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_INT_DTYPES = {32: np.int8, 33: np.int16, 34: np.int32}
COMPRESS_TYPES = ("NONE", "INDEXING", "SPARSE", "FSE", "BITPACKING", "FSE_INT", "FSE_INFER")  # model.fbs
_MAX_VAR_CORR = 10
_MAX_ELEMENTS = 1 << 31  # a hostile header must not make us allocate before the data is checked


class WeightDecodeError(ValueError):
    """A weight table that cannot be decoded (the caller adds the file and its own error type)."""


@dataclass(frozen=True)
class QuantTensor:
    """A weight tensor as stored: raw bytes, MindSpore TypeId, dims and its quantization tables."""

    name: str
    data: bytes
    dtype: int
    dims: tuple[int, ...]
    params: Sequence[dict[str, Any]]
    clusters: Sequence[float] = ()
    huffman: bool = False
    compress: int = 0

    @property
    def count(self) -> int:
        return math.prod(self.dims) if self.dims else 1


def _bits_msb(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


class _BitReader:
    """Fixed-width MSB-first fields out of a bit vector, bounds-checked."""

    def __init__(self, bits: np.ndarray, name: str) -> None:
        self.bits, self.pos, self.name = bits, 0, name

    def take(self, count: int, width: int) -> np.ndarray:
        end = self.pos + count * width
        if end > self.bits.size:
            raise WeightDecodeError(f"tensor '{self.name}': its compressed table is truncated "
                                    f"(needs {end} bits, holds {self.bits.size})")
        if width == 0:
            return np.zeros(count, np.int64)
        chunk = self.bits[self.pos:end].reshape(count, width).astype(np.int64)
        self.pos = end
        return chunk @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))

    def one(self, width: int) -> int:
        return int(self.take(1, width)[0])


def _unique_values(rd: _BitReader, bits: int) -> np.ndarray:
    count = rd.one(bits) or (1 << bits)
    return rd.take(count, bits) - (1 << (bits - 1))


def _check_range(values: np.ndarray, dtype: type, name: str) -> np.ndarray:
    info = np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise WeightDecodeError(f"tensor '{name}': decoded values outside {np.dtype(dtype).name}")
    return values.astype(dtype)


def _indexing(t: QuantTensor, bits: int) -> np.ndarray:
    rd = _BitReader(_bits_msb(t.data), t.name)
    unique = _unique_values(rd, bits)
    index = rd.take(t.count, math.ceil(math.log2(unique.size)) if unique.size > 1 else 0)
    if index.size and index.max() >= unique.size:
        raise WeightDecodeError(f"tensor '{t.name}': an index points past its {unique.size} unique values")
    return _check_range(unique[index], np.int8 if bits <= 8 else np.int16, t.name)


def _sparse(t: QuantTensor, bits: int) -> np.ndarray:
    rd = _BitReader(_bits_msb(t.data), t.name)
    coor_bits = rd.one(8)
    nonzero = rd.one(32)
    unique = _unique_values(rd, bits)
    index = rd.take(nonzero, math.ceil(math.log2(unique.size)) if unique.size > 1 else 0)
    gaps = rd.take(nonzero, coor_bits)
    if index.size and index.max() >= unique.size:
        raise WeightDecodeError(f"tensor '{t.name}': an index points past its {unique.size} unique values")
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and positions[-1] >= t.count:
        raise WeightDecodeError(f"tensor '{t.name}': its sparse coordinates run past its {t.count} elements")
    if t.count - (positions[-1] + 1 if positions.size else 0) >= (1 << coor_bits):
        raise WeightDecodeError(f"tensor '{t.name}': its sparse table ends too early")
    per_channel = max(t.count // len(t.params), 1)
    zero_points = np.array([p["zero_point"] for p in t.params], np.int64)
    out = zero_points[np.minimum(np.arange(t.count) // per_channel, len(t.params) - 1)]
    out[positions] = unique[index]
    return _check_range(out, np.int8 if bits <= 8 else np.int16, t.name)


def _unpack(t: QuantTensor, bits: int) -> np.ndarray:
    word = np.uint8 if t.dtype == 32 else np.uint16
    data = t.data[:len(t.data) - len(t.data) % np.dtype(word).itemsize]
    stream = np.unpackbits(np.frombuffer(data, word).view(np.uint8), bitorder="little")
    full = stream.size // bits
    values = stream[:full * bits].reshape(full, bits).astype(np.int64) @ (1 << np.arange(bits, dtype=np.int64))
    rest = stream[full * bits:]
    if rest.size:  # the runtime reads the last word's leftover bits as one more (short) value
        values = np.append(values, int(rest.astype(np.int64) @ (1 << np.arange(rest.size, dtype=np.int64))))
    if values.size < t.count:
        raise WeightDecodeError(f"tensor '{t.name}': {t.count} values expected, its bit-packed data holds "
                                f"{values.size}")
    return (values[:t.count] - (1 << (bits - 1))).astype(np.int8 if t.dtype == 32 else np.int16)


class _FSEStream:
    """``FSEBitStream::Pop`` over the serialized chunks (64-bit words read from the last one backwards)."""

    def __init__(self, chunks: np.ndarray, current: int, bits: int, name: str) -> None:
        self.chunks, self.index, self.current, self.bits, self.name = chunks, len(chunks) - 1, current, bits, name

    def pop(self, count: int) -> int:
        right = self.current >> ((64 - self.bits) & 63)  # a shift by 64 is one by 0 on the CPUs MindSpore targets
        result = right & ((1 << count) - 1)
        self.bits -= count
        if self.bits > 0:
            return result
        if self.bits == 0:
            if self.index > -1:
                self.bits, self.current = 64, int(self.chunks[self.index])
                self.index -= 1
            return result
        if self.index < 0:
            raise WeightDecodeError(f"tensor '{self.name}': its FSE bit stream ends early")
        self.bits += count
        self.current = int(self.chunks[self.index])
        self.index -= 1
        right |= (self.current & ((1 << (count - self.bits)) - 1)) << self.bits
        self.bits = 64 - (count - self.bits)
        return right


def _fse_tables(frequency: np.ndarray, table_log: int, name: str) -> tuple[list[int], list[int], list[int]]:
    """``FSECreateStatesForDecoding``: (symbol, next-state baseline, bit count) per state."""
    size = 1 << table_log
    if int(frequency.sum()) != size:
        raise WeightDecodeError(f"tensor '{name}': its FSE frequencies sum to {int(frequency.sum())}, not {size}")
    step, pos, symbols = (size >> 1) + (size >> 3) + 3, 0, [0] * size
    for sym, freq in enumerate(frequency.tolist()):
        for _ in range(freq):
            symbols[pos] = sym
            pos = (pos + step) & (size - 1)
    if pos:
        raise WeightDecodeError(f"tensor '{name}': its FSE frequencies do not spread over the table")
    counts = frequency.astype(np.int64).tolist()
    baseline, bits = [0] * size, [0] * size
    for i, sym in enumerate(symbols):
        x = counts[sym]
        counts[sym] += 1
        bits[i] = table_log - (x.bit_length() - 1)
        baseline[i] = (x << bits[i]) - size
    return symbols, baseline, bits


def _fse(t: QuantTensor, centroid_type: str) -> np.ndarray:
    """``FSEDecoder::DeCompress``: the header, frequencies, centroids (float32 or int32) and the bit stream."""
    data = t.data

    def field(offset: int, dtype: str, count: int = 1) -> np.ndarray:
        end = offset + np.dtype(dtype).itemsize * count
        if end > len(data):
            raise WeightDecodeError(f"tensor '{t.name}': its FSE table is truncated ({len(data)} bytes, needs {end})")
        return np.frombuffer(data, dtype, count, offset)

    symbols_count, table_log = (int(v) for v in field(0, "<u2", 2))
    chunk_count = int(field(4, "<u4")[0])
    if not 1 <= table_log <= 16 or chunk_count < 1:
        raise WeightDecodeError(f"tensor '{t.name}': its FSE header is invalid (table log {table_log})")
    frequency = field(8, "<u4", symbols_count)
    offset = -(-(8 + 4 * symbols_count) // 8) * 8
    centroids = field(offset, centroid_type, symbols_count)
    offset = -(-(offset + 4 * symbols_count) // 8) * 8
    chunks = field(offset, "<u8", chunk_count - 1)
    offset += 8 * (chunk_count - 1)
    stream = _FSEStream(chunks, int(field(offset, "<u8")[0]), int(field(offset + 8, "u1")[0]), t.name)
    symbols, baseline, bits = _fse_tables(frequency, table_log, t.name)
    out = np.empty(t.count, centroids.dtype)
    remaining = t.count
    state = stream.pop(table_log)
    while stream.index >= 0 or bits[state] == 0 or stream.bits > 0:
        if remaining == 0:
            return out
        remaining -= 1
        out[remaining] = centroids[symbols[state]]
        state = baseline[state] + stream.pop(bits[state])
        if state >= len(symbols):
            raise WeightDecodeError(f"tensor '{t.name}': its FSE bit stream is corrupt")
    if remaining:
        raise WeightDecodeError(f"tensor '{t.name}': its FSE stream holds fewer than {t.count} values")
    return out


_PSEUDO_EOF = 128


def _huffman(t: QuantTensor) -> np.ndarray:
    """``HuffmanDecode::DoHuffmanDecode``: "keys#codes#bits" — space-separated int8 keys and their 0/1 codes,
    then MSB-first bits up to the pseudo-EOF key (128); the decoded bytes are the int8 values."""
    parts = t.data.split(b"#", 2)
    if len(parts) != 3:
        raise WeightDecodeError(f"tensor '{t.name}': its Huffman table has no 'keys#codes#' header")
    try:
        keys = [int(k) for k in parts[0].split()]
    except ValueError:
        raise WeightDecodeError(f"tensor '{t.name}': its Huffman keys are not integers") from None
    codes = parts[1].decode("latin-1").split()
    if len(keys) < len(codes) or any(set(c) - {"0", "1"} or not c for c in codes):
        raise WeightDecodeError(f"tensor '{t.name}': its Huffman codes are malformed")
    root: dict = {}
    for key, code in zip(keys, codes):
        node = root
        for bit in code[:-1]:
            node = node.setdefault(bit, {})
            if not isinstance(node, dict):
                raise WeightDecodeError(f"tensor '{t.name}': its Huffman codes are not prefix-free")
        if code[-1] in node:
            raise WeightDecodeError(f"tensor '{t.name}': its Huffman codes are not prefix-free")
        node[code[-1]] = key
    out, node = bytearray(), root
    for bit in np.unpackbits(np.frombuffer(parts[2], np.uint8)).tolist():
        node = node.get("1" if bit else "0")
        if node is None:
            raise WeightDecodeError(f"tensor '{t.name}': its Huffman bits follow no code")
        if not isinstance(node, dict):
            if node == _PSEUDO_EOF:
                break
            out.append(node & 0xFF)
            node = root
    if len(out) < t.count:
        raise WeightDecodeError(f"tensor '{t.name}': {t.count} values expected, its Huffman data holds {len(out)}")
    return np.frombuffer(bytes(out[:t.count]), np.int8)


def integers(t: QuantTensor) -> np.ndarray:
    """The quantized integers of ``t`` (flat), whatever their storage."""
    if any(d < 0 for d in t.dims) or t.count > _MAX_ELEMENTS:
        raise WeightDecodeError(f"tensor '{t.name}' claims dims {list(t.dims)}, which no weight tensor has")
    if t.huffman:
        return _huffman(t)
    if not t.params:
        raise WeightDecodeError(f"tensor '{t.name}' has no quantization parameters")
    bits = int(t.params[0]["num_bits"])
    if t.compress in (1, 2):
        if not 1 <= bits <= 16:
            raise WeightDecodeError(f"tensor '{t.name}': {bits}-bit values cannot be indexed")
        return _indexing(t, bits) if t.compress == 1 else _sparse(t, bits)
    if t.compress == 5:  # FSE_INT: integer centroids, dequantized like plain weights
        return _check_range(_fse(t, "<i4").astype(np.int64), np.int8 if t.dtype == 32 else np.int16, t.name)
    if t.compress:
        kind = COMPRESS_TYPES[t.compress] if t.compress < len(COMPRESS_TYPES) else str(t.compress)
        raise WeightDecodeError(f"tensor '{t.name}' is {kind}-compressed, which the bridge does not decode yet")
    if (1 <= bits < 8 or 8 < bits < 16) and t.dtype in (32, 33):
        return _unpack(t, bits)
    dtype = _INT_DTYPES.get(t.dtype)
    if dtype is None:
        raise WeightDecodeError(f"tensor '{t.name}' has data type {t.dtype}, not a quantized integer type")
    size = np.dtype(dtype).itemsize * t.count
    if len(t.data) < size:
        raise WeightDecodeError(f"tensor '{t.name}': {t.count} values expected, it holds {len(t.data)} bytes")
    return np.frombuffer(t.data, dtype, t.count)


def dequantize(t: QuantTensor, preferred_dim: int) -> np.ndarray:
    """``t`` as float32 with its dims, exactly as the runtime's ``DequantTensor`` computes it."""
    if t.compress == 3:  # FSE: the centroids are the dequantized float32 values themselves
        if any(d < 0 for d in t.dims) or t.count > _MAX_ELEMENTS:
            raise WeightDecodeError(f"tensor '{t.name}' claims dims {list(t.dims)}, which no weight tensor has")
        return _fse(t, "<f4").reshape(t.dims)
    q = integers(t).astype(np.int64)
    params = list(t.params)
    if len(params) == 1:
        p = params[0]
        if t.clusters:
            index = q + 128
            if index.min() < 0 or index.max() >= len(t.clusters):
                raise WeightDecodeError(f"tensor '{t.name}': a k-means index points past its "
                                        f"{len(t.clusters)} clusters")
            return np.asarray(t.clusters, np.float32)[index].reshape(t.dims)
        return ((q - p["zero_point"]) * p["scale"]).astype(np.float32).reshape(t.dims)
    dims = t.dims
    if not 0 <= preferred_dim < len(dims) or dims[preferred_dim] != len(params):
        raise WeightDecodeError(f"tensor '{t.name}': {len(params)} per-channel parameters do not match dimension "
                                f"{preferred_dim} of its shape {list(dims)}")
    shape = (math.prod(dims[:preferred_dim]), len(params), math.prod(dims[preferred_dim + 1:]))

    def column(key: str, default: float) -> np.ndarray:
        return np.array([p.get(key, default) for p in params], np.float64)[None, :, None]

    var_corr = column("var_corr", 1.0)
    var_corr[(var_corr < 0) | (var_corr > _MAX_VAR_CORR)] = 1.0
    values = (q.reshape(shape) - column("zero_point", 0)) * column("scale", 1.0) * var_corr + column("mean_corr", 0)
    return values.astype(np.float32).reshape(dims)


def preferred_dim(op: str, index: int, dims: Sequence[int], version: tuple[int, ...] | None,
                  attrs: dict[str, Any]) -> int:
    """The per-channel axis of input ``index`` of ``op`` (``WeightDecoder::GetPreferredDim``)."""
    if version is None or version < (1, 6, 0):
        if op == "MatMulFusion" and index in (0, 1):
            channel_first = not attrs.get("transpose_a") if index == 0 else attrs.get("transpose_b")
            return 0 if channel_first else 1
        return 0
    if op == "MatMulFusion":
        last, second = len(dims) - 1, len(dims) - 2
        if index == 0:
            return last if attrs.get("transpose_a") else second
        if index == 1:
            return second if attrs.get("transpose_b") else last
        return 0
    if op == "Conv2dTransposeFusion":
        if version < (1, 8, 0):
            return 0
        depthwise = attrs.get("in_channel") == attrs.get("group") == attrs.get("out_channel")
        return 0 if depthwise else len(dims) - 1
    if op == "Gather":
        return int(attrs.get("axis", 0))
    return 0

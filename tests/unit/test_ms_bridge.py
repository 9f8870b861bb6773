"""The model-file bridge without a runtime: weight decoders against encoders written from the runtime's layout,
the float32 rewrite of a weight-quantized current-schema graph, leading padding, refusals."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.legacy_v0 import V0Graph

from fiftyone_mslite.errors import ModelBridgeError, MsInspectError
from fiftyone_mslite.modelfiles import ms_compat
from fiftyone_mslite.modelfiles import ms_weights as W
from fiftyone_mslite.modelfiles.bridge import bridge_bytes, bridge_file, runnable_model
from fiftyone_mslite.modelfiles.flatbuf import FlatReader
from fiftyone_mslite.modelfiles.legacy import schema as S
from fiftyone_mslite.modelfiles.legacy.graph import Graph, Node, SubGraph, Tensor
from fiftyone_mslite.modelfiles.legacy.writer import write_graph
from fiftyone_mslite.modelfiles.ms_inspect import inspect_ms, leading_padding

RNG = np.random.default_rng(7)


def _param(scale: float, zp: int, bits: int = 8, var_corr: float = 1.0, mean_corr: float = 0.0) -> dict:
    return {"scale": scale, "zero_point": zp, "num_bits": bits, "var_corr": var_corr, "mean_corr": mean_corr}


def _bits(values, width: int) -> list[int]:
    return [(int(v) >> (width - 1 - i)) & 1 for v in values for i in range(width)]


def _bytes_msb(bits: list[int]) -> bytes:
    bits = bits + [0] * (-len(bits) % 8)
    return np.packbits(np.array(bits, np.uint8)).tobytes()


def test_per_channel_dequantization_follows_the_runtime_formula():
    q = RNG.integers(-128, 128, (3, 2, 2, 4)).astype(np.int8)
    params = [_param(0.01 * (c + 1), c - 1, var_corr=1.0 + c / 100, mean_corr=c / 1000) for c in range(3)]
    params[2]["var_corr"] = 42.0  # out of range: the runtime resets it to 1
    t = W.QuantTensor("w", q.tobytes(), 32, q.shape, params)
    got = W.dequantize(t, 0)
    for c, p in enumerate(params):
        var = 1.0 if p["var_corr"] > 10 else p["var_corr"]
        want = ((q[c].astype(np.int64) - p["zero_point"]) * p["scale"] * var + p["mean_corr"]).astype(np.float32)
        np.testing.assert_array_equal(got[c], want)
    # MatMul's second input, not transposed, is quantized along its last axis (2.x converters)
    m = RNG.integers(-128, 128, (5, 3)).astype(np.int8)
    mt = W.QuantTensor("m", m.tobytes(), 32, m.shape, [_param(0.5, 0), _param(1.0, 0), _param(2.0, 1)])
    dim = W.preferred_dim("MatMulFusion", 1, m.shape, (2, 2, 0), {"transpose_b": False})
    assert dim == 1
    want = ((m - np.array([0, 0, 1])) * [0.5, 1.0, 2.0]).astype(np.float32)
    np.testing.assert_array_equal(W.dequantize(mt, dim), want)
    with pytest.raises(W.WeightDecodeError, match="3 per-channel parameters do not match dimension 0"):
        W.dequantize(mt, 0)


def test_bit_packed_weights():
    bits = 4
    values = RNG.integers(-8, 8, 11)
    stream = [((int(v) + 8) >> k) & 1 for v in values for k in range(bits)]  # LSB first, as UnPackData reads
    stream += [0] * (-len(stream) % 8)
    packed = np.packbits(np.array(stream, np.uint8), bitorder="little").tobytes()
    t = W.QuantTensor("p", packed, 32, (11,), [_param(0.25, 0, bits)])
    np.testing.assert_array_equal(W.integers(t), values)
    np.testing.assert_array_equal(W.dequantize(t, 0), (values * 0.25).astype(np.float32))
    with pytest.raises(W.WeightDecodeError, match="11 values expected, its bit-packed data holds"):
        W.integers(W.QuantTensor("p", packed[:3], 32, (11,), [_param(0.25, 0, bits)]))


def test_indexing_compression_and_a_truncated_table():
    bits = 8
    unique = np.array([-5, 0, 7, 100])
    index = RNG.integers(0, 4, 24)
    stream = _bits([len(unique)], bits) + _bits(unique + 128, bits) + _bits(index, 2)
    t = W.QuantTensor("i", _bytes_msb(stream), 32, (2, 12), [_param(1.0, 0)], compress=1)
    np.testing.assert_array_equal(W.integers(t), unique[index])
    cut = W.QuantTensor("i", _bytes_msb(stream)[:8], 32, (2, 12), [_param(1.0, 0)], compress=1)
    with pytest.raises(W.WeightDecodeError, match="'i': its compressed table is truncated"):
        W.integers(cut)


def test_sparse_compression_fills_gaps_with_each_channels_zero_point():
    bits, coor_bits = 8, 3
    unique = np.array([9, -3])
    positions = [1, 2, 6, 9, 11]
    index = RNG.integers(0, 2, len(positions))
    gaps = np.diff([-1, *positions]) - 1
    stream = (_bits([coor_bits], 8) + _bits([len(positions)], 32) + _bits([len(unique)], bits)
              + _bits(unique + 128, bits) + _bits(index, 1) + _bits(gaps, coor_bits))
    params = [_param(1.0, 4), _param(1.0, -2)]
    t = W.QuantTensor("s", _bytes_msb(stream), 32, (2, 6), params, compress=2)
    want = np.array([4] * 6 + [-2] * 6)
    want[positions] = unique[index]
    np.testing.assert_array_equal(W.integers(t), want)


def test_kmeans_clusters_and_refused_encodings():
    clusters = [float(c) / 10 for c in range(256)]
    q = np.array([-128, 0, 127], np.int8)
    t = W.QuantTensor("k", q.tobytes(), 32, (3,), [_param(1.0, 0)], clusters)
    np.testing.assert_allclose(W.dequantize(t, 0), [0.0, 12.8, 25.5], rtol=1e-6)
    with pytest.raises(W.WeightDecodeError, match="'h': its Huffman table has no 'keys#codes#' header"):
        W.integers(W.QuantTensor("h", b"x", 32, (1,), [_param(1, 0)], huffman=True))
    with pytest.raises(W.WeightDecodeError, match="'f' is FSE_INFER-compressed"):
        W.integers(W.QuantTensor("f", b"x", 32, (1,), [_param(1, 0)], compress=6))


def quantized_fc(version: str = "MindSpore Lite 2.2.0") -> tuple[bytes, np.ndarray, list[dict]]:
    """input [1,4] → FullConnection(int8 per-channel weights [3,4], QUANT_WEIGHT) → [1,3], in the current schema."""
    q = RNG.integers(-128, 128, (3, 4)).astype(np.int8)
    params = [{**S_QUANT_DEFAULTS, "scale": 0.02 * (c + 1), "zero_point": c, "var_corr": 1.0, "mean_corr": 0.0}
              for c in range(3)]
    tensors = [Tensor("x", 43, (1, 4), 1, S.NODE_CNODE), Tensor("w", 32, (3, 4), 0, S.NODE_VALUE, q.tobytes(),
                                                                 tuple(params)),
               Tensor("y", 43, (1, 3), 0, S.NODE_CNODE)]
    node = Node("fc", "FullConnection", {"has_bias": False, "axis": 1, "use_axis": False, "activation_type": 0},
                [0, 1], [2], quant_type=4)
    graph = Graph("q", version, 0, [0], [2], [node], tensors, [SubGraph("main", [0], [2], [0], [0, 1, 2])])
    return write_graph(graph, S.CURRENT_PRIMITIVES, S.CURRENT_TABLES, S.IDENT_CURRENT), q, params


S_QUANT_DEFAULTS = {name: default for name, _, default in S.QUANT_PARAM}


def test_weight_quantized_graph_becomes_float32(tmp_path):
    data, q, params = quantized_fc()
    src = tmp_path / "q.ms"
    src.write_bytes(data)
    info = inspect_ms(src)
    assert (info.loadable, info.bridgeable, [f.kind for f in info.findings]) == (False, True, ["weight-quant"])
    result = bridge_bytes(data, "q.ms")
    assert result.steps == ["decoded 1 weight-quantized tensors to float32 (as MindSpore Lite 2.2.0 dequantizes "
                            "them at load)"]
    graph = ms_compat.read_graph(result.data)
    weight = graph.tensors[1]
    assert (weight.dtype, weight.dims, weight.quant_count, graph.nodes[0].quant_type) == (43, (3, 4), 0, 0)
    values = np.frombuffer(FlatReader(result.data).raw(weight.table, S.T_DATA, "w"), np.float32).reshape(3, 4)
    want = (q.astype(np.int64) - np.array([0, 1, 2])[:, None]) * np.array([0.02, 0.04, 0.06])[:, None]
    np.testing.assert_array_equal(values, want.astype(np.float32))
    assert bridge_file(src, tmp_path / "out.ms").steps == tuple(result.steps)
    assert inspect_ms(tmp_path / "out.ms").loadable is True


def test_leading_padding_found_skipped_and_cached_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FIFTYONE_MSLITE_HOME", str(tmp_path / "home"))
    data, _, _ = quantized_fc()
    for pad in (4, 7, 4096):
        assert leading_padding(bytes(pad) + data) == pad
    assert leading_padding(data) == 0
    padded = tmp_path / "app.ms"
    padded.write_bytes(bytes(512) + data)
    info = inspect_ms(padded)
    assert (info.padding, info.size_bytes, info.loadable) == (512, 512 + len(data), False)
    assert [f.kind for f in info.findings] == ["padding", "weight-quant"] and info.bridgeable
    first = runnable_model(padded)
    assert first.parent == tmp_path / "home" / "upgraded" and "skipped 512 bytes of leading zero padding" in caplog.text
    assert runnable_model(padded) == first and inspect_ms(first).loadable is True
    empty = tmp_path / "zeros.ms"
    empty.write_bytes(bytes(300))
    with pytest.raises(MsInspectError, match="starts with 300 zero bytes and no MindSpore Lite model follows"):
        inspect_ms(empty)


def test_refusals_name_the_cause_and_write_nothing(tmp_path):
    data, _, _ = quantized_fc()
    graph = ms_compat.read_graph(data)
    broken = bytearray(data)
    start, _ = FlatReader(data).vector_span(graph.tensors[1].table, S.T_QUANT, 4, "quantParams")
    broken[start - 4:start] = (2).to_bytes(4, "little")  # 2 per-channel parameters for 3 channels
    src = tmp_path / "bad.ms"
    src.write_bytes(bytes(broken))
    with pytest.raises(ModelBridgeError, match=r"bad.ms: .*node 'fc': tensor 'w': 2 per-channel parameters"):
        bridge_file(src, tmp_path / "out.ms")
    assert not (tmp_path / "out.ms").exists()
    assert inspect_ms(src).loadable is False and not inspect_ms(src).bridgeable
    plain = tmp_path / "plain.ms"
    plain.write_bytes(bridge_bytes(data, "q").data)
    with pytest.raises(ModelBridgeError, match="already runs on MindSpore Lite 2.0.0 as it is"):
        bridge_file(plain, tmp_path / "out.ms")


def test_versions_and_op_names():
    assert ms_compat.parse_version("MindSpore Lite 2.2.0.20231129") == (2, 2, 0)
    assert ms_compat.parse_version("") is None
    assert len(S.PRIMITIVES_2_0_0) == 220 and S.CURRENT_PRIMITIVES[34] == "Conv2DFusion"
    assert ms_compat.op_name(221) == "FillV2" and ms_compat.op_name(250) == "#250"
    assert ms_compat.is_training_op("MaxPoolGrad") and not ms_compat.is_training_op("MaxPoolFusion")
    assert W.preferred_dim("Conv2DFusion", 1, (8, 3, 3, 4), (1, 5, 0), {}) == 0


def test_a_legacy_file_whose_output_is_a_weight_is_refused(tmp_path):
    """Issue 20: a v0 graph output pointing at a constant once upgraded silently and made a run wait forever."""
    g = V0Graph()
    x, y = g.input((1, 4)), g.activation((1, 4))
    g.node("Add", [x, x], [y])
    g.outputs = [y, g.const(np.ones((1, 4), np.float32))]
    src = g.save(tmp_path / "const-v0.ms")
    with pytest.raises(ModelBridgeError, match=r"graph output '\d+' is a constant \(weights\), not computed"):
        bridge_file(src, tmp_path / "out.ms")
    assert not (tmp_path / "out.ms").exists()


def test_ops_never_seen_loading_leave_loadable_undecided(tmp_path):
    """A file of another release made of an op not verified against 2.0.0: no claim either way."""
    tensors = [Tensor("x", 43, (1, 4), 1, S.NODE_CNODE), Tensor("y", 43, (1, 4), 1, S.NODE_CNODE)]
    node = Node("erf", "Erf", {}, [0], [1])
    graph = Graph("e", "MindSpore Lite 2.1.0", 0, [0], [1], [node], tensors, [SubGraph("main", [0], [1], [0], [0, 1])])
    path = tmp_path / "erf.ms"
    path.write_bytes(write_graph(graph, S.CURRENT_PRIMITIVES, S.CURRENT_TABLES, S.IDENT_CURRENT))
    info = inspect_ms(path)
    assert info.loadable is None and info.findings == () and info.to_dict()["loadable"] is None
    assert "cannot tell whether MindSpore Lite 2.0.0 loads it" in info.hint and "Erf" in info.hint
    assert runnable_model(path) == path  # nothing to rewrite: the runtime decides when it loads


def test_hostile_dims_are_refused_before_allocating():
    t = W.QuantTensor("s", b"\x03" + bytes(8), 32, (1 << 20, 1 << 20), [_param(1.0, 0)], compress=2)
    with pytest.raises(W.WeightDecodeError, match="claims dims"):
        W.integers(t)


def fse_encode(symbols: np.ndarray, frequency: list[int], table_log: int, centroids: np.ndarray) -> bytes:
    """MindSpore Lite's converter FSE encoder (fse_encoder.cc: FSECreateStatesForEncoding, FSEEncode,
    SerializingToBuffer; fse_bit_stream.cc: Push, Flush), for the decoder to be checked against."""
    size, mask64 = 1 << table_log, (1 << 64) - 1
    step, pos, table = (size >> 1) + (size >> 3) + 3, 0, [0] * size
    for sym, freq in enumerate(frequency):
        for _ in range(freq):
            table[pos] = sym
            pos = (pos + step) & (size - 1)
    cfreqs = [0]
    for freq in frequency:
        cfreqs.append(cfreqs[-1] + freq)
    coding = [0] * size
    for i, sym in enumerate(table):
        coding[cfreqs[sym]] = size + i
        cfreqs[sym] += 1
    delta_bits, delta_state, total = [], [], 0
    for freq in frequency:
        if freq >= 2:
            max_out = table_log - ((freq - 1).bit_length() - 1)
            delta_bits.append((max_out << 16) - (freq << max_out))
            delta_state.append(total - freq)
        else:
            delta_bits.append((table_log << 16) - (1 << table_log))
            delta_state.append(total - 1)
        total += freq
    chunks, state_bits = [], {"curr": 0, "count": 0}

    def push(value: int, n: int) -> None:
        state_bits["count"] += n
        if state_bits["count"] <= 64:
            state_bits["curr"] = ((state_bits["curr"] << n) | (value & ((1 << n) - 1))) & mask64
            if state_bits["count"] == 64:
                chunks.append(state_bits["curr"])
                state_bits.update(curr=0, count=0)
        else:
            left = state_bits["count"] - 64
            right = n - left
            chunks.append(((state_bits["curr"] << right) | ((value >> left) & ((1 << right) - 1))) & mask64)
            state_bits.update(curr=value & ((1 << left) - 1), count=left)

    def encode(sym: int, state: int) -> int:
        n = (state + delta_bits[sym]) >> 16
        push(state, n)
        return coding[(state >> n) + delta_state[sym]]

    state = encode(int(symbols[0]), size)
    chunks.clear()
    state_bits.update(curr=0, count=0)
    for sym in symbols.tolist():
        state = encode(sym, state)
    push(state - size, table_log)
    curr = (state_bits["curr"] << ((64 - state_bits["count"]) & 63)) & mask64  # Flush
    head = np.array([len(frequency), table_log], "<u2").tobytes() + np.array([len(chunks) + 1], "<u4").tobytes()
    body = head + np.array(frequency, "<u4").tobytes()
    body += bytes(-len(body) % 8) + centroids.tobytes()
    body += bytes(-len(body) % 8) + np.array(chunks, "<u8").tobytes() + np.array([curr], "<u8").tobytes()
    return body + bytes([state_bits["count"]])


@pytest.mark.parametrize("count", [1, 37, 5000])
def test_fse_weights_decode_to_what_was_encoded(count):
    centroids = np.array([-0.5, 0.0, 0.25, 1.5, 3.0], np.float32)
    symbols = RNG.choice(5, count, p=[0.1, 0.5, 0.2, 0.15, 0.05])
    table_log = 6
    counts = np.bincount(symbols, minlength=5) + 1
    frequency = np.maximum(1, np.floor(0.5 + counts * (1 << table_log) / counts.sum())).astype(int)
    frequency[np.argmax(frequency)] += (1 << table_log) - frequency.sum()
    data = fse_encode(symbols, frequency.tolist(), table_log, centroids)
    t = W.QuantTensor("f", data, 43, (count,), [], compress=3)
    np.testing.assert_array_equal(W.dequantize(t, 0), centroids[symbols])
    ints = np.array([-100, -1, 0, 7, 120], "<i4")
    t_int = W.QuantTensor("fi", fse_encode(symbols, frequency.tolist(), table_log, ints), 32, (count,),
                          [_param(0.5, 1)], compress=5)
    np.testing.assert_array_equal(W.dequantize(t_int, 0), ((ints[symbols] - 1) * 0.5).astype(np.float32))
    with pytest.raises(W.WeightDecodeError, match="'f': its FSE table is truncated"):
        W.dequantize(W.QuantTensor("f", data[:30], 43, (count,), [], compress=3), 0)


def huffman_encode(values: np.ndarray) -> bytes:
    """The converter's Huffman layout: "keys#codes#" then MSB-first bits ending with the pseudo-EOF (128) code."""
    import heapq

    counts = {int(v): int(c) for v, c in zip(*np.unique(values, return_counts=True))} | {128: 1}
    heap = [(c, i, {k: ""}) for i, (k, c) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, i1, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        merged = {**{k: "0" + v for k, v in a.items()}, **{k: "1" + v for k, v in b.items()}}
        heapq.heappush(heap, (c1 + c2, i1, merged))
    codes = heap[0][2]
    bits = "".join(codes[int(v)] for v in values) + codes[128]
    bits += "0" * (-len(bits) % 8)
    head = " ".join(map(str, codes)) + "#" + " ".join(codes.values()) + "#"
    return head.encode() + bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def test_huffman_weights_decode_to_what_was_encoded():
    values = RNG.choice([-7, 0, 3, 120, -128], 301, p=[0.2, 0.5, 0.2, 0.05, 0.05]).astype(np.int8)
    t = W.QuantTensor("h", huffman_encode(values), 32, (301,), [_param(0.1, 0)], huffman=True)
    np.testing.assert_array_equal(W.integers(t), values)
    np.testing.assert_array_equal(W.dequantize(t, 0), (values.astype(np.int64) * 0.1).astype(np.float32))
    short = W.QuantTensor("h", huffman_encode(values[:100]), 32, (301,), [_param(0.1, 0)], huffman=True)
    with pytest.raises(W.WeightDecodeError, match="301 values expected, its Huffman data holds 100"):
        W.integers(short)

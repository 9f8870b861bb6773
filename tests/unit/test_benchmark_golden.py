"""Golden outputs for `benchmark --benchmarkDataFile`: both layouts read, malformed files refused in one line,
and the mean bias computed as MindSpore Lite's benchmark tool's `CompareData` does (checked against a plain
element-by-element transcription of it)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from fiftyone_mslite.benchmark.golden import match_outputs, mean_bias, read_golden
from fiftyone_mslite.errors import BenchmarkDataError


def tool_bias(got: list[float], ref: list[float]) -> float:
    """MindSpore Lite's CompareData, element by element (benchmark_base.h)."""
    total, count = 0.0, 0
    for g, r in zip(got, ref):
        err = abs(g - r)
        if err > 1e-8 + 1e-5 * abs(r):
            if abs(r) < np.finfo(np.float32).eps:
                if err > 1e-5:
                    total, count = total + err, count + 1
            else:
                total, count = total + err / (abs(r) + np.finfo(np.float32).tiny), count + 1
    return total / count if count else 0.0


def test_text_format_with_several_tensors(tmp_path):
    path = tmp_path / "golden.txt"
    path.write_text("prob 2 1 3\n0.5 0.25 0.25\n\nfeat 1 2\n1e-3 -4\n")
    first, second = read_golden(path)
    assert (first.name, first.shape, first.values.tolist()) == ("prob", (1, 3), [0.5, 0.25, 0.25])
    assert (second.name, second.shape, second.values.tolist()) == ("feat", (2,), [0.001, -4.0])
    assert match_outputs([second, first], ["prob", "feat"], path) == [1, 0]
    with pytest.raises(BenchmarkDataError, match="names feat, which the model does not output"):
        match_outputs([second], ["prob"], path)


def test_openharmony_binary_file_of_the_corpus(shared_dir):
    path = shared_dir / "ms-corpus" / "ml_face_isface0.output"
    (tensor,) = read_golden(path)
    assert tensor.name is None and tensor.shape == (1, 2)
    assert tensor.values.astype(np.float32).tolist() == pytest.approx([0.99798763, 0.00201241], rel=1e-5)
    assert match_outputs([tensor], ["prob"], path) == [0]


@pytest.mark.parametrize("content, message", [
    (struct.pack("<ii", 2, 1), "dims are cut off"),
    (struct.pack("<iiif", 2, 1, 2, 0.5), "need 8 bytes of data, 4 are left"),
    (struct.pack("<iif", 1, 1, 0.5) + b"\0\0", "2 stray bytes after the last tensor"),
    (struct.pack("<ii", 99, 1), "rank 99 is not a tensor rank"),
    (b"prob 2 1 2\n0.5\n", "make 2 values, the line has 1"),
    (b"prob 2 1 2\n", "the line of values is missing"),
    (b"prob two 1 2\n0.5 0.5\n", "is not 'NAME NDIM D0 D1 ...'"),
    (b"prob 2 1 2\n0.5 abc\n", "not a number"),
    (b"prob 3 1 2\n0.5 0.5\n", r"rank 3 but gives dims \(1, 2\)"),
    (b"\n\n", "holds no tensor"),
])
def test_malformed_files_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "golden.out"
    path.write_bytes(content)
    with pytest.raises(BenchmarkDataError, match=message) as caught:
        read_golden(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(BenchmarkDataError, match="cannot read --benchmarkDataFile .*missing"):
        read_golden(tmp_path / "missing")


def test_mean_bias_is_the_tools_measure(tmp_path):
    path = tmp_path / "golden.txt"
    ref = [0.99798763, 0.00201241, 0.0, 0.0, 2.0, -1.0]
    path.write_text("out 1 6\n" + " ".join(map(str, ref)) + "\n")
    (golden,) = read_golden(path)
    for got in ([0.99569, 0.00431, 5e-6, 0.25, 2.0, -1.0],  # below 1e-5 at a zero reference: not counted
                ref,
                [1.0, 0.002, 0.0, 0.0, 2.00001, -0.5]):
        expected = tool_bias(got, ref)
        assert mean_bias(np.array(got, np.float32), golden, "out") == pytest.approx(expected, rel=1e-5)
    assert mean_bias(np.array(ref, np.float32), golden, "out") == 0.0
    with pytest.raises(BenchmarkDataError, match=r"shaped \(2, 3\), the golden data \(6,\)"):
        mean_bias(np.zeros((2, 3), np.float32), golden, "out")
    with pytest.raises(BenchmarkDataError, match="NaN or Inf"):
        mean_bias(np.array([np.nan] * 6, np.float32), golden, "out")

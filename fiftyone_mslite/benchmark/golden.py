"""Golden outputs for `benchmark --benchmarkDataFile`: read them, compare a run with them as MindSpore Lite's
`benchmark` tool does.

Two layouts exist in the wild and both are read (told apart by content: text never holds a NUL byte):
- MindSpore Lite's text format (`BenchmarkBase::ReadCalibData`): per output tensor a line `NAME NDIM D0 D1 ...`,
  then one line of its values separated by spaces;
- OpenHarmony's binary `.output` files: per tensor int32 ndim, int32 dims[ndim], then float32 data
  (little-endian), tensors back to back; they carry no names, so they match the model's outputs in order.

The measure is the tool's `CompareData`: the mean, over the elements outside the tolerance (1e-8 + 1e-5·|ref|),
of the relative error (the absolute error where the reference is 0), in percent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BenchmarkDataError

_RTOL, _ATOL = 1e-5, 1e-8  # MindSpore Lite benchmark_base.h: relativeTolerance, absoluteTolerance
_FLT_EPSILON, _FLT_MIN = float(np.finfo(np.float32).eps), float(np.finfo(np.float32).tiny)
_MAX_RANK = 8


@dataclass(frozen=True)
class GoldenTensor:
    name: str | None  # None in the binary layout: matched by position
    shape: tuple[int, ...]
    values: np.ndarray  # float64, flat


def read_golden(path: str | Path) -> list[GoldenTensor]:
    """Every tensor of a golden-output file, in file order."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BenchmarkDataError(f"cannot read --benchmarkDataFile {path}: {exc.strerror or exc}.") from None
    tensors = _read_binary(path, data) if b"\0" in data else _read_text(path, data)
    if not tensors:
        raise BenchmarkDataError(f"--benchmarkDataFile {path} holds no tensor: expected MindSpore Lite's text format "
                                 "(NAME NDIM DIMS... then a line of values) or OpenHarmony's binary layout.")
    return tensors


def _read_binary(path: Path, data: bytes) -> list[GoldenTensor]:
    tensors, at = [], 0
    while at < len(data):
        where = f"--benchmarkDataFile {path} (binary layout: int32 ndim, int32 dims, float32 data) at byte {at}"
        if len(data) - at < 4:
            raise BenchmarkDataError(f"{where}: {len(data) - at} stray bytes after the last tensor.")
        ndim = int.from_bytes(data[at:at + 4], "little", signed=True)
        if not 0 < ndim <= _MAX_RANK or len(data) - at < 4 + 4 * ndim:
            raise BenchmarkDataError(f"{where}: rank {ndim} is not a tensor rank (1 to {_MAX_RANK}) or its dims "
                                     "are cut off.")
        dims = tuple(int(d) for d in np.frombuffer(data, "<i4", ndim, at + 4))
        count = int(np.prod(dims, dtype=object))
        start = at + 4 + 4 * ndim
        if min(dims) < 1 or len(data) - start < 4 * count:
            raise BenchmarkDataError(f"{where}: dims {dims} need {4 * count} bytes of data, "
                                     f"{len(data) - start} are left.")
        tensors.append(GoldenTensor(None, dims, np.frombuffer(data, "<f4", count, start).astype(np.float64)))
        at = start + 4 * count
    return tensors


def _read_text(path: Path, data: bytes) -> list[GoldenTensor]:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    tensors = []
    for k in range(0, len(lines), 2):
        where = f"--benchmarkDataFile {path} (MindSpore Lite text format), tensor {k // 2 + 1}"
        head = lines[k].split()
        try:
            name, ndim = head[0], int(head[1])
            dims = tuple(int(d) for d in head[2:])
        except (IndexError, ValueError):
            raise BenchmarkDataError(f"{where}: header {lines[k][:80]!r} is not 'NAME NDIM D0 D1 ...'.") from None
        if len(dims) != ndim or min(dims, default=1) < 1:
            raise BenchmarkDataError(f"{where} ({name}): header says rank {ndim} but gives dims {dims}.")
        if k + 1 >= len(lines):
            raise BenchmarkDataError(f"{where} ({name}): the line of values is missing.")
        try:
            values = np.array(re.split(r"\s+", lines[k + 1]), dtype=np.float64)
        except ValueError:
            raise BenchmarkDataError(f"{where} ({name}): the values line holds something that is not a number.") \
                from None
        count = int(np.prod(dims, dtype=object))
        if values.size != count:
            raise BenchmarkDataError(f"{where} ({name}): dims {dims} make {count} values, the line has {values.size}.")
        tensors.append(GoldenTensor(name, dims, values))
    return tensors


def match_outputs(golden: list[GoldenTensor], names: list[str], path: str | Path) -> list[int]:
    """The model output index of each golden tensor: by name (text) or by position (binary)."""
    if any(g.name is None for g in golden):
        if len(golden) > len(names):
            raise BenchmarkDataError(f"--benchmarkDataFile {path} holds {len(golden)} tensors, the model has "
                                     f"{len(names)} output(s) ({', '.join(names)}).")
        return list(range(len(golden)))
    unknown = [g.name for g in golden if g.name not in names]
    if unknown:
        raise BenchmarkDataError(f"--benchmarkDataFile {path} names {', '.join(unknown)}, which the model does not "
                                 f"output (outputs: {', '.join(names)}).")
    return [names.index(g.name) for g in golden]


def mean_bias(output: np.ndarray, golden: GoldenTensor, name: str) -> float:
    """The tool's mean relative error of one output (a fraction: ×100 for the percentage it prints)."""
    if tuple(output.shape) != golden.shape:
        raise BenchmarkDataError(f"output {name} is shaped {tuple(output.shape)}, the golden data "
                                 f"{golden.shape}: they are different.")
    got = output.astype(np.float64).ravel()
    if not np.isfinite(got).all():
        raise BenchmarkDataError(f"output {name} has NaN or Inf values: compare failed.")
    ref = golden.values
    err = np.abs(got - ref)
    off = err > _ATOL + _RTOL * np.abs(ref)
    at_zero = np.abs(ref) < _FLT_EPSILON
    counted = off & (~at_zero | (err > 1e-5))
    if not counted.any():
        return 0.0
    relative = np.where(at_zero, err, err / (np.abs(ref) + _FLT_MIN))
    return float(relative[counted].mean())

"""`fiftyone-mslite benchmark MODEL`: MindSpore Lite's own `benchmark` tool, its flags and its output lines.

Performance (the default): inputs from `--inDataFile` or random ones drawn as the tool draws them, every graph
input filled; `--warmUpLoopCount` untimed calls, then `--loopCount` timed ones, reported on the tool's
`Model = …, MinRunTime = %f ms, MaxRuntime = %f ms, AvgRunTime = %f ms` line as measured inside MindSpore Lite
(what the tool times), plus a line with the caller's view (the worker bridge included).
Accuracy (`--benchmarkDataFile`): one call, each output compared with its golden data and reported as the tool
does ("Mean bias of node/tensor …", "Mean bias of all nodes/tensors: …%"); above `--accuracyThreshold` (percent)
the result is not `passed`. For throughput through FiftyOne and comparisons with peers, see `benchmarks/`.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import runtime
from ..catalog.model_files import model_file
from ..catalog.registry import catalog
from ..errors import BenchmarkDataError, MsInspectError
from ..modelfiles.bridge import runnable_model
from ..modelfiles.ms_inspect import inspect_ms
from ..runtime.tensors import check_input_size, concrete_shape
from .golden import match_outputs, mean_bias, read_golden

#: What the tool's `GenerateRandomData` draws per dtype: floats uniform in [0.1, 1), small ints 0/1, bytes.
_RANDOM_RANGES = {"int8": (-127, 127), "uint8": (0, 254), "int16": (0, 1), "int32": (0, 1), "int64": (0, 1)}
_SHOWN_INPUTS, _SHOWN_OUTPUTS = 20, 50  # values the tool prints per input ("InData") and per output
_RULE = "=" * 55


@dataclass(frozen=True)
class OutputBias:
    name: str
    bias_pct: float
    head: list[float]  # the first values, as the tool prints them


@dataclass(frozen=True)
class BenchmarkResult:
    model: str
    path: str
    backend: str
    threads: int
    batch_size: int
    loop_count: int
    warmup_loop_count: int
    prepare_ms: float
    in_data_files: list[str] = field(default_factory=list)
    # performance mode (None in accuracy mode, as the tool runs one or the other)
    min_ms: float | None = None  # the caller's view of one call (wall, bridge included)
    avg_ms: float | None = None
    max_ms: float | None = None
    runtime_min_ms: float | None = None  # inside MindSpore Lite: what the tool's MinRunTime/MaxRuntime/AvgRunTime time
    runtime_avg_ms: float | None = None
    runtime_max_ms: float | None = None
    # accuracy mode
    benchmark_data_file: str | None = None
    accuracy_threshold: float = 0.5  # percent, the tool's default
    input_heads: list[list[float]] = field(default_factory=list)
    outputs: list[OutputBias] = field(default_factory=list)
    mean_bias_pct: float | None = None

    @property
    def passed(self) -> bool:
        return self.mean_bias_pct is None or self.mean_bias_pct <= self.accuracy_threshold

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def render(self) -> str:
        """The tool's lines (stdout), in its order; the too-big verdict is the caller's error line."""
        name = Path(self.path).name
        lines = [f"ModelPath = {self.path}", f"InDataPath = {','.join(self.in_data_files)}",
                 f"LoopCount = {self.loop_count}", "DeviceType = CPU",
                 f"AccuracyThreshold = {_g(self.accuracy_threshold)}", f"WarmUpLoopCount = {self.warmup_loop_count}",
                 f"NumThreads = {self.threads}",
                 f"calibDataPath = {self.benchmark_data_file or ''}", f"BatchSize = {self.batch_size}",
                 f"PrepareTime = {_g(self.prepare_ms)} ms"]
        if self.mean_bias_pct is None:
            lines += ["Running warm up loops...", "Running benchmark loops...",
                      f"Model = {name}, NumThreads = {self.threads}, MinRunTime = {self.runtime_min_ms:f} ms, "
                      f"MaxRuntime = {self.runtime_max_ms:f} ms, AvgRunTime = {self.runtime_avg_ms:f} ms",
                      f"CallerTime: min = {self.min_ms:f} ms, max = {self.max_ms:f} ms, avg = {self.avg_ms:f} ms "
                      f"(one call as the caller sees it; backend {self.backend})"]
        else:
            lines += ["MarkAccuracy"]
            lines += [f"InData {i}: " + "".join(f"{_g(v)} " for v in head) for i, head in enumerate(self.input_heads)]
            lines += ["================ Comparing Output data ================"]
            for out in self.outputs:
                lines += [f"Data of node {out.name} : " + "".join(f"{_g(v)} " for v in out.head),
                          f"Mean bias of node/tensor {out.name} : {_g(out.bias_pct) if out.bias_pct > 1e-5 else 0}%"]
            lines += [f"Mean bias of all nodes/tensors: {_g(self.mean_bias_pct)}%", _RULE, ""]
        if self.passed:
            lines.append(f"Run Benchmark {name} Success.")
        return "\n".join(lines)

    def verdict(self) -> str:
        """The tool's failure line, for stderr (empty when passed)."""
        return "" if self.passed else (f"Mean bias of all nodes/tensors is too big: {_g(self.mean_bias_pct)}% "
                                       f"(--accuracyThreshold {_g(self.accuracy_threshold)})")


def _g(value: float) -> str:
    """A number as C++'s `std::cout << float` prints it (six significant digits), which the tool's lines use."""
    return f"{float(value):g}"


def _random_input(spec: runtime.TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if spec.dtype in _RANDOM_RANGES:
        low, high = _RANDOM_RANGES[spec.dtype]
        return rng.integers(low, high + 1, size=shape, dtype=spec.dtype)
    if spec.dtype == "bool":
        return np.zeros(shape, bool)
    return rng.uniform(0.1, 1.0, size=shape).astype(spec.dtype)


def _read_input(path: str, spec: runtime.TensorSpec, shape: tuple[int, ...]) -> np.ndarray:
    """One raw binary input file (the tool's --inDataFile): exactly the tensor's bytes, nothing else."""
    need = int(np.prod(shape, dtype=object)) * np.dtype(spec.dtype).itemsize
    try:
        have = Path(path).stat().st_size
        if have != need:
            raise BenchmarkDataError(f"--inDataFile {path}: input '{spec.name}' ({spec.dtype} {shape}) needs "
                                     f"{need} bytes, the file has {have}. Give one raw binary file per input.")
        return np.fromfile(path, dtype=spec.dtype).reshape(shape)
    except OSError as exc:
        raise BenchmarkDataError(f"cannot read --inDataFile {path}: {exc.strerror or exc}.") from None


def _load_inputs(session: runtime.Session, batch_size: int, in_data_files: list[str]) -> list[np.ndarray]:
    """Every graph input filled, as the tool does: from its file, else random."""
    specs = session.inputs
    shapes = [concrete_shape(spec, batch_size) for spec in specs]
    check_input_size(specs, shapes, session.path)
    if in_data_files and len(in_data_files) != len(specs):
        raise BenchmarkDataError(f"--inDataFile gives {len(in_data_files)} file(s), {session.path} has "
                                 f"{len(specs)} input(s) ({', '.join(s.name for s in specs)}): give one per input, "
                                 "comma-separated, in that order.")
    if in_data_files:
        return [_read_input(p, spec, shape) for p, spec, shape in zip(in_data_files, specs, shapes)]
    rng = np.random.default_rng(0)
    return [_random_input(spec, shape, rng) for spec, shape in zip(specs, shapes)]


def _check_declared_inputs(path: Path, batch_size: int) -> None:
    """Refuse a .ms whose declared inputs are absurdly large before MindSpore Lite sees it: it would refuse
    tensors over ~2 GB with a misleading "corrupt file", and accept many smaller ones adding up to far more."""
    if runtime.formats.detect(path, runnable=True) != runtime.formats.MS:
        return
    try:
        declared = inspect_ms(path).inputs
    except MsInspectError:
        return  # what the reader cannot parse, loading reports
    specs = [runtime.TensorSpec(t.name, t.dims, t.dtype, None) for t in declared if t.dtype in np.sctypeDict]
    check_input_size(specs, [concrete_shape(spec, batch_size) for spec in specs], str(path))


def split_files(value: str | None) -> list[str]:
    """`--inDataFile a.bin,b.bin` (the tool splits on commas and white space)."""
    return [p for p in re.split(r"[\s,]+", value or "") if p]


def benchmark_model(model: str, threads: int = 2, loop_count: int = 10, warmup_loop_count: int = 3,
                    batch_size: int = 1, backend: str | None = None, in_data_files: list[str] | None = None,
                    benchmark_data_file: str | None = None, accuracy_threshold: float = 0.5) -> BenchmarkResult:
    """Time `loop_count` calls of a catalog model or a .ms/.mindir file, or (with `benchmark_data_file`) compare
    one call's outputs with golden data."""
    if loop_count < 1 or warmup_loop_count < 0 or batch_size < 1:
        raise ValueError("loop_count and batch_size must be at least 1 and warmup_loop_count at least 0")
    in_data_files = list(in_data_files or [])
    golden = read_golden(benchmark_data_file) if benchmark_data_file else None
    cat = catalog()
    path = Path(model).expanduser()
    if model in cat.models or not (path.exists() or runtime.formats.runnable_suffix(path.name)):
        path = model_file(cat.model(model)).path  # unknown names get the catalog's "did you mean"
    else:
        path = runnable_model(path)  # any .ms generation, bridged once and cached
    _check_declared_inputs(path, batch_size)
    start = time.perf_counter()
    with runtime.open_model(path, threads=threads, batch_size=batch_size, backend=backend) as session:
        prepare_ms = (time.perf_counter() - start) * 1000
        inputs = _load_inputs(session, batch_size, in_data_files)
        common = dict(model=model, path=str(path), backend=session.backend, threads=threads, batch_size=batch_size,
                      loop_count=loop_count, warmup_loop_count=warmup_loop_count, prepare_ms=prepare_ms,
                      in_data_files=in_data_files, accuracy_threshold=accuracy_threshold)
        if golden is not None:
            return _mark_accuracy(session, inputs, golden, benchmark_data_file, common)
        for _ in range(warmup_loop_count):
            session.run(*inputs)
        wall, inside = [], []
        for _ in range(loop_count):
            begin = time.perf_counter()
            session.run(*inputs)
            wall.append((time.perf_counter() - begin) * 1000)
            inside.append(session.last_runtime_s * 1000)
        return BenchmarkResult(**common, min_ms=min(wall), avg_ms=sum(wall) / len(wall), max_ms=max(wall),
                               runtime_min_ms=min(inside), runtime_avg_ms=sum(inside) / len(inside),
                               runtime_max_ms=max(inside))


def _mark_accuracy(session: runtime.Session, inputs: list[np.ndarray], golden: list, data_file: str,
                   common: dict) -> BenchmarkResult:
    names = [spec.name for spec in session.outputs]
    indices = match_outputs(golden, names, data_file)
    outputs = session.run(*inputs)
    compared = []
    for g, i in zip(golden, indices):
        bias = mean_bias(outputs[i], g, names[i])
        compared.append(OutputBias(names[i], bias * 100, outputs[i].ravel()[:_SHOWN_OUTPUTS].astype(float).tolist()))
    heads = [a.ravel()[:_SHOWN_INPUTS].astype(float).tolist() for a in inputs]
    return BenchmarkResult(**common, benchmark_data_file=str(data_file), input_heads=heads, outputs=compared,
                           mean_bias_pct=sum(o.bias_pct for o in compared) / len(compared))

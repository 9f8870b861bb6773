"""`fiftyone-mslite benchmark MODEL`: runtime latency the way MindSpore Lite's own `benchmark` tool reports it.

Random inputs of the model's shape, `--warmup-loop-count` untimed calls, then `--loop-count` timed ones; min/avg/max
per call, both as seen by the caller (wall, bridge included) and inside MindSpore Lite. For throughput through
FiftyOne and comparisons with peers, see `benchmarks/` in the repository.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import runtime
from .catalog.registry import catalog
from .catalog.store import model_file


@dataclass(frozen=True)
class BenchmarkResult:
    model: str
    path: str
    backend: str
    threads: int
    batch_size: int
    loop_count: int
    warmup_loop_count: int
    min_ms: float
    avg_ms: float
    max_ms: float
    runtime_avg_ms: float  # inside MindSpore Lite (the worker's own clock): what its benchmark tool reports

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        """MindSpore Lite benchmark's closing lines, plus the caller-side figure."""
        name = Path(self.path).name
        return (f"ModelPath = {self.path}\nNumThreads = {self.threads}\nBatchSize = {self.batch_size}\n"
                f"LoopCount = {self.loop_count}\nWarmUpLoopCount = {self.warmup_loop_count}\n"
                f"Model = {name}, NumThreads = {self.threads}, MinRunTime = {self.min_ms:.3f} ms, "
                f"MaxRunTime = {self.max_ms:.3f} ms, AvgRunTime = {self.avg_ms:.3f} ms "
                f"(inside MindSpore Lite: {self.runtime_avg_ms:.3f} ms; backend {self.backend})\n"
                f"Run Benchmark {name} Success.")


def _random_input(spec: runtime.TensorSpec, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(batch if (i == 0 and d < 0) else (1 if d < 0 else d) for i, d in enumerate(spec.shape))
    if spec.dtype in ("uint8", "int8"):
        info = np.iinfo(spec.dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=spec.dtype)
    return rng.random(shape, dtype=np.float32).astype(spec.dtype)


def benchmark_model(model: str, threads: int = 2, loop_count: int = 10, warmup_loop_count: int = 3,
                    batch_size: int = 1, backend: str | None = None) -> BenchmarkResult:
    """Time `loop_count` predict calls of a catalog model or a .ms/.mindir file on random inputs."""
    if loop_count < 1 or warmup_loop_count < 0 or batch_size < 1:
        raise ValueError("loop_count and batch_size must be at least 1 and warmup_loop_count at least 0")
    cat = catalog()
    path = Path(model).expanduser()
    if model in cat.models or not (path.exists() or runtime.formats.runnable_suffix(path.name)):
        path = model_file(cat.model(model)).path  # unknown names get the catalog's "did you mean"
    with runtime.open_model(path, threads=threads, batch_size=batch_size, backend=backend) as session:
        rng = np.random.default_rng(0)
        inputs = [_random_input(spec, batch_size, rng) for spec in session.inputs]
        for _ in range(warmup_loop_count):
            session.run(*inputs)
        wall, inside = [], []
        for _ in range(loop_count):
            start = time.perf_counter()
            session.run(*inputs)
            wall.append((time.perf_counter() - start) * 1000)
            inside.append(session.last_runtime_s * 1000)
        return BenchmarkResult(model, str(path), session.backend, threads, batch_size, loop_count, warmup_loop_count,
                               min(wall), sum(wall) / len(wall), max(wall), sum(inside) / len(inside))

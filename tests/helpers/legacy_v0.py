"""Test helpers for the legacy-schema upgrader: build one-node v0 graphs, run many .ms files in one worker.

Why one process for many files: every per-op case is a separate model, and starting MindSpore Lite per model
would dominate the suite's cost on a shared two-core machine.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiftyone_mslite.modelfiles.legacy import schema as S
from fiftyone_mslite.modelfiles.legacy.graph import Graph, Node, Tensor
from fiftyone_mslite.modelfiles.legacy.writer import write_graph

FLOAT32, INT8, INT32 = 43, 32, 34
NCHW, NHWC, KHWC = 0, 1, 7
_TYPE_IDS = {np.dtype("float32"): FLOAT32, np.dtype("int8"): INT8, np.dtype("int32"): INT32}
BATCH_RUNNER = Path(__file__).with_name("run_ms_batch.py")


@dataclass
class V0Graph:
    """A legacy graph under construction: tensors and nodes in the v0 schema, no file identifier."""

    tensors: list[Tensor] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def input(self, shape: tuple[int, ...], fmt: int = NHWC) -> int:
        self.inputs.append(self.activation(shape, fmt))
        return self.inputs[-1]

    def activation(self, shape: tuple[int, ...], fmt: int = NHWC, name: str = "") -> int:
        """An unnamed (as v0 converters wrote them) float32 activation tensor; -1 dims are left to inference."""
        self.tensors.append(Tensor(name, FLOAT32, tuple(shape), fmt, node_type=S.NODE_CNODE))
        return len(self.tensors) - 1

    def const(self, array: np.ndarray, fmt: int = NHWC, quant: tuple[dict[str, Any], ...] = ()) -> int:
        array = np.ascontiguousarray(array)
        self.tensors.append(Tensor("", _TYPE_IDS[array.dtype], tuple(array.shape), fmt, node_type=S.NODE_VALUE,
                                   data=array.tobytes(), quant_params=quant))
        return len(self.tensors) - 1

    def node(self, op: str, inputs: list[int], outputs: list[int], quant_type: int = 0, **attrs: Any) -> None:
        """A v0 node; attributes not given take the ops_v0.fbs defaults."""
        values = {name: default for name, _, default in S.V0_TABLES.get(op, ())} | attrs
        self.nodes.append(Node(f"{op}-{len(self.nodes)}", op, values, inputs, outputs, quant_type))

    def save(self, path: Path, outputs: list[int] | None = None) -> Path:
        graph = Graph("", "MindSpore Lite 1.0.0", 0, self.inputs, outputs or self.outputs, self.nodes, self.tensors)
        path.write_bytes(write_graph(graph, S.V0_PRIMITIVES, S.V0_TABLES, None))
        return path


def run_models(python: str, jobs: list[tuple[Path, list[np.ndarray]]]) -> list[list[np.ndarray] | str]:
    """Run every (model, inputs) on MindSpore Lite 2.0.0 in one process, one thread; outputs, or the error text."""
    with tempfile.TemporaryDirectory(prefix="legacy-v0-run-") as work:
        work = Path(work)
        spec = []
        for i, (model, inputs) in enumerate(jobs):
            paths = []
            for k, array in enumerate(inputs):
                paths.append(str(work / f"in_{i}_{k}.npy"))
                np.save(paths[-1], np.ascontiguousarray(array, np.float32))
            spec.append({"model": str(model), "inputs": paths, "out": str(work / f"out_{i}")})
        (work / "jobs.json").write_text(json.dumps(spec))
        proc = subprocess.run([python, str(BATCH_RUNNER), str(work / "jobs.json")], capture_output=True, text=True,
                              timeout=900)
        if proc.returncode:
            raise RuntimeError(f"the batch runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
        results: list[list[np.ndarray] | str] = []
        for job, status in zip(spec, json.loads((work / "results.json").read_text())):
            if status["error"]:
                results.append(status["error"])
            else:
                results.append([np.load(f"{job['out']}_{k}.npy") for k in range(status["outputs"])])
        return results

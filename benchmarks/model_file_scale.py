"""Benchmark: the cost per node of reading, inspecting and upgrading a legacy (v0) ``.ms`` (issue 20).

A synthetic v0 chain of N nodes (ReLU, Add with a fused ReLU and a constant, Reshape by attribute, in turn: the
last two make the upgrade add nodes and tensors) is written once per size, then each step runs --repeats times:

- read:    `read_v0` of the file's bytes (the FlatBuffer walk into the neutral graph)
- inspect: what `fiftyone-mslite inspect` does (`inspect_ms` + `legacy_summary`, which translates every node)
- upgrade: `upgrade_ms` (inspect, read, translate, write the current schema, atomic write)

Reported: median wall and CPU (this process) seconds and microseconds per node. Goal: 100k nodes under 10 s each.

    .venv/bin/python benchmarks/model_file_scale.py                   # 1k, 10k, 100k nodes; markdown table
    .venv/bin/python benchmarks/model_file_scale.py --sizes 200 --repeats 1 --json   # smoke test

This is a script, not a test: timings on shared machines are too noisy to assert on.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from measure import describe_machine, machine_info  # benchmarks/measure.py, beside this script

from fiftyone_mslite.modelfiles.legacy import schema as S
from fiftyone_mslite.modelfiles.legacy.graph import Graph, Node, Tensor
from fiftyone_mslite.modelfiles.legacy.reader import read_v0
from fiftyone_mslite.modelfiles.legacy.writer import write_graph
from fiftyone_mslite.modelfiles.ms_inspect import inspect_ms
from fiftyone_mslite.modelfiles.upgrade import legacy_summary, upgrade_ms

FLOAT32, RELU = 43, 1
SIZES = (1_000, 10_000, 100_000)
CHANNELS = 8


def v0_chain(nodes: int) -> bytes:
    """A v0 graph of `nodes` nodes on a [1, CHANNELS] activation, as the 1.0 converter wrote them (unnamed)."""
    def activation() -> int:
        tensors.append(Tensor("", FLOAT32, (1, CHANNELS), S.FORMAT_NHWC, node_type=S.NODE_CNODE))
        return len(tensors) - 1

    tensors: list[Tensor] = []
    graph_nodes: list[Node] = []
    bias = np.full((1, CHANNELS), 0.5, np.float32)
    x = first = activation()
    for i in range(nodes):
        y = activation()
        kind = i % 3
        if kind == 0:
            graph_nodes.append(Node("", "Activation", {"type": RELU, "alpha": 0.2, "min_val": -1.0, "max_val": 1.0},
                                    [x], [y]))
        elif kind == 1:
            tensors.append(Tensor("", FLOAT32, bias.shape, S.FORMAT_NHWC, node_type=S.NODE_VALUE,
                                  data=bias.tobytes()))
            graph_nodes.append(Node("", "Add", {"activationType": RELU}, [x, len(tensors) - 1], [y]))
        else:
            graph_nodes.append(Node("", "Reshape", {"format": 0, "shape": (1, CHANNELS)}, [x], [y]))
        x = y
    graph = Graph("", "MindSpore Lite 1.0.0", 0, [first], [x], graph_nodes, tensors)
    return write_graph(graph, S.V0_PRIMITIVES, S.V0_TABLES, None)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `repeats` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def inspect_like_the_cli(path: Path) -> str:
    return legacy_summary(path, inspect_ms(path))


def measure(sizes: list[int], repeats: int, work: Path) -> list[dict]:
    rows = []
    for nodes in sizes:
        src, dst = work / f"chain-{nodes}.v0.ms", work / f"chain-{nodes}.ms"
        src.write_bytes(v0_chain(nodes))
        data = src.read_bytes()
        steps = {"read": partial(read_v0, data), "inspect": partial(inspect_like_the_cli, src),
                 "upgrade": partial(upgrade_ms, src, dst)}
        for step, fn in steps.items():
            wall, cpu = timed(fn, repeats)
            rows.append({"nodes": nodes, "step": step, "file_bytes": len(data), "wall_s": wall, "cpu_s": cpu,
                         "us_per_node": wall / nodes * 1e6})
    return rows


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [f"Machine: {describe_machine(machine)}", "",
             "| nodes | step | file | wall s | CPU s | µs / node |", "|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['nodes']:,} | {r['step']} | {r['file_bytes'] / 1e6:.1f} MB | {r['wall_s']:.2f} | "
                     f"{r['cpu_s']:.2f} | {r['us_per_node']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="node counts")
    parser.add_argument("--repeats", type=int, default=3, help="runs per step (median reported)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = parser.parse_args(argv)
    machine = machine_info(["flatbuffers", "numpy"])
    with tempfile.TemporaryDirectory(prefix="model-file-scale-") as work:
        rows = measure(args.sizes, args.repeats, Path(work))
    print(json.dumps({"machine": machine, "rows": rows}, indent=1) if args.json else markdown(rows, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())

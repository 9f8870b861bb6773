"""Benchmark: how long the legacy (v0) upgrade takes, and how fast the upgraded 2020 models run.

For the two legacy files in ../shared/legacy-ms: the upgrade time (median of --upgrades runs, in this process,
file read to atomic write), then the upgraded model's latency on MindSpore Lite 2.0.0 (worker backend) at 1 and
2 threads: median and p90 of --runs calls of `session.run` on the reference input, after 3 warm-ups.

    .venv/bin/python benchmarks/legacy_upgrade.py            # markdown table on stdout
    .venv/bin/python benchmarks/legacy_upgrade.py --json

This is a script, not a test: timings on shared machines are too noisy to assert on.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import describe_machine, machine_info, shared_path  # benchmarks/measure.py, beside this script

from fiftyone_mslite.modelfiles.upgrade import upgrade_ms
from fiftyone_mslite.runtime import open_model

MODELS = {  # file -> (reference input, input shape)
    "mobilefacenet0924.ms": ("facenet_input.f32", (1, 112, 112, 3)),
    "retinaface0924.ms": ("retinaface_input.f32", (1, 640, 380, 3)),
}
THREADS = (1, 2)


def measure(folder: Path, work: Path, upgrades: int, runs: int) -> list[dict]:
    rows = []
    for name, (input_name, shape) in MODELS.items():
        out = work / name.replace(".ms", ".upgraded.ms")
        seconds = []
        for _ in range(upgrades):
            start = time.perf_counter()
            report = upgrade_ms(folder / name, out)
            seconds.append(time.perf_counter() - start)
        x = np.fromfile(folder / input_name, np.float32).reshape(shape)
        row = {"model": name, "ops": sum(report.op_counts.values()), "upgrade_ms": statistics.median(seconds) * 1e3}
        for threads in THREADS:
            with open_model(out, threads=threads) as session:
                for _ in range(3):
                    session.run(x)
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    session.run(x)
                    times.append(time.perf_counter() - start)
            times.sort()
            row[f"t{threads}_median_ms"] = statistics.median(times) * 1e3
            row[f"t{threads}_p90_ms"] = times[int(0.9 * (len(times) - 1))] * 1e3
        rows.append(row)
    return rows


def markdown(rows: list[dict], runs: int) -> str:
    lines = ["| model | ops | upgrade (ms) | 1 thread median / p90 (ms) | 2 threads median / p90 (ms) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['ops']} | {r['upgrade_ms']:.0f} | {r['t1_median_ms']:.1f} / "
                     f"{r['t1_p90_ms']:.1f} | {r['t2_median_ms']:.1f} / {r['t2_p90_ms']:.1f} |")
    lines.append(f"\n{runs} timed calls per cell, batch 1, worker backend; {describe_machine(machine_info())}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrades", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = shared_path() / "legacy-ms"
    if not folder.is_dir():
        print(f"needs ../shared/legacy-ms at {folder}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="legacy-upgrade-bench-") as work:
        rows = measure(folder, Path(work), args.upgrades, args.runs)
    print(json.dumps(rows, indent=2) if args.json else markdown(rows, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: what the worker bridge costs on top of MindSpore Lite itself.

For mobilenet_v2_tv converted to .ms and .mindir, at batch 1 and 8 and with 1 and 2 threads, every call
measures two things at once:

* wall: time.perf_counter() around `session.run(batch)` in this process (the input is prepared beforehand);
* runtime: `session.last_runtime_s`, the time MindSpore Lite itself spent on that call, measured inside the
  worker (the loop over the fixed batch-1 graph, set_data_from_numpy, predict, output copy).

The bridge overhead of a call is wall / runtime - 1: input check, the shared-memory copy of the batch, the
two pipe hops with their JSON messages, the output copy back, and the wake-ups of both processes. Both
numbers come from the same call, so a noisy neighbour that slows a call slows both; the table reports
medians over all calls of all rounds, warm-ups excluded. Targets: <= 10% at batch 1, <= 3% at batch 8.

    .venv/bin/python benchmarks/bridge_overhead.py              # markdown table on stdout
    .venv/bin/python benchmarks/bridge_overhead.py --json       # machine-readable results
    .venv/bin/python benchmarks/bridge_overhead.py --write-docs # also refresh docs/benchmarks.md

This is a script, not a test: timings on shared machines are too noisy to assert on in CI.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from measure import machine_info, shared_path  # benchmarks/measure.py, beside this script

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MODEL = "mobilenet_v2_tv"
FORMATS = ("ms", "mindir")
THREADS = (1, 2)
BATCHES = (1, 8)
TARGETS = {1: 0.10, 8: 0.03}  # max median overhead per batch size
START, END = "<!-- bridge-overhead:start -->", "<!-- bridge-overhead:end -->"
RERUN = ".venv/bin/python benchmarks/bridge_overhead.py --write-docs"

DOCS_INTRO = f"""# Benchmarks

Performance measurements of fiftyone-mslite. They are scripts under `benchmarks/`, not timed tests: run them
on a quiet machine and read the numbers, rather than asserting on timings in CI.

## Runtime bridge overhead

MindSpore Lite 2.0.0 only ships for Python 3.7, so `fiftyone_mslite.runtime` usually runs models in a worker
process on that Python and passes tensors through shared memory (`backend="worker"`). This benchmark measures
what that bridge costs on top of MindSpore Lite itself.

For every `session.run(batch)` call it records two times from the same call:

- **wall**: `time.perf_counter()` around `session.run(batch)` in the caller (the batch is prepared beforehand);
- **runtime**: `session.last_runtime_s`, the time MindSpore Lite spent on that call, measured inside the worker.

The overhead of a call is `wall / runtime - 1`; the table gives medians over all timed calls (warm-up calls
excluded), and the absolute median of `wall - runtime`. Calls are taken in rounds that rotate through the
configurations, so slow phases of a noisy machine hit all of them. Model: torchvision MobileNetV2
(`mobilenet_v2_tv.onnx` from `../shared/onnx`), converted to `.ms` and `.mindir` once and cached under
`$FIFTYONE_MSLITE_HOME/bench` (default `~/.cache/fiftyone-mslite/bench`). Its graph has a fixed batch of 1,
so a batch of 8 is one bridge round trip and 8 predict calls inside the worker.

Targets: median overhead <= 10% at batch 1 and <= 3% at batch 8.

Rerun (takes about a minute; `--json` prints machine-readable results, `--help` lists the knobs):

```
{RERUN}
```

The section between the markers below is rewritten by that command.

"""




def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=shared_path(),
                   help="the shared data folder holding onnx/mobilenet_v2_tv.onnx (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where converted models are kept and reused (default: <runtime cache>/bench)")
    p.add_argument("--rounds", type=int, default=8, help="rounds over all configurations (default: %(default)s)")
    p.add_argument("--calls-b1", type=int, default=40, help="timed batch-1 calls per round (default: %(default)s)")
    p.add_argument("--calls-b8", type=int, default=12, help="timed batch-8 calls per round (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed calls before each block of timed calls (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the markdown table")
    p.add_argument("--write-docs", action="store_true",
                   help="rewrite the bridge-overhead section of docs/benchmarks.md with these results")
    args = p.parse_args(argv)
    if min(args.rounds, args.calls_b1, args.calls_b8) < 1 or args.warmup < 0:
        p.error("--rounds and --calls-* must be >= 1, --warmup >= 0")
    return args


def converted_models(shared: Path, cache_dir: Path) -> dict:
    """{format: path}, converting the ONNX source only when no up-to-date conversion is cached."""
    from fiftyone_mslite.modelfiles.convert import convert_model

    source = shared / "onnx" / (MODEL + ".onnx")
    if not source.is_file():
        sys.exit(f"bridge_overhead: source model {source} not found. Pass --shared DIR (the folder holding "
                 f"onnx/{MODEL}.onnx) or set FIFTYONE_MSLITE_SHARED.")
    cache_dir.mkdir(parents=True, exist_ok=True)
    models = {}
    for fmt in FORMATS:
        target = cache_dir / f"{MODEL}.{fmt}"
        if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
            print(f"converting {source.name} -> {target}", file=sys.stderr)
            target = convert_model(source, target, save_type=fmt, backend="worker").output
        models[fmt] = Path(target)
    return models


def timed_calls(session, batch: np.ndarray, warmup: int, calls: int) -> list:
    """[(wall_s, runtime_s)] for `calls` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        session.run(batch)
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(calls):
            start = time.perf_counter()
            session.run(batch)
            wall = time.perf_counter() - start
            samples.append((wall, session.last_runtime_s))
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def measure(models: dict, args: argparse.Namespace) -> list:
    from fiftyone_mslite import runtime

    configs = [(fmt, threads) for fmt in FORMATS for threads in THREADS]
    sessions = {}
    try:
        for fmt, threads in configs:
            sessions[fmt, threads] = runtime.open_model(models[fmt], threads=threads, backend="worker")
        rng = np.random.default_rng(0)
        batches = {}
        for key, session in sessions.items():
            spec = session.inputs[0]
            for n in BATCHES:
                batches[key, n] = rng.random((n,) + tuple(spec.shape[1:]), dtype=np.float32).astype(spec.dtype)
        samples = {(fmt, threads, n): [] for fmt, threads in configs for n in BATCHES}
        per_round = {key: [] for key in samples}
        calls = {1: args.calls_b1, 8: args.calls_b8}
        for r in range(args.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]  # rotate: no config always goes first
            for fmt, threads in order:
                for n in BATCHES:
                    got = timed_calls(sessions[fmt, threads], batches[(fmt, threads), n], args.warmup, calls[n])
                    samples[fmt, threads, n].extend(got)
                    per_round[fmt, threads, n].append(statistics.median(w / rt - 1 for w, rt in got))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for session in sessions.values():
            session.close()
    rows = []
    for (fmt, threads, n), got in samples.items():
        overhead = statistics.median(w / rt - 1 for w, rt in got)
        rows.append({
            "format": fmt, "threads": threads, "batch": n, "calls": len(got),
            "wall_ms": statistics.median(w for w, _ in got) * 1e3,
            "runtime_ms": statistics.median(rt for _, rt in got) * 1e3,
            "overhead": overhead,
            "overhead_us": statistics.median(w - rt for w, rt in got) * 1e6,
            "round_min": min(per_round[fmt, threads, n]), "round_max": max(per_round[fmt, threads, n]),
            "target": TARGETS[n], "ok": overhead <= TARGETS[n],
        })
    rows.sort(key=lambda row: (row["batch"], FORMATS.index(row["format"]), row["threads"]))
    return rows


def markdown_table(rows: list) -> str:
    lines = ["| format | batch | threads | calls | wall (ms) | runtime (ms) | overhead | overhead (µs) "
             "| per-round medians | target | met |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in rows:
        lines.append("| .{} | {} | {} | {} | {:.2f} | {:.2f} | **{:.1f}%** | {:.0f} | {:.1f}–{:.1f}% | <= {:.0f}% "
                     "| {} |".format(r["format"], r["batch"], r["threads"], r["calls"], r["wall_ms"],
                                     r["runtime_ms"], r["overhead"] * 100, r["overhead_us"], r["round_min"] * 100,
                                     r["round_max"] * 100, r["target"] * 100, "yes" if r["ok"] else "**no**"))
    return "\n".join(lines)


def report(result: dict) -> str:
    m, s, w = result["machine"], result["settings"], result["worker"]
    return "\n".join([
        f"`{MODEL}` (torchvision MobileNetV2, fixed batch-1 graph), measured {result['date']} on {m['cpu']}"
        f"{', ' + m['simd'].upper() if m.get('simd') else ''} ({m['cores']} cores as seen by sched_getaffinity), "
        f"{m['platform']}; caller Python {m['python']}, "
        f"worker Python "
        f"{w.get('worker_python_version', '?')} with MindSpore Lite {w.get('worker_mindspore_lite', '?')}.",
        f"{s['rounds']} rounds; per round and configuration {s['warmup']} warm-up calls, then {s['calls_b1']} "
        f"timed calls at batch 1 and {s['calls_b8']} at batch 8 (benchmark took {result['elapsed_s']:.0f} s).",
        "",
        markdown_table(result["rows"]),
        "",
        "overhead = median over calls of wall / runtime - 1; overhead (µs) = median of wall - runtime; "
        "per-round medians = range of the per-round median overheads (stability across the run).",
    ])


def write_docs(text: str, path: Path = DOCS) -> None:
    block = f"{START}\n{text}\n{END}"
    if path.is_file():
        current = path.read_text(encoding="utf-8")
        if START in current and END in current:
            head, rest = current.split(START, 1)
            tail = rest.split(END, 1)[1]
            new = head + block + tail
        else:
            new = current.rstrip("\n") + f"\n\n## Runtime bridge overhead\n\nRerun with `{RERUN}`.\n\n{block}\n"
    else:
        new = DOCS_INTRO + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def main(argv=None) -> int:
    args = parse_args(argv)
    from fiftyone_mslite import runtime

    try:
        runtime.runtime_python()
        worker = runtime.info()
    except runtime.RuntimeUnavailableError as exc:
        sys.exit(f"bridge_overhead: {exc}")
    models = converted_models(args.shared, args.cache_dir or runtime.cache_home() / "bench")
    started = time.perf_counter()
    rows = measure(models, args)
    result = {
        "date": datetime.date.today().isoformat(), "machine": machine_info(),
        "worker": {k: v for k, v in worker.items() if k.startswith("worker_")},
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "calls_b1": args.calls_b1,
                     "calls_b8": args.calls_b8},
        "models": {fmt: str(p) for fmt, p in models.items()},
        "elapsed_s": time.perf_counter() - started, "rows": rows,
        "targets_met": all(r["ok"] for r in rows),
    }
    text = report(result)
    print(json.dumps(result, indent=2) if args.json else text)
    if args.write_docs:
        write_docs(text)
        print(f"updated {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

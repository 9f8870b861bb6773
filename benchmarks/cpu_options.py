"""What MindSpore Lite 2.0.0 offers for this CPU (issue 23): each option paired against the default, batch 1.

tv-mobilenet-v2 (../shared/onnx/mobilenet_v2_tv.onnx) at 1 and 2 threads, in the runtime's Python 3.7
(`mslite_cpu_child.py`, MindSpore Lite's own Python API, no bridge): the default context; thread affinity mode 1
(big cores first: binds the pool's threads); the threads bound to explicit cores (`thread_affinity_core_list`);
`inter_op_parallel_num` = threads; a model converted with `optimize="none"` instead of the converter's default
"general" (fusions off: shows what they are worth). Every variant runs `--calls` calls per segment, segments
interleaved in pairs (ABBA), and the ratio is the median of the per-pair ratios default / variant (> 1: the
variant is faster), with its IQR, as benchmarks/measure.py does. The SIMD level is recorded: MindSpore Lite's x86
build carries AVX-512 and AVX kernels, so figures from an AVX-512 CPU do not hold on an AVX2-only one.

What 2.0.0 does not offer for a CPU: fp16 (the x86 library is built without it: "does not support fp16"), and
runtime config-file keys for a single model (`build_from_file(..., config_path)`): the only CPU keys in its
binaries are ModelParallelRunner's (`enable_shared_thread_pool`, `thread_num_limit_per_worker`).

    .venv/bin/python benchmarks/cpu_options.py [--pairs 20] [--calls 30] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from measure import find_shared, machine_info, pair_ratios, spread

CHILD = Path(__file__).resolve().parent / "mslite_cpu_child.py"
MODEL = "onnx/mobilenet_v2_tv.onnx"


def variants(models: dict[str, str], threads: int) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (model file, context.cpu options) at `threads` threads."""
    bound = sorted(os.sched_getaffinity(0))[:threads]
    out = {"default": (models["general"], {}),
           "affinity: big cores first (mode 1)": (models["general"], {"thread_affinity_mode": 1}),
           f"bound to cores {bound}": (models["general"], {"thread_affinity_core_list": bound}),
           "converter optimize=none": (models["none"], {})}
    if threads > 1:
        out[f"inter_op_parallel_num={threads}"] = (models["general"], {"inter_op_parallel_num": threads})
    return out


def _child(*args: str, **popen: Any) -> subprocess.Popen:
    from fiftyone_mslite.runtime import runtime_python

    return subprocess.Popen([runtime_python(), str(CHILD), *args], text=True, **popen)


def measure_options(shared: Path, threads: list[int], pairs: int, calls: int) -> dict[str, Any]:
    """Every variant in a process of its own, all loaded at once; segments of `calls` calls run one process at a
    time, in interleaved pairs."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="mslite-cpu-options-") as work:
        conv = _child("convert", str(shared / MODEL), work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = conv.communicate()
        if conv.returncode:
            raise SystemExit(f"conversion failed:\n{err[-3000:]}")
        models = json.loads(out.strip().splitlines()[-1])
        for n in threads:
            procs, outputs, errors = {}, {}, {}
            for name, (path, options) in variants(models, n).items():
                proc = _child("serve", path, str(n), json.dumps(options), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                first = proc.stdout.readline()
                if not first:
                    errors[name] = proc.stderr.read()[-500:].strip() or f"exit {proc.wait()}"
                    continue
                procs[name], outputs[name] = proc, np.asarray(json.loads(first))
            ms: dict[str, list[float]] = {name: [] for name in procs}
            try:
                for r in range(pairs):
                    for name in (list(procs) if r % 2 == 0 else list(procs)[::-1]):
                        procs[name].stdin.write(f"{calls}\n")
                        procs[name].stdin.flush()
                        ms[name].append(float(procs[name].stdout.readline()))
            finally:
                for proc in procs.values():
                    proc.stdin.close()
                    proc.wait()
            base = ms["default"]
            runs.append({"threads": n, "errors": errors, "variants": {
                name: {"ms": spread(v).to_dict(), "ms_per_pair": v,
                       "speedup": None if name == "default" else pair_ratios(base, v).to_dict(),
                       "max_abs_diff": float(np.abs(outputs[name] - outputs["default"]).max())}
                for name, v in ms.items()}})
    return {"machine": machine_info(("numpy",)), "model": "tv-mobilenet-v2", "mindspore_lite": "2.0.0",
            "pairs": pairs, "calls": calls, "runs": runs}


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [f"`{res['model']}`, batch 1, MindSpore Lite {res['mindspore_lite']} Python API in the runtime's "
             f"Python (no bridge), measured {m['date']} on {m['cpu']}, **{m['simd'].upper()}** "
             f"({', '.join(m['simd_flags'])}), {m['cores']} cores; {res['pairs']} interleaved pairs of "
             f"{res['calls']} calls per variant.", "",
             "| threads | variant | ms per call: median (IQR) | speed-up vs default: per-pair median (IQR) | "
             "max \\|Δ output\\| |", "|---:|---|---:|---:|---:|"]
    for run in res["runs"]:
        for name, v in run["variants"].items():
            s = v["speedup"]
            speed = "—" if s is None else f"**{s['median']:.3f}x** ({s['q1']:.3f}–{s['q3']:.3f})"
            lines.append(f"| {run['threads']} | {name} | {v['ms']['median']:.2f} ({v['ms']['q1']:.2f}–"
                         f"{v['ms']['q3']:.2f}) | {speed} | {v['max_abs_diff']:.1e} |")
        for name, why in run["errors"].items():
            lines.append(f"| {run['threads']} | {name} | refused: {why} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--calls", type=int, default=30, help="calls per segment")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shared = find_shared()
    if shared is None or not (shared / MODEL).is_file():
        raise SystemExit(f"needs ../shared/{MODEL}")
    res = measure_options(shared, args.threads, args.pairs, args.calls)
    print(json.dumps(res, indent=1) if args.json else render(res))


if __name__ == "__main__":
    sys.exit(main())

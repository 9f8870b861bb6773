"""Benchmarks against peers (the engine is `suite.py`; `fiftyone-mslite benchmark MODEL` is the user-facing
MindSpore-Lite-style latency tool).

    .venv/bin/python benchmarks/peers.py                                  # every section, markdown on stdout
    .venv/bin/python benchmarks/peers.py --only models --limit 200 --json # one section, machine-readable
    .venv/bin/python benchmarks/peers.py --write-docs                     # refresh docs/benchmarks.md + plot

Sections: models (size, top-1/top-5, runtime-only latency at 1 and 2 threads), annotate (runtime only vs
apply_model vs annotate), peers (MindSpore Lite vs ONNX Runtime raw, and a hand-written ONNX Runtime FiftyOne
model vs annotate). Takes ~15 minutes for everything on 2 cores; a script, not a test: timings are noisy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suite import PAIRS, SECTIONS, render_markdown, run_benchmarks, write_docs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    ap.add_argument("--limit", type=int, default=None, help="at most N images per image set (default: all)")
    ap.add_argument("--repeats", type=int, default=3, help="latency tables: timed rounds after the warm-up")
    ap.add_argument("--pairs", type=int, default=PAIRS, help="throughput: interleaved segment pairs (default 20)")
    ap.add_argument("--models", help="comma-separated models for the models section (default: all available)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of markdown")
    ap.add_argument("--write-docs", action="store_true", help="rewrite this run's sections of docs/benchmarks.md")
    args = ap.parse_args()
    results = run_benchmarks(args.only or SECTIONS, args.limit, args.repeats, pairs=args.pairs,
                             models=args.models.split(",") if args.models else None)
    print(json.dumps(results, indent=1) if args.json else render_markdown(results))
    if args.write_docs:
        for path in write_docs(results):
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

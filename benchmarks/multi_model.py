"""Two models in one annotate pass against two annotate calls (issue 23, point 1; goal: >= 1.5x).

One run, paired and interleaved (`measure.run_paired`) on the same segments of the ImageNet sample images: the
baseline labels a segment with `annotate(samples, model_a, ...)` then `annotate(samples, model_b, ...)`; the
contender with `annotate(samples, [model_a, model_b], [...])`, which decodes each image once for both. Throughput
is images per second (each image labeled by both models), CPU per image by component (MindSpore Lite workers,
decode threads, the rest). The models share a decoded image but not a tensor when their recipes differ (the
default pair: float tv-mobilenet-v2 and the quantized Coral MobileNetV2), and the tensor too when they are equal
(`--models tv-mobilenet-v2 tv-mobilenet-v2`: two loads of one model, the lower bound of a pass's cost).

    .venv/bin/python benchmarks/multi_model.py [--models A B] [--limit N] [--segment N] [--pairs N] [--json FILE]

Smoke test (tiny sizes): --limit 20 --segment 10 --pairs 1.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from measure import describe_machine, machine_info, markdown_table, run_paired
from suite import BATCH_SIZE, bench_dataset, cpu_meter, ensure_models, imagenet, isolate_fiftyone, setup_sources

MODELS = ("tv-mobilenet-v2", "coral-mobilenet-v2-quant")  # float vs quantized: other recipes, one decode


def _checked(summary, samples) -> None:
    if summary.processed != len(samples):
        raise RuntimeError(f"{summary.model}: labeled {summary.processed} of {len(samples)}: {summary.to_dict()}")


def two_calls(models: Sequence[Any]) -> Callable[[Any], float]:
    """One annotate call per model, one after the other: today's cost of a comparison."""
    from fiftyone_mslite.integration.annotation import annotate

    def run(samples) -> float:
        t = time.perf_counter()
        for k, model in enumerate(models):
            _checked(annotate(samples, model, f"calls_{k}", batch_size=BATCH_SIZE, overwrite=True, progress=False),
                     samples)
        return len(samples) / (time.perf_counter() - t)

    return run


def one_pass(models: Sequence[Any]) -> Callable[[Any], float]:
    """Every model in one annotate call: each image decoded once."""
    from fiftyone_mslite.integration.annotation import annotate

    def run(samples) -> float:
        t = time.perf_counter()
        for summary in annotate(samples, list(models), [f"pass_{k}" for k in range(len(models))],
                                batch_size=BATCH_SIZE, overwrite=True, progress=False):
            _checked(summary, samples)
        return len(samples) / (time.perf_counter() - t)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="catalog names, labeled together")
    ap.add_argument("--limit", type=int, help="ImageNet sample images (default: all 1000)")
    ap.add_argument("--segment", type=int, default=250, help="images per timed segment")
    ap.add_argument("--pairs", type=int, default=10, help="interleaved pairs")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    isolate_fiftyone()
    missing = ensure_models(args.models, setup_sources())
    if missing:
        raise SystemExit("; ".join(f"{name}: {why}" for name, why in missing.items()))
    from fiftyone_mslite.integration.model import load_model

    images = imagenet(args.limit)
    samples = bench_dataset(images)
    models = [load_model(name) for name in args.models]
    try:
        result = run_paired({"two calls": two_calls(models), "one pass": one_pass(models)}, samples,
                            min(args.segment, len(samples)), pairs=args.pairs, baseline="two calls",
                            meter=cpu_meter(), essential=("inference", "decode"),
                            log=lambda msg: print(msg, flush=True))
    finally:
        for model in models:
            model.close()
    info = machine_info(("fiftyone", "numpy", "pillow"))
    ratio = result.ratios["one pass"]
    print(f"\n{' + '.join(args.models)} on {len(samples)} ImageNet sample images, batch {BATCH_SIZE}; "
          f"{describe_machine(info)}\n\n{markdown_table(result)}\n\none pass ÷ two calls: **{ratio.median:.3f}x** "
          f"(per pair, IQR {ratio.q1:.3f}–{ratio.q3:.3f}; goal >= 1.5x)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "models": args.models, "result": result.to_dict()},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()

"""A small job, start to finish (issue 24, point 4: "20 images take ~5 s"): where the time goes before the first
label, and the paired cost of what `streams="auto"` used to do at the first batch.

1. Phases of one cold run in a fresh interpreter (`import fiftyone`, `import fiftyone_mslite`, `load_model`, the
   first label, the last): what a user waits for, once.
2. Paired and interleaved (`measure.run_paired`): a whole job (load the model, annotate `--images` samples, close)
   with the streams opened at the first batch (`AdaptiveSession.SWITCH_AFTER_S = 0`, the earlier behaviour) and
   with today's default (after 2 s of batch inference, which a small job never reaches). Throughput is jobs/s.

    .venv/bin/python benchmarks/small_job.py [--model NAME] [--images N] [--pairs N] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import REPO, describe_machine, machine_info, markdown_table, run_paired
from suite import bench_dataset, cpu_meter, ensure_models, imagenet, isolate_fiftyone, setup_sources

PHASES = """
import time; T0 = time.perf_counter()
import fiftyone as fo; t_fo = time.perf_counter()
import fiftyone_mslite as fom; t_ours = time.perf_counter()
files = {files!r}
dataset = fo.Dataset(); dataset.add_samples([fo.Sample(filepath=f) for f in files]); t_ds = time.perf_counter()
model = fom.load_model({model!r}); t_load = time.perf_counter()
first = []
fom.annotate(dataset, model, "p", progress=False,
             on_progress=lambda done, total: first or done and first.append(time.perf_counter()))
t_end = time.perf_counter(); model.close(); dataset.delete()
print({{"import fiftyone": t_fo - T0, "import fiftyone_mslite": t_ours - t_fo, "dataset": t_ds - t_ours,
       "load_model": t_load - t_ds, "first label": first[0] - t_load, "last label": t_end - t_load}})
"""


def phases(model: str, files: list[str]) -> dict[str, float]:
    """Seconds of each phase of one cold run, in a fresh interpreter with this process's environment."""
    run = subprocess.run([sys.executable, "-c", PHASES.format(files=files, model=model)], capture_output=True,
                         text=True, cwd=REPO, timeout=600)
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    return eval(run.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's dict of floats


def whole_job(model_name: str, switch_after_s: float) -> Callable[[Any], float]:
    from fiftyone_mslite import runtime
    from fiftyone_mslite.integration.annotation import annotate
    from fiftyone_mslite.integration.model import load_model

    def run(jobs) -> float:
        for samples in jobs:
            runtime.AdaptiveSession.SWITCH_AFTER_S = switch_after_s
            with load_model(model_name) as model:
                summary = annotate(samples, model, "small", overwrite=True, progress=False)
            if summary.processed != len(samples):
                raise RuntimeError(f"labeled {summary.processed} of {len(samples)}")
        return 0.0

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="coral-mobilenet-v2-quant")
    ap.add_argument("--images", type=int, default=20, help="samples per job")
    ap.add_argument("--pairs", type=int, default=10, help="interleaved pairs")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    isolate_fiftyone()
    missing = ensure_models([args.model], setup_sources())
    if missing:
        raise SystemExit("; ".join(f"{name}: {why}" for name, why in missing.items()))
    from fiftyone_mslite import runtime

    images = imagenet(args.images)
    cold = phases(args.model, [str(p) for p in images.files])
    samples = bench_dataset(images)
    default = runtime.AdaptiveSession.SWITCH_AFTER_S
    result = run_paired({"streams at the first batch": whole_job(args.model, 0.0),
                         f"streams after {default:g} s": whole_job(args.model, default)},
                        [samples] * args.pairs, 1, pairs=args.pairs, baseline="streams at the first batch",
                        meter=cpu_meter(), log=lambda msg: print(msg, flush=True))
    runtime.AdaptiveSession.SWITCH_AFTER_S = default
    info = machine_info(("fiftyone", "numpy", "pillow"))
    ratio = result.ratios[f"streams after {default:g} s"]
    print(f"\n{args.model}, {args.images} ImageNet sample images per job; {describe_machine(info)}\n\ncold run, "
          "seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in cold.items())
          + f"\n\n{markdown_table(result, unit='job')}\n\nstreams after {default:g} s ÷ at the first batch: "
          f"**{ratio.median:.3f}x** jobs/s (per pair, IQR {ratio.q1:.3f}–{ratio.q3:.3f})")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "model": args.model, "images": args.images, "cold": cold,
                                         "result": result.to_dict()}, indent=1, default=str))


if __name__ == "__main__":
    main()

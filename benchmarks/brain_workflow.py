"""One pass, two outputs: annotate with embeddings vs without vs annotate + a separate `compute_embeddings`, then
the FiftyOne Brain workflow (docs/brain.md), on the demo's 1000 ImageNet sample images and model.

The three annotate paths alternate (ABC, CBA, ...) so a drift of the machine's speed cancels in the medians.
The Brain steps run once on the with-embeddings fields (`predictions`, `embeddings`), as `evaluate --brain` would.

    .venv/bin/python benchmarks/brain_workflow.py [--limit N] [--repeats 3] --output results.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from measure import machine_info

from fiftyone_mslite.demo import demo_model, find_shared, imagenet_images, use_mirror
from fiftyone_mslite.integration.annotation import annotate
from fiftyone_mslite.integration.brain import run_brain
from fiftyone_mslite.integration.datasets import import_directory
from fiftyone_mslite.integration.evaluation import evaluate
from fiftyone_mslite.integration.model import load_model


def _paths(ds, model) -> dict:
    """Each path labels the whole dataset from scratch (overwrite), logits kept as `evaluate --brain` needs."""
    common = {"store_logits": True, "overwrite": True, "progress": False}
    return {
        "annotate": lambda: annotate(ds, model, "plain", **common),
        "annotate_with_embeddings": lambda: annotate(ds, model, "predictions", embeddings_field="embeddings",
                                                     **common),
        "annotate_then_compute_embeddings": lambda: (annotate(ds, model, "separate", **common),
                                                     ds.compute_embeddings(model, "separate_embeddings",
                                                                           batch_size=16, progress=False)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="first N images (default: all 1000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, required=True, help="JSON results (FiftyOne prints on stdout)")
    args = parser.parse_args()
    shared = find_shared()
    use_mirror(shared)
    name = demo_model("imagenet", shared, None)
    ds = import_directory("mslite-brain-benchmark", imagenet_images(args.limit), labels_from="filename-synset",
                          label_set="imagenet-1000", overwrite=True)
    times: dict[str, list[float]] = {}
    with load_model(name) as model:
        paths = _paths(ds, model)
        order = list(paths)
        for rep in range(args.repeats):
            for key in order if rep % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                paths[key]()
                times.setdefault(key, []).append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    start = time.perf_counter()
    result = evaluate(ds, "predictions", "ground_truth", eval_key="eval", top_k=5)
    eval_s = time.perf_counter() - start
    brain = run_brain(ds, "predictions", "ground_truth", embeddings_field="embeddings", top=10)
    args.output.write_text(json.dumps({
        "machine": machine_info(["fiftyone", "fiftyone-brain"]), "model": name, "samples": len(ds),
        "repeats": args.repeats, "seconds": times, "median_s": med,
        "images_per_s": {k: round(len(ds) / v, 1) for k, v in med.items()},
        "embeddings_overhead": round(med["annotate_with_embeddings"] / med["annotate"] - 1, 4),
        "speedup_vs_separate": round(med["annotate_then_compute_embeddings"] / med["annotate_with_embeddings"], 2),
        "accuracy": result.accuracy, "top5_accuracy": result.top_k_accuracy, "mistakes": result.num_mistakes,
        "evaluate_s": round(eval_s, 2), "brain": brain.to_dict(),
    }, indent=1, default=str))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

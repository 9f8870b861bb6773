"""annotate() vs FiftyOne's apply_model() vs the bare runtime, on the ImageNet sample images.

In one process and through the same MindSpore Lite session: (a) runtime only (pre-made tensors, batch 16),
(b) `dataset.apply_model(model, batch_size=16)`, (c) `annotate(dataset, model, batch_size=16)`; each
repeated in rounds after a warm-up round, medians reported. `--draft-agreement` measures how often JPEG
draft decoding changes the top-1 label (the criterion for annotate's `draft` default).

    .venv/bin/python benchmarks/annotate_vs_apply_model.py --write-docs
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FIFTYONE_MSLITE_SHARED", REPO.parent / "shared"))
IMAGENET = "raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"
MODEL = "tv-mobilenet-v2"
DOCS = REPO / "docs" / "benchmarks.md"
START, END = "<!-- annotate:start -->", "<!-- annotate:end -->"


def isolate() -> None:
    """A throw-away FiftyOne database (set before fiftyone is imported)."""
    root = Path(tempfile.mkdtemp(prefix="fiftyone-mslite-bench-"))
    os.environ.update({"FIFTYONE_DATABASE_DIR": str(root / "db"), "FIFTYONE_DATABASE_NAME": "mslite-bench",
                       "FIFTYONE_DEFAULT_DATASET_DIR": str(root / "datasets"), "FIFTYONE_DO_NOT_TRACK": "true",
                       "FIFTYONE_SHOW_PROGRESS_BARS": "false"})
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ.setdefault("FIFTYONE_MSLITE_MIRROR", str(SHARED / "mirror"))


def ensure_model() -> None:
    from fiftyone_mslite.catalog.registry import catalog
    from fiftyone_mslite.catalog.user import add_model

    if MODEL not in catalog().models:
        add_model(MODEL, str(SHARED / "onnx" / "mobilenet_v2_tv.onnx"), "imagenet-1000")


def draft_agreement(model, files: list[Path]) -> dict:
    """Top-1 agreement between draft and full JPEG decoding, plus how many images draft actually shrinks."""
    import numpy as np

    from fiftyone_mslite.adapters.preprocessing import input_hw
    from fiftyone_mslite.images import open_rgb

    clf = model.classifier
    fit = (input_hw(clf.adapter.input), clf.adapter.preprocess_config)
    same = shrunk = 0
    for lo in range(0, len(files), 16):
        chunk = files[lo:lo + 16]
        full = [open_rgb(f, fit, draft=False) for f in chunk]
        drafted = [open_rgb(f, fit, draft=True) for f in chunk]
        shrunk += sum(a.size != b.size for a, b in zip(full, drafted))
        top_full = clf.infer(np.stack([clf.preprocess(im) for im in full]))
        top_draft = clf.infer(np.stack([clf.preprocess(im) for im in drafted]))
        same += sum(a.index == b.index for a, b in zip(top_full, top_draft))
        for im in (*full, *drafted):
            im.close()
    return {"images": len(files), "agree": same, "agreement_pct": 100.0 * same / len(files), "shrunk": shrunk}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=1000, help="number of ImageNet images (default 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="MindSpore Lite threads in the worker")
    ap.add_argument("--workers", type=int, default=None, help="annotate decode threads (default: annotate's)")
    ap.add_argument("--draft", choices=("default", "on", "off"), default="default")
    ap.add_argument("--draft-agreement", action="store_true", help="also measure draft vs full decoding top-1")
    ap.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.relative_to(REPO)}")
    args = ap.parse_args()

    isolate()
    sys.path.insert(0, str(REPO))
    import fiftyone as fo
    import numpy as np

    from fiftyone_mslite.annotation import DEFAULT_DRAFT, annotate
    from fiftyone_mslite.images import open_rgb
    from fiftyone_mslite.model import load_model

    ensure_model()
    files = sorted((SHARED / "mirror" / IMAGENET).glob("*.JPEG"))[: args.limit]
    draft = DEFAULT_DRAFT if args.draft == "default" else args.draft == "on"
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=str(f)) for f in files])
    model = load_model(MODEL, threads=args.threads)
    clf = model.classifier
    tensors = [clf.preprocess(open_rgb(f)) for f in files[:64]]
    batches = [np.stack([tensors[(i + k) % len(tensors)] for k in range(args.batch_size)])
               for i in range(0, len(files), args.batch_size)]
    n = len(files)

    def runtime_only() -> float:
        t = time.perf_counter()
        for b in batches:
            clf.infer(b)
        return len(batches) * args.batch_size / (time.perf_counter() - t)

    def apply_model() -> float:
        dataset.delete_sample_field("apply", error_level=2)
        t = time.perf_counter()
        dataset.apply_model(model, "apply", batch_size=args.batch_size, progress=False)
        return n / (time.perf_counter() - t)

    def ours() -> float:
        t = time.perf_counter()
        summary = annotate(dataset, model, "annotate", batch_size=args.batch_size, num_workers=args.workers,
                           overwrite=True, draft=draft, progress=False)
        assert summary.processed == n, summary.to_dict()
        return n / (time.perf_counter() - t)

    runs: dict[str, list[float]] = {"runtime only": [], "apply_model": [], "annotate": []}
    fns = {"runtime only": runtime_only, "apply_model": apply_model, "annotate": ours}
    began = time.time()
    for r in range(args.rounds + 1):
        for name, fn in fns.items():
            ips = fn()
            if r:  # round 0 is the warm-up
                runs[name].append(ips)
            print(f"round {r}{' (warm-up)' if not r else ''}: {name}: {ips:.1f} images/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    agreement = draft_agreement(model, files) if args.draft_agreement else None
    model.close()

    # Ratios within a round (taken seconds apart) are steadier than ratios of medians on a busy machine.
    per_apply = [a / b for a, b in zip(runs["annotate"], runs["apply_model"])]
    per_rt = [a / b for a, b in zip(runs["annotate"], runs["runtime only"])]
    r_apply, r_rt = statistics.median(per_apply), statistics.median(per_rt)
    lines = [
        f"`{MODEL}` (torchvision MobileNetV2, ImageNet-1000), {n} ImageNet sample images (mostly ~500x375 JPEG), "
        f"batch {args.batch_size}, MindSpore Lite threads {args.threads}, annotate decode threads "
        f"{args.workers or os.cpu_count()}, draft {'on' if draft else 'off'}; {platform.processor() or 'CPU'} "
        f"({os.cpu_count()} cores), measured {time.strftime('%Y-%m-%d')}. Median of {args.rounds} rounds after "
        f"a warm-up round (benchmark took {time.time() - began:.0f} s).",
        "",
        "| path | images/s (median) | rounds |",
        "|---|---:|---|",
        *(f"| {k} | **{med[k]:.1f}** | {', '.join(f'{x:.1f}' for x in runs[k])} |" for k in runs),
        "",
        f"Median of per-round ratios: annotate / apply_model = **{r_apply:.2f}x** (rounds: "
        f"{', '.join(f'{x:.2f}' for x in per_apply)}; goal >= 1.5x: {'met' if r_apply >= 1.5 else 'not met'}); "
        f"annotate / runtime only = **{r_rt:.2f}x** (rounds: {', '.join(f'{x:.2f}' for x in per_rt)}; "
        f"goal >= 0.8x: {'met' if r_rt >= 0.8 else 'not met'}).",
    ]
    if agreement:
        lines += ["", f"Draft decoding vs full decoding, top-1 agreement: **{agreement['agreement_pct']:.2f} %** "
                      f"({agreement['agree']}/{agreement['images']}; draft shrank {agreement['shrunk']} images)."]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_docs(text)


def write_docs(text: str) -> None:
    doc = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if START not in doc:
        doc = doc.rstrip("\n") + (f"\n\n## annotate() vs apply_model()\n\nRerun: `.venv/bin/python "
                                  f"benchmarks/annotate_vs_apply_model.py --write-docs` (see docs/annotate.md)."
                                  f"\n\n{START}\n{END}\n")
    head, rest = doc.split(START, 1)
    DOCS.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()

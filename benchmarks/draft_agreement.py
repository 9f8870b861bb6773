"""How often JPEG draft decoding changes the top-1 label: the criterion for annotate's `draft` default.

Decodes each ImageNet sample image twice (full, and draft at the reduced size the model's resize needs) and
compares tv-mobilenet-v2's top-1 class. annotate() decodes in draft mode by default only while agreement stays
>= 99.5 % (docs/annotate.md). Throughput of annotate vs apply_model vs the runtime:
`benchmarks/peers.py --only annotate`.

    .venv/bin/python benchmarks/draft_agreement.py [--limit N]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from suite import ensure_models, imagenet, setup_sources

from fiftyone_mslite.adapters.images import open_rgb
from fiftyone_mslite.classifier import load_classifier


def draft_agreement(clf, files: list) -> dict:
    """Top-1 agreement between draft and full decoding, and how many images draft actually shrinks."""
    fit = clf.fit
    same = shrunk = 0
    for lo in range(0, len(files), 16):
        chunk = files[lo:lo + 16]
        full = [open_rgb(f, fit, draft=False) for f in chunk]
        drafted = [open_rgb(f, fit, draft=True) for f in chunk]
        shrunk += sum(a.size != b.size for a, b in zip(full, drafted))
        top_full = clf.infer(np.stack([clf.prepare(im) for im in full]))
        top_draft = clf.infer(np.stack([clf.prepare(im) for im in drafted]))
        same += sum(a.index == b.index for a, b in zip(top_full, top_draft))
    return {"images": len(files), "agree": same, "agreement_pct": 100.0 * same / len(files), "shrunk": shrunk}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="first N of the 1000 images")
    args = ap.parse_args()
    missing = ensure_models(["tv-mobilenet-v2"], setup_sources())
    if missing:
        raise SystemExit(f"tv-mobilenet-v2: {missing['tv-mobilenet-v2']}")
    files = list(imagenet(args.limit).files)
    with load_classifier("tv-mobilenet-v2") as clf:
        print(json.dumps(draft_agreement(clf, files), indent=1))


if __name__ == "__main__":
    main()

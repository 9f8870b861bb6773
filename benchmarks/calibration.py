"""Confidence calibration measured on real models: the tables and reliability diagrams of docs/calibration.md.

Per model: logits of every image (ImageNet sample images, or CIFAR-10 test images), a seeded 50/50 fit/held-out
split, temperature and vector scaling fitted on the fit half, and on the held-out half only: accuracy, ECE
(equal-width and equal-mass, 15 bins), MCE, NLL and Brier before/after, the confidence threshold for a target
precision with the coverage it keeps, and split-conformal (APS and RAPS) coverage and mean set size against the
target. The same functions as `models calibrate-confidence` and `conformal` (fiftyone_mslite.confidence), without
FiftyOne in between. Accuracy figures, no timings: runs anywhere.

    .venv/bin/python benchmarks/calibration.py [--models a,b] [--imagenet N] [--cifar N] [--write]

--write stores docs/images/calibration.json, the diagrams docs/images/calibration-<model>.png and the results
section of docs/calibration.md (between its `calibration-results` markers).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from suite import DOCS_DIR, ensure_models, images_for, setup_sources

from fiftyone_mslite import confidence as cm

MODELS = ("tv-mobilenet-v2", "efficientnet-lite0", "coral-mobilenet-v2-quant", "cifar10-resnet20",
          "cifar10-resnet56")
BINS = 15
SEED = 0
PRECISIONS = (0.9, 0.95, 0.99)
COVERAGES = (0.8, 0.9, 0.95)
RESULTS = DOCS_DIR / "images" / "calibration.json"
MARKERS = ("<!-- calibration-results:start -->", "<!-- calibration-results:end -->")


def logits_and_targets(name: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, str, int]:
    """Every image's logits and its true class index (images whose class the model lacks are dropped)."""
    from fiftyone_mslite.adapters.images import load_image
    from fiftyone_mslite.classifier import load_classifier

    images = images_for(name, limit)
    with load_classifier(name, progress=False) as clf:
        offset = len(clf.class_names) - len(clf.labels.names)  # a background output first
        index = {}
        for i in range(len(clf.labels.names)):
            index.setdefault(clf.labels.key(i), i + offset)
        rows, targets = [], []
        with ThreadPoolExecutor(2) as pool:
            for lo in range(0, len(images.files), 16):
                chunk = images.files[lo:lo + 16]
                tensors = list(pool.map(lambda f: clf.prepare(load_image(f)), chunk))
                for pred, truth in zip(clf.infer(np.stack(tensors)), images.truth[lo:lo + 16]):
                    if truth in index:
                        rows.append(pred.logits.astype(np.float64))
                        targets.append(index[truth])
    return np.stack(rows), np.asarray(targets), images.name, len(images.files)


def _metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    conf, top = probs.max(axis=1), probs.argmax(axis=1)
    correct = top == targets
    ece, mce = cm.calibration_errors(conf, correct, BINS, "width")
    return {"accuracy": float(correct.mean()), "ece": ece, "ece_mass": cm.calibration_errors(conf, correct, BINS,
                                                                                             "mass")[0],
            "mce": mce, "nll": cm.nll(probs, targets), "brier": cm.brier_score(probs, targets)}


def _report(probs: np.ndarray, targets: np.ndarray) -> cm.CalibrationReport:
    top = probs.argmax(axis=1)
    return cm.measure(probs.max(axis=1), top.tolist(), targets.tolist(), BINS, "width", probs, targets)


def measure_model(name: str, limit: int | None, images_dir: Path | None) -> dict[str, Any]:
    logits, targets, data, seen = logits_and_targets(name, limit)
    fit, held = cm.split_indices(len(targets), 0.5, SEED)
    raw = cm.Scaling("temperature")
    temp = cm.fit_temperature(logits[fit], targets[fit])
    vector = cm.fit_vector_scaling(logits[fit], targets[fit])
    row: dict[str, Any] = {"model": name, "data": data, "images": seen, "samples": len(targets),
                           "fit": len(fit), "held_out": len(held), "T": temp.temperature}
    for label, scaling in (("raw", raw), ("temperature", temp), ("vector", vector)):
        row[label] = _metrics(scaling.probabilities(logits[held]), targets[held])
    calibrated = temp.probabilities(logits[held])
    correct = calibrated.argmax(axis=1) == targets[held]
    row["thresholds"] = [cm.global_threshold(calibrated.max(axis=1), correct, p) for p in PRECISIONS]
    row["conformal"] = []
    probs_fit, probs_held = cm.softmax(logits[fit]), cm.softmax(logits[held])
    for method, penalty in (("APS", 0.0), ("RAPS", 0.01)):
        for coverage in COVERAGES:
            predictor = cm.fit_conformal(probs_fit, targets[fit], coverage, penalty=penalty)
            achieved, size = cm.set_coverage(predictor.sets(probs_held), targets[held])
            row["conformal"].append({"method": method, "target": coverage, "coverage": achieved,
                                     "mean_set_size": size, "qhat": predictor.qhat})
    if images_dir is not None:
        for label, probs in (("raw", probs_held), ("temperature", calibrated)):
            path = images_dir / f"calibration-{name}-{label}.png"
            m = row[label]
            cm.diagram(_report(probs, targets[held]), path,
                       f"{name}, {'raw' if label == 'raw' else f'T = {temp.temperature:.2f}'}: ECE {m['ece']:.3f}")
            row.setdefault("diagrams", {})[label] = str(path.relative_to(DOCS_DIR))
    return row


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["Held-out half only (seed 0). ECE over 15 equal-width bins unless marked *mass* (15 equal-mass bins); "
           "NLL in nats.", "",
           "| model | data (held-out / fit) | T | accuracy raw → vector | ECE raw → T → vector | ECE (mass) raw → T "
           "| MCE raw → T | NLL raw → T → vector | Brier raw → T |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        raw, t, v = r["raw"], r["temperature"], r["vector"]
        out.append(f"| {r['model']} | {r['data']} ({r['held_out']} / {r['fit']}) | {r['T']:.3f} | "
                   f"{_pct(raw['accuracy'])} → {_pct(v['accuracy'])} | {raw['ece']:.4f} → {t['ece']:.4f} → "
                   f"{v['ece']:.4f} | {raw['ece_mass']:.4f} → {t['ece_mass']:.4f} | {raw['mce']:.3f} → "
                   f"{t['mce']:.3f} | {raw['nll']:.3f} → {t['nll']:.3f} → {v['nll']:.3f} | {raw['brier']:.4f} → "
                   f"{t['brier']:.4f} |")
    out += ["", "### Confidence threshold for a target precision (temperature-scaled, held-out)", "",
            "| model | " + " | ".join(f"precision ≥ {p:.0%}: threshold (coverage)" for p in PRECISIONS) + " |",
            "|---|" + "---|" * len(PRECISIONS)]
    for r in rows:
        cells = [f"{t['threshold']:.3f} ({_pct(t['coverage'])})" if t["threshold"] is not None else "none"
                 for t in r["thresholds"]]
        out.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    out += ["", "### Conformal prediction sets (fitted on the fit half, measured on the held-out half)", "",
            "Coverage should be at least the target, within sampling error (about ±"
            f"{100 * np.sqrt(0.9 * 0.1 / max(r['held_out'] for r in rows)):.1f} points at 90 % on the largest "
            "held-out half).", "",
            "| model | method | " + " | ".join(f"target {c:.0%}: coverage, mean size" for c in COVERAGES) + " |",
            "|---|---|" + "---|" * len(COVERAGES)]
    for r in rows:
        for method in ("APS", "RAPS"):
            cells = [f"{_pct(c['coverage'])}, {c['mean_set_size']:.2f}" for c in r["conformal"]
                     if c["method"] == method]
            out.append(f"| {r['model']} | {method} | " + " | ".join(cells) + " |")
    out += ["", "### Reliability diagrams (held-out half: raw, then temperature-scaled)", ""]
    for r in rows:
        if "diagrams" in r:
            out.append(f"**{r['model']}**  ")
            out.append(" ".join(f"![{r['model']} {k}]({p})" for k, p in r["diagrams"].items()))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_docs(rows: list[dict[str, Any]]) -> None:
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    doc = DOCS_DIR / "calibration.md"
    text = doc.read_text()
    start, end = MARKERS
    if start not in text or end not in text:
        raise SystemExit(f"{doc}: missing the markers {start} / {end}")
    head, rest = text.split(start, 1)
    doc.write_text(head + start + "\n" + markdown(rows) + end + rest.split(end, 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--imagenet", type=int, default=None, help="at most N ImageNet sample images (default: 1000)")
    ap.add_argument("--cifar", type=int, default=2000, help="CIFAR-10 test images (default 2000 of 5000)")
    ap.add_argument("--write", action="store_true", help="write docs/calibration.md results and images")
    args = ap.parse_args()
    shared = setup_sources()
    names = [n for n in args.models.split(",") if n]
    missing = ensure_models(names, shared)
    rows = []
    for name in names:
        if name in missing:
            print(f"skip {name}: {missing[name]}", file=sys.stderr)
            continue
        from fiftyone_mslite.catalog.registry import catalog

        limit = args.cifar if catalog().model(name).labels == "cifar10" else args.imagenet
        print(f"{name} ...", file=sys.stderr)
        rows.append(measure_model(name, limit, DOCS_DIR / "images" if args.write else None))
        brief = {k: rows[-1][k] for k in ("model", "T", "raw", "temperature")}
        print(re.sub(r"\s+", " ", json.dumps(brief)), file=sys.stderr)
    if args.write:
        write_docs(rows)
    else:
        print(markdown(rows))


if __name__ == "__main__":
    main()

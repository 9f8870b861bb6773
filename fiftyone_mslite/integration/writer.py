"""The sink of an annotate run: batches of raw outputs in, labels (and embeddings, run digests, error messages) out
to the dataset in bulk, with the run's summary kept as they come. The one path from outputs to stored labels,
whichever engine produced the batches; public, so that an engine's tests or benchmarks can record as `annotate`
does."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import fiftyone.core.odm.utils as foou
import numpy as np
import pymongo
from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import ConnectionFailure, PyMongoError

from ..errors import DatabaseError
from ..pipeline import Batch
from . import compat
from .locks import FieldLock
from .model import MSLiteModel

FLUSH_EVERY = 256  # samples per bulk write; also flushed on completion, Ctrl-C and errors
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


class LabelWriter:
    """Turns batches into labels (`record`) and buffers, per sample, its label, run digest, error message (and
    embedding with its digest) to write them in bulk: one update per sample and flush, so a sample's label and its
    digest land together or not at all (a write cut short leaves a sample to redo, never one marked done with
    another run's label), in one round trip for all of them. Each write has a deadline: a lost database ends the
    run with one `DatabaseError` saying how much was saved, not a minute of retries and a chain of pymongo
    tracebacks. `digest`: the run's settings digest (`<field>_run`); `stale_errors`: ids whose `<field>_error`
    holds an earlier run's message; `locks`: the claims of the fields written, checked before each write;
    `embeddings_digest`: the model's digest, stored beside each vector (`<embeddings_field>_run`)."""

    def __init__(self, samples, model: MSLiteModel, label_field: str, digest: str, stale_errors: set[str],
                 summary: AnnotateSummary, locks: Sequence[FieldLock], embeddings_field: str | None = None,
                 embeddings_digest: str | None = None):
        self.samples, self.model, self.field, self.digest, self.stale = samples, model, label_field, digest, \
            stale_errors
        self.summary, self.locks, self.embeddings_field = summary, locks, embeddings_field
        self.embeddings_digest = embeddings_digest
        self.pending: dict[str, dict[str, Any]] = {}  # sample id -> field -> value, written at the next flush
        self.saved = 0  # labels in the database
        self.db_lost = False

    def ok(self, sample_id: str, label: Any, embedding: np.ndarray | None = None) -> None:
        if sample_id not in self.pending:  # a batch interrupted while being written is written again
            self.summary.processed += 1
        values = {self.field: label, self.field + "_run": self.digest}
        if self.embeddings_field:
            values[self.embeddings_field] = embedding
            values[self.embeddings_field + "_run"] = None if embedding is None else self.embeddings_digest
        if sample_id in self.stale:
            values[self.field + "_error"] = None
        self.pending[sample_id] = values

    def fail(self, sample_id: str, filepath: str, error: str) -> None:
        # no stale label from an overwritten run survives a failure
        values = {self.field: None, self.field + "_run": None, self.field + "_error": error}
        if self.embeddings_field:
            values[self.embeddings_field] = values[self.embeddings_field + "_run"] = None
        self.pending[sample_id] = values
        self.summary.failures.append(Failure(sample_id, filepath, error))

    def record(self, batch: Batch) -> None:
        """One inferred batch into the buffers, labels made by `model.to_labels` from the classifier's
        post-processing of its raw outputs (for any engine: a Ray actor returns raw outputs, the driver records
        them here)."""
        for sid, path, reason in batch.failed:
            self.fail(sid, path, reason)
        if batch.ready:
            clf = self.model.classifier
            labels = self.model.to_labels(clf.postprocess(batch.outputs))
            embeddings = clf.embeddings(batch.outputs) if self.embeddings_field else None
            for k, ((sid, _), label) in enumerate(zip(batch.ready, labels)):
                self.ok(sid, label, None if embeddings is None else embeddings[k])
        self.summary.crashed_batches += batch.crashes

    def put(self, batch: Batch) -> None:
        """`record`, then write if FLUSH_EVERY samples are buffered: an engine's sink."""
        self.record(batch)
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        if self.db_lost or not self.pending or (not force and len(self.pending) < FLUSH_EVERY):
            return
        for lock in self.locks:
            lock.check()
        done = sum(values[self.field + "_run"] is not None for values in self.pending.values())
        self._write()
        self.pending.clear()
        self.saved += done

    def _write(self) -> None:
        dataset = compat.root_dataset(self.samples)
        fields = self._declare(dataset)
        now = datetime.now(timezone.utc)
        ops = [UpdateOne({"_id": ObjectId(sid)},
                         {"$set": {**{name: None if value is None else fields[name].to_mongo(value)
                                      for name, value in values.items() if name in fields},
                                   "last_modified_at": now}})
               for sid, values in self.pending.items()]
        try:
            with pymongo.timeout(DB_TIMEOUT_S):
                compat.update_samples(dataset, ops, list(self.pending))
        except PyMongoError as exc:
            if not (isinstance(exc, ConnectionFailure) or exc.timeout):
                raise
            self.db_lost = True
            raise DatabaseError(f"lost the database connection after {self.saved} saved; rerun to resume "
                                f"({type(exc).__name__})") from None

    def _declare(self, dataset) -> dict[str, Any]:
        """The schema's field of each name written, declaring the ones first given a value now, as `set_values`
        would (a field that only ever held None, such as the errors of a run without any, stays undeclared: its
        value is None whether or not the key is in the document)."""
        fields = {}
        for name in {name for values in self.pending.values() for name in values}:
            field = dataset.get_field(name)
            if field is None:
                value = next((v[name] for v in self.pending.values() if v.get(name) is not None), None)
                if value is None:
                    continue
                dataset.add_sample_field(name, **foou.get_implied_field_kwargs(value))
                field = dataset.get_field(name)
            fields[name] = field
        return fields

"""The sink of an annotate run: batches of raw outputs in, labels (and embeddings, run digests, error messages) out
to the dataset in bulk, with the run's summary kept as they come. The one path from outputs to stored labels,
whichever engine produced the batches; public, so that an engine's tests or benchmarks can record as `annotate`
does."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

from ..errors import DatabaseError
from ..pipeline import Batch
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
    """Turns batches into labels (`record`) and buffers labels, run digests and error messages to write them in
    bulk (one update per field and flush). A label is written before its digest, so a write cut short leaves a
    sample to redo, never one marked done with another run's label. Each write has a deadline: a lost database
    ends the run with one `DatabaseError` saying how much was saved, not a minute of retries and a chain of
    pymongo tracebacks. `digest`: the run's settings digest (`<field>_run`); `stale_errors`: ids whose
    `<field>_error` holds an earlier run's message; `locks`: the claims of the fields written, checked before each
    write; `embeddings_digest`: the model's digest, stored beside each vector (`<embeddings_field>_run`), written
    before it, as a label before its run digest."""

    def __init__(self, samples, model: MSLiteModel, label_field: str, digest: str, stale_errors: set[str],
                 summary: AnnotateSummary, locks: Sequence[FieldLock], embeddings_field: str | None = None,
                 embeddings_digest: str | None = None):
        self.samples, self.model, self.field, self.digest, self.stale = samples, model, label_field, digest, \
            stale_errors
        self.summary, self.locks, self.embeddings_field = summary, locks, embeddings_field
        self.embeddings_digest = embeddings_digest
        self.labels: dict[str, Any] = {}
        self.embeddings: dict[str, np.ndarray | None] = {}
        self.embedding_runs: dict[str, str | None] = {}
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
            self.embedding_runs[sample_id] = None if embedding is None else self.embeddings_digest
        self.runs[sample_id] = self.digest
        if sample_id in self.stale:
            self.errors[sample_id] = None

    def fail(self, sample_id: str, filepath: str, error: str) -> None:
        self.labels[sample_id] = None  # no stale label from an overwritten run survives a failure
        self.runs[sample_id] = None
        if self.embeddings_field:
            self.embeddings[sample_id] = self.embedding_runs[sample_id] = None
        self.errors[sample_id] = error
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
        if self.db_lost or (not force and len(self.labels) < FLUSH_EVERY):
            return
        for lock in self.locks:
            lock.check()
        done = sum(digest is not None for digest in self.runs.values())
        emb_runs = self.embeddings_field and self.embeddings_field + "_run"
        for name, values in ((self.field, self.labels), (self.embeddings_field, self.embeddings),
                             (emb_runs, self.embedding_runs), (self.field + "_run", self.runs),
                             (self.field + "_error", self.errors)):
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

"""The local engine: the decode-ahead inference pipeline on this machine, batches handed over in order; several
models' jobs in one pass, each file decoded once."""
from __future__ import annotations

import os
from collections.abc import Sequence

from ..pipeline import run_models, run_pipeline
from .base import EngineOptions, EngineSpec, Job, Sink


def _decoders(job: Job) -> int:
    return job.workers or os.cpu_count() or 2


class LocalEngine:
    def run(self, job: Job, sink: Sink) -> None:
        run_pipeline(job.classifier, job.items, job.batch_size, _decoders(job), job.draft, sink)

    def run_many(self, jobs: Sequence[Job], sink: Sink) -> None:
        first = jobs[0]
        run_models([job.classifier for job in jobs], [job.items for job in jobs], first.batch_size,
                   _decoders(first), first.draft, sink)


def _create(options: EngineOptions) -> LocalEngine:
    return LocalEngine()


LOCAL = EngineSpec("local", _create, description="decode and infer on this machine (the default)")

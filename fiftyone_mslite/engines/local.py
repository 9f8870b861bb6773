"""The local engine: the decode-ahead inference pipeline on this machine, batches handed over in order."""
from __future__ import annotations

import os

from ..pipeline import run_pipeline
from .base import EngineOptions, EngineSpec, Job, Sink


class LocalEngine:
    def run(self, job: Job, sink: Sink) -> None:
        run_pipeline(job.classifier, job.items, job.batch_size, job.workers or os.cpu_count() or 2, job.draft, sink)


def _create(options: EngineOptions) -> LocalEngine:
    return LocalEngine()


LOCAL = EngineSpec("local", _create, description="decode and infer on this machine (the default)")

"""engines.run_jobs: one job as before, several in one pass when the engine can, else one after the other, every
batch tagged with its job's index (no worker, no database: the jobs' classifiers are never touched here)."""
from __future__ import annotations

from collections.abc import Sequence

import pytest

from fiftyone_mslite.engines import Job, Sink, run_jobs
from fiftyone_mslite.pipeline import Batch


def _job(items: list[tuple[str, str]], batch_size: int = 2) -> Job:
    return Job(None, {}, items, batch_size, True, [0])  # type: ignore[arg-type] - engines below never read it


class OneAtATime:
    """An engine with `run` only (as a plugin's may be): batches of its job, model left at 0."""

    def __init__(self) -> None:
        self.runs: list[int] = []

    def run(self, job: Job, sink: Sink) -> None:
        self.runs.append(len(job.items))
        for lo in range(0, len(job.items), job.batch_size):
            chunk = job.items[lo:lo + job.batch_size]
            sink(Batch(chunk, ready=list(chunk)))


class InOnePass(OneAtATime):
    def run_many(self, jobs: Sequence[Job], sink: Sink) -> None:
        self.runs.append(-len(jobs))
        for k, job in enumerate(jobs):
            sink(Batch(job.items, ready=list(job.items), model=k))


def test_an_engine_without_run_many_runs_the_jobs_in_turn_each_batch_tagged():
    engine, got = OneAtATime(), []
    jobs = [_job([("a", "1"), ("b", "2"), ("c", "3")]), _job([]), _job([("c", "3")])]
    run_jobs(engine, jobs, lambda batch: got.append((batch.model, [i for i, _ in batch.items])))
    assert engine.runs == [3, 1]  # the job without items is not run
    assert got == [(0, ["a", "b"]), (0, ["c"]), (2, ["c"])]


def test_run_many_is_used_for_several_jobs_and_run_for_one():
    engine, got = InOnePass(), []
    run_jobs(engine, [_job([("a", "1")]), _job([("b", "2")])], lambda batch: got.append(batch.model))
    run_jobs(engine, [_job([("a", "1")])], lambda batch: got.append(batch.model))
    assert engine.runs == [-2, 1] and got == [0, 1, 0]


def test_jobs_of_one_pass_share_their_batching():
    with pytest.raises(ValueError, match="share batch_size, draft and workers"):
        run_jobs(OneAtATime(), [_job([("a", "1")], 2), _job([("a", "1")], 4)], lambda batch: None)

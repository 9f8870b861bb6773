"""The engine contract: what `annotate` hands an engine, and what the engine hands back (docs/annotate.md#engines).

An engine gets a `Job` (the classifier, the `(id, filepath)` items still to label, batch size, decoding choices)
and a `Sink`, and hands the sink every item exactly once, as `pipeline.Batch`es of raw outputs (or failures), in
any order, on the thread that called `run`. Everything that touches the dataset - the resume plan, the run record,
the field lock, turning outputs into labels, the bulk writes and progress - stays behind the sink, in the FiftyOne
layer. So an engine never imports FiftyOne (the import-linter contract says so for this whole package): a Ray actor
starts without FiftyOne's seconds-long import, and a plugin's engine only has to move batches.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from ..classifier import Classifier
from ..pipeline import Batch, Item


@dataclass(frozen=True)
class Job:
    """One `annotate` run's inference work. `classifier_args` are the `load_classifier` arguments that open the
    very same classifier elsewhere (another process or node); `outputs` are the indices of the raw outputs the sink
    reads (an engine that ships outputs may leave the others None); `workers`: decoder threads on this machine
    (None: one per CPU)."""

    classifier: Classifier
    classifier_args: dict[str, Any]
    items: list[Item]
    batch_size: int
    draft: bool
    outputs: list[int]
    workers: int | None = None


Sink = Callable[[Batch], None]  # records a finished batch: labels, failures, writes and progress


class Engine(Protocol):
    """Runs a job's inference, handing each finished batch to the sink; stops (and lets the error through) on
    Ctrl-C or an error, after handing what finished. Whatever it started, it stops before returning."""

    def run(self, job: Job, sink: Sink) -> None: ...


class MultiModelEngine(Engine, Protocol):
    """An engine that also runs several models' jobs in one pass (`annotate` with several models): `run_many`
    hands the sink each job's items once, as `Batch`es whose `model` is the job's index, each file read once
    for all of them. An engine without it runs the jobs one after the other (`run_jobs`)."""

    def run_many(self, jobs: Sequence[Job], sink: Sink) -> None: ...


class EngineOptions(BaseModel):
    """An engine's options (the base: none). Subclasses declare theirs as typed fields; values from the CLI
    arrive as strings and are converted by pydantic; unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class EngineSpec:
    """An entry of the engine registry: `create(options)` makes the engine, and raises (before any work) when
    something it needs is missing, e.g. `EngineUnavailableError` with what to install."""

    name: str
    create: Callable[[Any], Engine]
    options: type[EngineOptions] = EngineOptions
    description: str = ""


def run_jobs(engine: Engine, jobs: Sequence[Job], sink: Sink) -> None:
    """Run one job, or several in one pass if the engine can (`MultiModelEngine`), else one after the other
    (those with items), each batch tagged with its job's index either way. The jobs of one pass share batch
    size, draft and workers."""
    if len({(job.batch_size, job.draft, job.workers) for job in jobs}) > 1:
        raise ValueError("the jobs of one pass must share batch_size, draft and workers")
    if len(jobs) == 1:
        engine.run(jobs[0], sink)
    elif hasattr(engine, "run_many"):
        engine.run_many(jobs, sink)
    else:
        for k, job in enumerate(jobs):
            if job.items:
                engine.run(job, lambda batch, k=k: sink(replace(batch, model=k)))

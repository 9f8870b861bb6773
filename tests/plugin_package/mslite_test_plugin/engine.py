"""The test plugin's annotate engine, "recording": the local engine's batches, handed to the sink in the order
its `reverse` option says, each recorded in `HANDED` (sample ids per batch). Proves that a plugin adds an engine
with one module and one hook, with options of its own, and that the sink takes batches in any order."""
from __future__ import annotations

from collections.abc import Callable

from fiftyone_mslite.engines import EngineOptions, EngineSpec, Job, Sink, create_engine
from fiftyone_mslite.pipeline import Batch
from fiftyone_mslite.plugins import hookimpl

NAME = "recording"
HANDED: list[list[str]] = []  # sample ids of each batch handed to a sink, across runs


class RecordingOptions(EngineOptions):
    reverse: bool = False  # hand the batches over last first


class RecordingEngine:
    def __init__(self, options: RecordingOptions):
        self.options = options

    def run(self, job: Job, sink: Sink) -> None:
        batches: list[Batch] = []
        create_engine("local").run(job, batches.append)
        for batch in reversed(batches) if self.options.reverse else batches:
            HANDED.append([sid for sid, _ in batch.items])
            sink(batch)


@hookimpl
def register_engines(register: Callable[[EngineSpec], None]) -> None:
    register(EngineSpec(NAME, RecordingEngine, RecordingOptions, "the local engine, recording what it hands over"))

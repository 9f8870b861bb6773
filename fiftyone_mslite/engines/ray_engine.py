"""`annotate(..., engine="ray")`: the same run on a Ray cluster (docs/scale-out.md).

Everything that touches the dataset stays on the driver, where `annotate` was called, behind the engine's sink:
the resume plan, the run record, the field lock, turning outputs into labels and the id-keyed bulk writes (the
local engine's path). Ray Data streams `(id, filepath)` blocks through a pool of
actors (`map_batches` + `ActorPoolStrategy`, Ray's batch-inference recipe); each actor (`ray_actor.Annotator`,
which never imports FiftyOne) opens one MindSpore Lite session with the driver's settings and keeps it, runs
the local engine's decode-ahead pipeline on each block, and returns compact records: id, the raw outputs the
driver's post-processing reads (numeric arrays), or the failure message. Ray retries the tasks of an actor that
dies, a task's output is taken once, and writes are keyed by sample id: no sample is lost or labeled twice.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np
from pydantic import PositiveInt

from ..errors import EngineUnavailableError, MSLiteError
from ..pipeline import Batch
from ..runtime import settings
from .base import EngineOptions, EngineSpec, Job, Sink
from .ray_actor import OUTPUT, Annotator

INSTALL = "pip install 'fiftyone-mslite[ray]'"
MAX_BATCHES_PER_BLOCK = 8  # a Ray task's (and a retry's) unit; fewer when there are few batches per actor
# The driver's settings that decide which model an actor loads, how it is fetched and how long its calls may
# take; node-local paths (cache, runtime Python) stay each node's own. A job-level runtime_env that sets one wins.
FORWARDED = ("FIFTYONE_MSLITE_USER_CATALOG", "FIFTYONE_MSLITE_BACKEND", "FIFTYONE_MSLITE_MIRROR",
             "FIFTYONE_MSLITE_OFFLINE", "FIFTYONE_MSLITE_MAX_MODEL_SIZE", "FIFTYONE_MSLITE_MAX_LABELS_SIZE",
             "FIFTYONE_MSLITE_VERBOSE", "FIFTYONE_MSLITE_CALL_TIMEOUT", "FIFTYONE_MSLITE_MAX_INPUT_SIZE",
             "FIFTYONE_MSLITE_DOWNLOAD_DEADLINE", "FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE")


def _ray() -> ModuleType:
    """Ray, imported only when asked for: it is an optional extra."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's other half
    except ImportError as exc:
        raise EngineUnavailableError(f"engine='ray' needs Ray Data, which is not installed ({exc}): {INSTALL}") \
            from None
    return ray


class RayOptions(EngineOptions):
    """address: the Ray to join ("auto", "HOST:PORT"; default: the one this process is connected to, else a new
    local one); actors: how many (default: the cluster's CPUs / the model's threads)."""

    address: str | None = None
    actors: PositiveInt | None = None


class RayEngine:
    """The Ray run loop; made only once Ray is known to be installed."""

    def __init__(self, options: RayOptions):
        self.options = options

    def run(self, job: Job, sink: Sink) -> None:
        _run(job, sink, self.options.address, self.options.actors)


def _create(options: RayOptions) -> RayEngine:
    _ray()  # before any work: a missing Ray changes nothing
    return RayEngine(options)


RAY = EngineSpec("ray", _create, RayOptions,
                 f"decode and infer in Ray actors across a cluster ({INSTALL}; docs/scale-out.md)")


def _forwarded(ray) -> dict[str, str]:
    """The driver's FORWARDED settings an actor sets before it loads the model, less those the job's own
    runtime_env sets. Handed as constructor arguments, not as a per-actor runtime_env, for which Ray would
    need worker processes set up for that environment rather than any idle worker of the job."""
    job = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    return {name: settings.get(name) for name in FORWARDED if settings.get(name) and name not in job}


@contextmanager
def _quiet_ray_data(ray) -> Iterator[None]:
    """Ray Data's progress bars and INFO logs off for the run, so that the driver's terminal shows our
    progress bar (fed by our writes) and real warnings only; restored afterwards."""
    context = ray.data.DataContext.get_current()  # copied into each dataset: set before the dataset is made
    levels = {logging.getLogger("ray.data"): logging.WARNING,
              logging.getLogger("ray.data._internal.progress"): logging.ERROR}  # "progress bars disabled"
    shown, saved = context.enable_progress_bars, {logger: logger.level for logger in levels}
    context.enable_progress_bars = False
    for logger, level in levels.items():
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        context.enable_progress_bars = shown
        for logger, level in saved.items():
            logger.setLevel(level)


def _actor_start_error(exc: Exception) -> Exception | None:
    """Our error an actor raised while starting (a node without the runtime, a model that differs from the
    driver's), rebuilt from the text Ray passes on, without Ray's traceback; None for any other failure."""
    if not getattr(exc, "actor_init_failed", False):
        return None
    for line in reversed(str(getattr(exc, "error_msg", "")).splitlines()):
        found = re.match(r"(fiftyone_mslite(?:\.\w+)*)\.(\w+): (.+)", line.strip())
        if found:
            cls = getattr(importlib.import_module(found[1]), found[2], None)
            if isinstance(cls, type) and issubclass(cls, MSLiteError):
                try:
                    return cls(f"a Ray actor could not start: {found[3]}")
                except TypeError:  # an error type built from more than a message
                    return None
    return None


def _hand_over(job: Job, sink: Sink, records: dict[str, np.ndarray]) -> None:
    """A block of actor records (or several, or part of one: whatever Ray Data hands over) to the sink, as one
    batch, as the local engine hands its batches."""
    ids, paths, errors = records["id"].tolist(), records["filepath"].tolist(), records["error"].tolist()
    ok = np.array([not e for e in errors], bool)
    outputs: list[np.ndarray | None] = [None] * len(job.classifier.session.outputs)
    for k in range(len(outputs)):
        if OUTPUT.format(k) in records:
            outputs[k] = records[OUTPUT.format(k)][ok]
    rows = list(zip(ids, paths, errors))
    sink(Batch(items=[(i, p) for i, p, _ in rows], failed=[row for row in rows if row[2]],
               ready=[(i, p) for i, p, e in rows if not e], outputs=outputs, crashes=int(records["crashes"].sum())))


def _run(job: Job, sink: Sink, address: str | None, actors: int | None) -> None:
    """Stream the job's items through the actor pool and hand results over as blocks complete; whatever stops
    the loop (Ctrl-C, an error), what was handed over stays so and the actors are stopped."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:  # else the caller's own Ray session (and its runtime_env); actors log to files, one per actor
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False,
                 logging_level=logging.WARNING)
    try:
        threads, todo, batch_size = job.classifier_args["threads"], job.items, job.batch_size
        cpus = int(ray.cluster_resources().get("CPU", 0))
        size = actors or max(1, cpus // threads)
        if size * threads > cpus:
            raise ValueError(f"{size} actors x {threads} threads need {size * threads} CPUs; the Ray cluster has "
                             f"{cpus}: pass fewer actors or threads")
        batches = -(-len(todo) // batch_size)
        size = min(size, batches)  # an actor without a block would only cost its start
        per_block = batch_size * max(1, min(MAX_BATCHES_PER_BLOCK, batches // (4 * size)))
        import pyarrow as pa  # Ray Data's own dependency

        # one Arrow table per block: blocks of whole batches, so actors batch exactly as the local engine does
        blocks = [pa.table({"id": [i for i, _ in todo[lo:lo + per_block]],
                            "filepath": [p for _, p in todo[lo:lo + per_block]]})
                  for lo in range(0, len(todo), per_block)]
        with _quiet_ray_data(ray):
            results = ray.data.from_arrow(blocks).map_batches(
                Annotator, batch_size=None, batch_format="numpy", num_cpus=threads,
                compute=ray.data.ActorPoolStrategy(size=size),
                fn_constructor_kwargs={"env": _forwarded(ray), "classifier_args": job.classifier_args,
                                       "expected": job.classifier.identity(), "batch_size": batch_size,
                                       "draft": job.draft, "outputs": job.outputs})
            stream = iter(results.iter_batches(batch_size=None, batch_format="numpy"))  # a generator
            try:
                for records in stream:
                    _hand_over(job, sink, records)
            except ray.exceptions.RayActorError as exc:
                ours = _actor_start_error(exc)
                if ours is None:
                    raise
                raise ours from None
            finally:
                stream.close()  # shuts the streaming executor down, with its actors
    finally:
        if started:
            ray.shutdown()

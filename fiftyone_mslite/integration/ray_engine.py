"""`annotate(..., engine="ray")`: the same run on a Ray cluster (docs/scale-out.md).

Everything that touches the dataset stays on the driver, where `annotate` was called: the resume plan, the run
record, the field lock and the id-keyed bulk writes (`annotation._Writer`, fed through `annotation._record`, the
same path as the local engine). Ray Data streams `(id, filepath)` blocks through a pool of actors
(`map_batches` + `ActorPoolStrategy`, Ray's batch-inference recipe); each actor opens one MindSpore Lite
session with the driver's settings and keeps it, decodes and pre-processes next to it, and returns compact
records: id, the adapter's prediction (label, confidence, logits as an array), the embedding if asked, or the
failure message. Ray retries the tasks of an actor that dies, a task's output is taken once, and writes are
keyed by sample id: no sample is lost or labeled twice.
"""
from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import fiftyone as fo
import fiftyone.core.odm.database as food
import fiftyone.core.utils as fou
import numpy as np

from ..errors import EngineUnavailableError, Failed, ModelMismatchError
from ..runtime import settings
from .annotation import Engine, _predictions, _preparer, _record, _Writer
from .model import MSLiteModel, MSLiteModelConfig

INSTALL = "pip install 'fiftyone-mslite[ray]'"
MAX_BATCHES_PER_BLOCK = 8  # a Ray task's (and a retry's) unit; fewer when there are few batches per actor
# The driver's settings that decide which model an actor loads and how it is fetched; node-local paths (cache,
# runtime Python) stay each node's own. A job-level runtime_env that sets one of these wins.
FORWARDED = ("FIFTYONE_MSLITE_USER_CATALOG", "FIFTYONE_MSLITE_BACKEND", "FIFTYONE_MSLITE_MIRROR",
             "FIFTYONE_MSLITE_OFFLINE", "FIFTYONE_MSLITE_MAX_MODEL_SIZE", "FIFTYONE_MSLITE_MAX_LABELS_SIZE",
             "FIFTYONE_MSLITE_VERBOSE")


def _ray() -> ModuleType:
    """Ray, imported only when asked for: it is an optional extra."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra's other half
    except ImportError as exc:
        raise EngineUnavailableError(f"engine='ray' needs Ray Data, which is not installed ({exc}): {INSTALL}") \
            from None
    return ray


def ray_engine(address: str | None, actors: int | None) -> Engine:
    """The Ray run loop for `annotate`; checks here, before any work, that Ray is installed."""
    _ray()
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be a positive number, got {actors}")

    def run(model: MSLiteModel, todo: list[tuple[str, str]], writer: _Writer, batch_size: int, draft: bool,
            progress: bool) -> None:
        if todo:
            _run(model, todo, writer, batch_size, draft, progress, address, actors)

    return run


def database_uri() -> str:
    """The MongoDB this driver writes to, as a URI (FiftyOne's own service has none configured: then its host
    and port, which only this machine reaches)."""
    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = food.get_db_client().address
    return f"mongodb://{host}:{port}"


def _runtime_env(ray) -> dict[str, Any]:
    """Environment of the actors: the forwarded settings and FIFTYONE_DATABASE_URI. Actors never write, but
    with the URI a FiftyOne import there can never start a MongoDB of its own on a worker node."""
    job = (ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
    env = {name: settings.get(name) for name in FORWARDED if settings.get(name)}
    env["FIFTYONE_DATABASE_URI"] = database_uri()
    return {"env_vars": {k: v for k, v in env.items() if k not in job}}


class _Annotator:
    """A Ray actor: one MindSpore Lite session, opened once with the driver's settings and kept for every batch;
    `threads` decoder threads beside it. Refuses to start on a node whose model differs from the driver's."""

    def __init__(self, config: dict[str, Any], expected: dict[str, Any], draft: bool, embed: bool):
        self.model = MSLiteModel(MSLiteModelConfig(config))
        self.model.store_logits = expected["store_logits"]
        found = self.model.settings()
        if found != expected:
            differ = sorted(k for k in expected if found.get(k) != expected[k])
            self.model.close()
            raise ModelMismatchError(f"node {socket.gethostname()} loads '{config['model']}' with other "
                                     f"{', '.join(differ)} than the driver: give every node the same catalog and "
                                     f"model files (docs/scale-out.md)")
        self.prepare, self.embed = _preparer(self.model, draft), embed
        self.pool = ThreadPoolExecutor(self.model.config.threads, thread_name_prefix="mslite-decode")
        print(f"fiftyone-mslite actor pid {os.getpid()} on {socket.gethostname()}: {self.model.name}, "
              f"{self.model.config.threads} threads, backend {self.model.classifier.session.backend}", flush=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["id"])
        inputs = list(self.pool.map(self.prepare, batch["filepath"].tolist()))
        errors = [x.reason if isinstance(x, Failed) else "" for x in inputs]
        predictions, embeddings = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        crashes = np.zeros(n, np.int64)
        ready = [k for k, x in enumerate(inputs) if not isinstance(x, Failed)]
        if ready:
            clf = self.model.classifier
            tensors = np.stack([inputs[k] for k in ready])
            result, crashes[0] = _predictions(clf, tensors, clf.submit(tensors), self.embed)
            for j, k in enumerate(ready):
                if isinstance(result, Failed):
                    errors[k] = result.reason
                else:
                    predictions[k] = result[0][j]
                    embeddings[k] = None if result[1] is None else result[1][j]
        return {"id": batch["id"], "filepath": batch["filepath"], "error": np.array(errors, dtype=object),
                "prediction": predictions, "embedding": embeddings, "crashes": crashes}


def _write(model: MSLiteModel, writer: _Writer, records: dict[str, np.ndarray]) -> None:
    """One block of actor records into the writer: failures as failures, the rest through `_record`."""
    rows = list(zip(records["id"].tolist(), records["filepath"].tolist(), records["error"].tolist(),
                    records["prediction"], records["embedding"]))
    for sid, path, error, _, _ in rows:
        if error:
            writer.fail(sid, path, error)
    ok = [row for row in rows if not row[2]]
    if ok:
        embeddings = None if writer.embeddings_field is None else [row[4] for row in ok]
        _record(model, writer, [row[:2] for row in ok], ([row[3] for row in ok], embeddings))
    writer.summary.crashed_batches += int(records["crashes"].sum())


def _run(model: MSLiteModel, todo: list[tuple[str, str]], writer: _Writer, batch_size: int, draft: bool,
         progress: bool, address: str | None, actors: int | None) -> None:
    """Stream `todo` through the actor pool and write results as blocks complete; whatever stops the loop
    (Ctrl-C, an error), what was written stays written and the actors are stopped."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:  # else the caller's own Ray session (and its runtime_env); actors log to files, one per actor
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False)
    try:
        threads = model.config.threads
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
        context = ray.data.DataContext.get_current()  # copied into the dataset: set before it is made
        shown, context.enable_progress_bars = context.enable_progress_bars, False  # ours, fed by our writes
        try:
            results = ray.data.from_arrow(blocks).map_batches(
                _Annotator, batch_size=batch_size, batch_format="numpy", num_cpus=threads,
                compute=ray.data.ActorPoolStrategy(size=size), runtime_env=_runtime_env(ray),
                fn_constructor_kwargs={"config": model.config.serialize(), "expected": model.settings(),
                                       "draft": draft, "embed": writer.embeddings_field is not None})
            stream = iter(results.iter_batches(batch_size=None, batch_format="numpy"))  # a generator
            try:
                with fou.ProgressBar(total=len(todo), progress=progress) as pb:
                    for records in stream:
                        _write(model, writer, records)
                        writer.flush(force=False)
                        pb.update(len(records["id"]))
            finally:
                stream.close()  # shuts the streaming executor down, with its actors
                writer.flush()
        finally:
            context.enable_progress_bars = shown
    finally:
        if started:
            ray.shutdown()

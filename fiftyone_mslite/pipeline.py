"""Files → raw model outputs, batch by batch: the one inference loop behind `annotate`.

Decoding and pre-processing run in a thread pool ahead of inference (a bounded number of batches in flight),
straight into reused batch buffers, while every inference stream of the classifier stays fed. One bad file
fails alone; a crashed MindSpore Lite worker is retried once. The local engine runs this loop on the caller's
machine; each Ray actor runs it on its blocks. It knows nothing of FiftyOne, so an actor starts without
importing it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from .adapters.images import open_rgb
from .classifier import Classifier
from .errors import Failed
from .runtime import MSLiteError, WorkerCrashedError

PREFETCH_BATCHES = 2  # batches decoded ahead of those queued for inference

Item = tuple[str, str]  # (sample id, file path)


@dataclass
class Batch:
    """A batch of items as `on_batch` gets it: `failed` = (id, path, why) of the items that did not decode or
    infer, `ready` = the others, in order, matching the rows of `outputs` (the session's raw outputs),
    `crashes` = worker crashes it took."""

    items: Sequence[Item]
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    ready: list[Item] = field(default_factory=list)
    outputs: list[np.ndarray | None] | None = None
    crashes: int = 0


@dataclass
class _InFlight:
    """A batch on its way: the batch buffer its items are decoded into (reused once inferred), the tensors it
    submitted, its inference; `settled` once the inference's result is in the batch, `handed` once `on_batch`
    returned."""

    batch: Batch
    buffer: np.ndarray | None
    tensors: np.ndarray | None = None
    inference: Future | None = None
    settled: bool = False
    handed: bool = False


def _file_preparer(clf: Classifier, draft: bool) -> Callable[..., np.ndarray | Failed]:
    """Thread-pool task: file → model input tensor (written into `out`, a row of a batch buffer, if given),
    or why not."""
    fit = clf.fit

    def prepare(path: str, out: np.ndarray | None = None) -> np.ndarray | Failed:
        try:
            return clf.prepare(open_rgb(path, fit, draft=draft), out=out)
        except ValueError as exc:  # ImageDecodeError and pre-processing refusals name the file
            return Failed(str(exc) if path in str(exc) else f"{path}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the job
            return Failed(f"{path}: {type(exc).__name__}: {exc}")

    return prepare


def _outputs_of(clf: Classifier, tensors: np.ndarray, submitted: Future) -> tuple[list[np.ndarray] | Failed, int]:
    """Raw outputs of a submitted batch, or why not, and the worker crashes it took. A crashed worker restarts
    on the next call, so a crash is retried once; a second crash on the same batch fails its items (a resumed
    run retries them)."""
    for attempt in (1, 2):
        try:
            return (submitted if attempt == 1 else clf.submit(tensors)).result(), attempt - 1
        except WorkerCrashedError as exc:
            if attempt == 2:
                return Failed(f"the MindSpore Lite worker crashed twice on this sample's batch: {exc}"), 2
        except MSLiteError as exc:
            return Failed(f"inference failed: {exc}"), attempt - 1
    raise AssertionError("unreachable")


def run_pipeline(clf: Classifier, items: Sequence[Item], batch_size: int, decoders: int, draft: bool,
                 on_batch: Callable[[Batch], None]) -> None:
    """Hand every batch of `items`, in order, to `on_batch` once inferred (on this thread). Ctrl-C: the batch
    `on_batch` was busy with and every later batch whose inference had finished are handed (again) before
    the interrupt goes on, so a caller that records idempotently keeps all finished work; the rest is dropped."""
    prepare = _file_preparer(clf, draft)
    depth = clf.streams + 1  # one batch queued beyond the streams, so none waits for this thread
    starts = iter(range(0, len(items), batch_size))
    decoding: deque[tuple[_InFlight, list[Future]]] = deque()
    inferring: deque[_InFlight] = deque()
    pool = ThreadPoolExecutor(decoders, thread_name_prefix="mslite-decode")
    spare: list[np.ndarray] = []  # batch buffers whose inference is done: decoded into again, never re-allocated

    def decode_next() -> None:
        lo = next(starts, None)
        if lo is not None:
            f = _InFlight(Batch(items[lo:lo + batch_size]), spare.pop() if spare else clf.batch_buffer(batch_size))
            rows = [None] * len(f.batch.items) if f.buffer is None else list(f.buffer)
            decoding.append((f, [pool.submit(prepare, path, row) for (_, path), row in zip(f.batch.items, rows)]))

    def infer_next() -> None:
        f, futures = decoding.popleft()
        decode_next()
        batch, decoded, ok = f.batch, [], []
        for k, ((sid, path), fut) in enumerate(zip(batch.items, futures)):
            result = fut.result()
            if isinstance(result, Failed):
                batch.failed.append((sid, path, result.reason))
            else:
                batch.ready.append((sid, path))
                decoded.append(result)
                ok.append(k)
        if ok:
            if f.buffer is None:
                f.tensors = np.stack(decoded)
            else:  # decoded in place: no copy unless an item failed (then the others move up)
                f.tensors = f.buffer[:len(ok)] if ok == list(range(len(ok))) else f.buffer[ok]
            f.inference = clf.submit(f.tensors)
        inferring.append(f)

    def hand(f: _InFlight) -> None:
        batch = f.batch
        if f.inference is not None and not f.settled:
            outputs, batch.crashes = _outputs_of(clf, f.tensors, f.inference)
            if isinstance(outputs, Failed):
                batch.failed += [(sid, path, outputs.reason) for sid, path in batch.ready]
                batch.ready = []
            else:
                batch.outputs = outputs
        f.settled = True
        if not f.handed:
            on_batch(batch)
            f.handed = True
            if f.buffer is not None and (f.inference is None or f.inference.done()):
                spare.append(f.buffer)

    try:
        for _ in range(depth + PREFETCH_BATCHES):
            decode_next()
        while decoding or inferring:
            while decoding and len(inferring) < depth:
                infer_next()
            hand(inferring[0])  # popped once handed: Ctrl-C inside `on_batch` finds it still here
            inferring.popleft()
    except KeyboardInterrupt:
        for f in [f for f in inferring if f.settled or f.inference is None or (
                f.inference.done() and not f.inference.cancelled() and f.inference.exception() is None)]:
            hand(f)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        queued = [f.inference for f in inferring if f.inference is not None]
        for fut in queued:
            fut.cancel()
        wait(queued)  # a request still running must not meet a closing session

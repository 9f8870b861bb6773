"""Files → raw model outputs, batch by batch: the one inference loop behind `annotate`, for one model or several.

Decoding and pre-processing run in a thread pool ahead of inference (a bounded number of batches in flight),
straight into reused batch buffers, while every inference stream of every classifier stays fed. With several
models each file is decoded once: models with the same tensor recipe (pre-processing, input shape and type) share
the prepared tensor, the others share the decoded image. One bad file fails alone (in every model that wanted it);
a crashed MindSpore Lite worker is retried once. The local engine runs this loop on the caller's machine; each Ray
actor runs it on its blocks. It knows nothing of FiftyOne, so an actor starts without importing it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
from PIL import Image

from .adapters.images import needed_size, open_rgb
from .adapters.preprocessing import ImageFit
from .classifier import Classifier
from .errors import Failed, MSLiteError, WorkerCrashedError, WorkerTimeoutError

PREFETCH_BATCHES = 2  # batches decoded ahead of those queued for inference
REFERENCE_SIZE = (4000, 3000)  # a camera-sized photo: which of several models' draft sizes needs the most pixels

Item = tuple[str, str]  # (sample id, file path)


@dataclass
class Batch:
    """A batch of items as `on_batch` gets it: `failed` = (id, path, why) of the items that did not decode or
    infer, `ready` = the others, in order, matching the rows of `outputs` (the session's raw outputs),
    `crashes` = worker crashes it took; `model` = which of the models of a several-model run it is for."""

    items: Sequence[Item]
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    ready: list[Item] = field(default_factory=list)
    outputs: list[np.ndarray | None] | None = None
    crashes: int = 0
    model: int = 0


@dataclass
class _Recipe:
    """Models whose prepared tensors are equal, so one is made per file for all of them (by `clf`, any of them),
    in batch buffers reused once every inference reading them is done."""

    clf: Classifier
    models: list[int]
    spare: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Part:
    """One model's share of a batch on its way: the tensors it submitted, its inference; `settled` once the
    inference's result is in the batch, `handed` once `on_batch` returned."""

    batch: Batch
    tensors: np.ndarray | None = None
    inference: Future | None = None
    settled: bool = False
    handed: bool = False

    def finished(self) -> bool:
        """Its inference is over with a result (or it had none): handing it over costs no wait."""
        return self.settled or self.inference is None or (
            self.inference.done() and not self.inference.cancelled() and self.inference.exception() is None)


@dataclass
class _InFlight:
    """A batch of files on its way: the batch buffer of each recipe its files are decoded into (reused once
    inferred), where each file's tensors are (its task's result list, buffer row), and each model's part."""

    items: Sequence[Item]
    buffers: dict[int, np.ndarray | None]  # by recipe
    slots: list[dict[int, tuple[int, int]]] = field(default_factory=list)  # per item: recipe → (result, row)
    parts: list[_Part] = field(default_factory=list)


def _recipe_key(clf: Classifier) -> Hashable:
    """What decides a prepared tensor: two classifiers with equal keys prepare every image identically."""
    spec = clf.session.inputs[0]
    return clf.adapter_class, clf.input_hw, clf.preprocess_config, tuple(spec.shape[1:]), spec.dtype, spec.layout


def _decode_fit(clfs: Sequence[Classifier]) -> ImageFit:
    """The `fit` every file is decoded for: the models' own when they agree on it, else the one whose draft
    decoding needs the most pixels (so that no model is given fewer than it would get alone)."""
    fits = list(dict.fromkeys(clf.fit for clf in clfs))
    return max(fits, key=lambda fit: np.prod(needed_size(REFERENCE_SIZE, *fit)))


def _failure(path: str, exc: Exception) -> Failed:
    if isinstance(exc, ValueError):  # ImageDecodeError and pre-processing refusals name the file
        return Failed(str(exc) if path in str(exc) else f"{path}: {exc}")
    return Failed(f"{path}: {type(exc).__name__}: {exc}")


def _file_preparer(recipes: Sequence[_Recipe], fit: ImageFit, draft: bool
                   ) -> Callable[..., Failed | list[np.ndarray | Failed]]:
    """Thread-pool task: file → decoded once → the model input tensor of each recipe asked for (written into its
    `out`, a row of that recipe's batch buffer, if given), or why not: the decoding's failure, or each recipe's."""

    def prepare(path: str, wanted: Sequence[tuple[int, np.ndarray | None]]) -> Failed | list[np.ndarray | Failed]:
        try:
            image: Image.Image = open_rgb(path, fit, draft=draft)
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the job
            return _failure(path, exc)
        tensors: list[np.ndarray | Failed] = []
        for r, out in wanted:
            try:
                tensors.append(recipes[r].clf.prepare(image, out=out))
            except Exception as exc:  # noqa: BLE001
                tensors.append(_failure(path, exc))
        return tensors

    return prepare


def file_preparer(clf: Classifier, draft: bool) -> Callable[[str], np.ndarray | Failed]:
    """One model's task: file → its input tensor, or why not (what `Model.predict_all` runs per sample)."""
    prepare = _file_preparer([_Recipe(clf, [0])], clf.fit, draft)

    def one(path: str) -> np.ndarray | Failed:
        result = prepare(path, [(0, None)])
        return result if isinstance(result, Failed) else result[0]

    return one


def _outputs_of(clf: Classifier, tensors: np.ndarray, submitted: Future) -> tuple[list[np.ndarray] | Failed, int]:
    """Raw outputs of a submitted batch, or why not, and the worker crashes it took. A crashed worker restarts
    on the next call, so a crash is retried once; a second crash on the same batch fails its items (a resumed
    run retries them)."""
    for attempt in (1, 2):
        try:
            return (submitted if attempt == 1 else clf.submit(tensors)).result(), attempt - 1
        except WorkerCrashedError as exc:  # a hang past its deadline too (WorkerTimeoutError): the worker is gone
            if attempt == 2:
                how = "stopped answering" if isinstance(exc, WorkerTimeoutError) else "crashed"
                return Failed(f"the MindSpore Lite worker {how} twice on this sample's batch: {exc}"), 2
        except MSLiteError as exc:
            return Failed(f"inference failed: {exc}"), attempt - 1
    raise AssertionError("unreachable")


def run_pipeline(clf: Classifier, items: Sequence[Item], batch_size: int, decoders: int, draft: bool,
                 on_batch: Callable[[Batch], None]) -> None:
    """Hand every batch of `items`, in order, to `on_batch` once inferred (on this thread). Ctrl-C: the batch
    `on_batch` was busy with and every later batch whose inference had finished are handed (again) before
    the interrupt goes on, so a caller that records idempotently keeps all finished work; the rest is dropped."""
    run_models([clf], [items], batch_size, decoders, draft, on_batch)


def run_models(clfs: Sequence[Classifier], items: Sequence[Sequence[Item]], batch_size: int, decoders: int,
               draft: bool, on_batch: Callable[[Batch], None]) -> None:
    """`run_pipeline` for several models in one pass: model k labels `items[k]`. Batches are cut from all the
    models' items together (each file once, in the order the lists give them); a file is decoded once and given
    to every model that wants it, and `on_batch` gets, per batch, one `Batch` for each model wanting any of its
    files (`Batch.model` = k), in model order. Ctrl-C as in `run_pipeline`, per model's batch."""
    union = list(dict.fromkeys(chain.from_iterable(items)))
    wants = [None if len(own) == len(union) else set(own) for own in items]  # None: every item
    recipes: dict[Hashable, _Recipe] = {}
    for k, clf in enumerate(clfs):
        recipes.setdefault(_recipe_key(clf), _Recipe(clf, [])).models.append(k)
    recipe_list = list(recipes.values())
    recipe_of = {k: r for r, recipe in enumerate(recipe_list) for k in recipe.models}
    prepare = _file_preparer(recipe_list, _decode_fit(clfs), draft)
    depth = max(clf.streams for clf in clfs) + 1  # one batch queued beyond the streams, so none waits for this thread
    starts = iter(range(0, len(union), batch_size))
    decoding: deque[tuple[_InFlight, list[Future]]] = deque()
    inferring: deque[_InFlight] = deque()
    pool = ThreadPoolExecutor(decoders, thread_name_prefix="mslite-decode")

    def wanted(k: int, item: Item) -> bool:
        return wants[k] is None or item in wants[k]

    def decode_next() -> None:
        lo = next(starts, None)
        if lo is None:
            return
        f = _InFlight(union[lo:lo + batch_size], {})
        targets: list[list[tuple[int, np.ndarray | None]]] = [[] for _ in f.items]
        f.slots = [{} for _ in f.items]
        for r, recipe in enumerate(recipe_list):
            rows = [i for i, item in enumerate(f.items) if any(wanted(k, item) for k in recipe.models)]
            if rows:
                buffer = f.buffers[r] = recipe.spare.pop() if recipe.spare else recipe.clf.batch_buffer(batch_size)
                for j, i in enumerate(rows):
                    f.slots[i][r] = (len(targets[i]), j)
                    targets[i].append((r, None if buffer is None else buffer[j]))
        decoding.append((f, [pool.submit(prepare, path, t) for (_, path), t in zip(f.items, targets)]))

    def infer_next() -> None:
        f, futures = decoding.popleft()
        decode_next()
        results = [fut.result() for fut in futures]
        for k, clf in enumerate(clfs):
            r = recipe_of[k]
            mine = [i for i, item in enumerate(f.items) if wanted(k, item)]
            if not mine:
                continue
            batch, decoded, ok = Batch([f.items[i] for i in mine], model=k), [], []
            for i in mine:
                (sid, path), (position, row) = f.items[i], f.slots[i][r]
                tensor = results[i] if isinstance(results[i], Failed) else results[i][position]
                if isinstance(tensor, Failed):
                    batch.failed.append((sid, path, tensor.reason))
                else:
                    batch.ready.append((sid, path))
                    decoded.append(tensor)
                    ok.append(row)
            part = _Part(batch)
            if ok:
                buffer = f.buffers[r]
                if buffer is None:
                    part.tensors = np.stack(decoded)
                else:  # decoded in place: no copy unless a row is not this model's (then the others move up)
                    part.tensors = buffer[:len(ok)] if ok == list(range(len(ok))) else buffer[ok]
                part.inference = clf.submit(part.tensors)
            f.parts.append(part)
        inferring.append(f)

    def hand(part: _Part) -> None:
        batch = part.batch
        if part.inference is not None and not part.settled:
            outputs, batch.crashes = _outputs_of(clfs[batch.model], part.tensors, part.inference)
            if isinstance(outputs, Failed):
                batch.failed += [(sid, path, outputs.reason) for sid, path in batch.ready]
                batch.ready = []
            else:
                batch.outputs = outputs
        part.settled = True
        if not part.handed:
            on_batch(batch)
            part.handed = True

    def recycle(f: _InFlight) -> None:
        """Its buffers back to their recipes once no inference reads them any more."""
        if all(p.inference is None or p.inference.done() for p in f.parts):
            for r, buffer in f.buffers.items():
                if buffer is not None:
                    recipe_list[r].spare.append(buffer)

    try:
        for _ in range(depth + PREFETCH_BATCHES):
            decode_next()
        while decoding or inferring:
            while decoding and len(inferring) < depth:
                infer_next()
            for part in inferring[0].parts:
                hand(part)
            recycle(inferring.popleft())  # popped once handed: Ctrl-C inside `on_batch` finds it still here
    except KeyboardInterrupt:
        for part in [p for f in inferring for p in f.parts if p.finished()]:
            hand(part)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        queued = [p.inference for f in inferring for p in f.parts if p.inference is not None]
        for fut in queued:
            fut.cancel()
        wait(queued)  # a request still running must not meet a closing session

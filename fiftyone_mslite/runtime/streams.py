"""Data-parallel inference: one model loaded as several independent sessions ("streams").

On few cores MindSpore Lite's intra-op threads spend much of their time synchronising: on 2 cores one
session with 2 threads runs MobileNetV2 batches ~15 % slower than 2 single-threaded sessions fed half a
batch each. Streams pay off for batches (throughput); a single image still runs fastest on one session
with every thread (latency). `run` splits a batch across the streams; `submit` queues whole batches so
that a pipelined caller keeps every stream busy without waiting for the slowest one.
"""
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .base import Session
from .tensors import check_inputs


def split_sizes(n, parts):
    # type: (int, int) -> list
    """Sizes of at most `parts` contiguous, near-equal, non-empty chunks of n items."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    return [base + (1 if k < extra else 0) for k in range(parts)]


class StreamedSession(Session):
    """Sessions of one model behind the session interface, each used by one request at a time.

    Threads here only wait (on a worker's pipe, or in native code that releases the GIL). A single
    session can be wrapped too, to give it `submit`.
    """

    def __init__(self, sessions):
        if not sessions:
            raise ValueError("a StreamedSession needs at least one session")
        self.sessions = list(sessions)
        self._idle = queue.Queue()
        for session in self.sessions:
            self._idle.put(session)
        self._pool = ThreadPoolExecutor(len(self.sessions), thread_name_prefix="mslite-stream")
        first = self.sessions[0]
        self.path, self.format, self.backend = first.path, first.format, first.backend
        self.inputs, self.outputs, self.batch_size = first.inputs, first.outputs, first.batch_size
        self.threads = sum(s.threads for s in self.sessions)
        self.streams = len(self.sessions)
        self.last_runtime_s = 0.0

    @classmethod
    def open(cls, open_one, streams):
        """Open `streams` sessions concurrently with `open_one()`; close them all if one fails."""
        opened = []
        with ThreadPoolExecutor(streams) as pool:
            futures = [pool.submit(open_one) for _ in range(streams)]
            wait(futures)
        try:
            for future in futures:
                opened.append(future.result())
        except BaseException:
            for future in futures:
                if future.exception() is None:
                    future.result().close()
            raise
        return cls(opened)

    def _run_on_idle(self, arrays):
        session = self._idle.get()
        try:
            outputs = session.run(*arrays)
            self.last_runtime_s = session.last_runtime_s
            return outputs
        finally:
            self._idle.put(session)

    def submit(self, *arrays):
        """Queue one whole batch for the next idle stream; returns a Future of its outputs."""
        arrays, _ = check_inputs(self.inputs, arrays, self.path)
        return self._pool.submit(self._run_on_idle, arrays)

    def run(self, *arrays):
        """Run one batch per input (leading dim = batch), split across the streams; one array per output."""
        arrays, n = check_inputs(self.inputs, arrays, self.path)
        bounds = np.cumsum([0] + split_sizes(n, self.streams))
        if len(bounds) == 2:
            return self._run_on_idle(arrays)
        futures = [self._pool.submit(self._run_on_idle, [a[lo:hi] for a in arrays])
                   for lo, hi in zip(bounds[:-1], bounds[1:])]
        wait(futures)  # no stream is left running when a failure is raised
        parts = [f.result() for f in futures]
        return [np.concatenate(chunks) for chunks in zip(*parts)]

    def release(self):
        self._pool.shutdown(wait=True)
        for session in self.sessions:
            session.close()


class AdaptiveSession(Session):
    """`streams="auto"` with 2+ threads: one session with every thread, the fastest for single images and the
    cheapest start, until batches have kept it busy for `SWITCH_AFTER_S` seconds; then it re-opens the model as
    `threads` single-threaded streams (or `streams`, if fewer), the fastest for batches. Why wait: opening the
    streams costs a model load per stream (~0.8 s for MobileNetV2 on 2 cores) and gains ~15 % per batch, so a
    small job (20 images) is done before it would pay back. It switches once, so at most that many workers stay
    loaded."""

    SWITCH_AFTER_S = 2.0  # seconds of batch inference on the single session before the streams open

    def __init__(self, open_session, threads, streams=None):
        streams = streams or threads
        if streams < 2:
            raise ValueError("an AdaptiveSession chooses between 1 and {} streams: it needs 2+".format(streams))
        self._open, self.streams = open_session, streams  # streams: batches that run at once, once batched
        self._lock = threading.Lock()
        self._batched_s = 0.0  # batch inference time so far on the single session
        self.session = open_session(threads, 1)

    def _for_batch(self, n):
        if n > 1 and self._batched_s >= self.SWITCH_AFTER_S and not isinstance(self.session, StreamedSession):
            with self._lock:
                if not isinstance(self.session, StreamedSession):
                    old, self.session = self.session, self._open(1, self.streams)
                    old.close()
        return self.session

    def _count(self, session, started):
        if not isinstance(session, StreamedSession):
            self._batched_s += time.perf_counter() - started

    def run(self, *arrays):
        """Run one batch per input (leading dim = batch); returns one array per output."""
        n = len(arrays[0]) if arrays and np.ndim(arrays[0]) else 1
        session, started = self._for_batch(n), time.perf_counter()
        outputs = session.run(*arrays)
        if n > 1:
            self._count(session, started)
        return outputs

    def submit(self, *arrays):
        """Queue one whole batch (see `StreamedSession.submit`); pipelined callers are throughput jobs."""
        session, started = self._for_batch(2), time.perf_counter()
        future = session.submit(*arrays)
        future.add_done_callback(lambda _: self._count(session, started))
        return future

    def release(self):
        self.session.close()

    def __getattr__(self, name):  # inputs, outputs, path, format, backend, batch_size, last_runtime_s, ...
        if name == "session":
            raise AttributeError(name)
        return getattr(self.session, name)

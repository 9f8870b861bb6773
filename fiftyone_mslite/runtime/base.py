"""The runtime interfaces: a `Backend` opens models (one file per backend, registered in `backends.py`), a
`Session` is an opened model that every backend and combinator implements (like OpenVINO model_api's
InferenceAdapter), so callers use `streams`, `submit` and `with` without probing for them."""
import threading
from concurrent.futures import ThreadPoolExecutor

from .formats import MINDIR, MS


class Session(object):
    """A loaded model: `inputs`/`outputs` (TensorSpec lists), `run(*batches)`, `submit(*batches)`, `close()`.

    Subclasses implement `run` and `release`. `streams` says how many batches run at once, so a pipelined
    caller keeps `streams + 1` queued; the default `submit` runs batches one after another on a background
    thread, which is what a single session can do.

    Instances also carry `path`, `format` (ms|mindir), `backend`, `threads`, `batch_size` and `last_runtime_s`
    (seconds MindSpore Lite spent on the last batch).
    """

    streams = 1

    _submit_pool = None
    _submit_lock = threading.Lock()

    def run(self, *arrays):
        """Run one batch per input (leading dim = batch); returns one array per output."""
        raise NotImplementedError

    def submit(self, *arrays):
        """Queue one whole batch; returns a Future of its outputs (as `run` returns them)."""
        with self._submit_lock:
            if self._submit_pool is None:
                self._submit_pool = ThreadPoolExecutor(1, thread_name_prefix="mslite-session")
        return self._submit_pool.submit(self.run, *arrays)

    def release(self):
        """Free what the backend holds (worker process, native model)."""
        raise NotImplementedError

    def close(self):
        """Wait for queued batches, then release the model. Idempotent."""
        pool, self._submit_pool = self._submit_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Backend(object):
    """One way to run models; subclass it (or duck-type it) and `register` an instance.

    `priority`: where "auto" tries it (higher first); None (the default) means only when asked for by name, so that
    installing a plugin never changes which backend runs an existing setup. `converts`: it also runs MindSpore
    Lite's converter (`convert(**args)`, see `runtime.convert`)."""

    name = None  # type: str
    formats = (MS, MINDIR)
    devices = ("cpu",)
    priority = None
    converts = False

    def available(self):
        # type: () -> bool
        """Can it open a model here, right now (without starting anything expensive)?"""
        raise NotImplementedError

    def open(self, path, threads, batch_size=None, device="cpu", **options):
        """A loaded `Session` of the model file `path` (a format of `formats`, already checked)."""
        raise NotImplementedError

    def convert(self, **args):
        """Run MindSpore Lite's converter; returns the path written (see `runtime.convert`)."""
        raise NotImplementedError("backend {!r} does not convert models".format(self.name))

    def runs(self, fmt, device):
        # type: (str, str) -> bool
        return (fmt is None or fmt in self.formats) and device in self.devices

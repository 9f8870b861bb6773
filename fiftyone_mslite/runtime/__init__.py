"""The MindSpore Lite bridge: open a model, run batches, convert sources. Nothing else.

Two backends share one interface: in-process (mindspore_lite imports here) and a worker on the runtime
Python (the usual case: PyPI's only wheel is for CPython 3.7). This package must stay Python-3.7
compatible and import only numpy and the standard library (mindspore_lite lazily).
"""

import os
import warnings

from . import settings
from .base import Session
from .environment import cache_home, info, install, runtime_python
from .errors import (
    ConversionError,
    InputMismatchError,
    ModelFileError,
    MSLiteError,
    RuntimeUnavailableError,
    WorkerCrashedError,
)
from .specs import MINDIR, MS, TensorSpec, detect_model_format
from .streams import AdaptiveSession, StreamedSession

BACKEND_ENV = "FIFTYONE_MSLITE_BACKEND"
BACKENDS = ("auto", "inprocess", "worker")

__all__ = [
    "open_model", "convert", "choose_backend", "usable_cores", "Session", "StreamedSession", "AdaptiveSession",
    "TensorSpec", "detect_model_format", "cache_home", "info", "install", "runtime_python", "MS", "MINDIR",
    "MSLiteError", "ModelFileError", "InputMismatchError", "RuntimeUnavailableError", "WorkerCrashedError",
    "ConversionError",
]


def choose_backend(backend=None):
    # type: (str) -> str
    """'inprocess' when mindspore_lite imports here, else 'worker'; FIFTYONE_MSLITE_BACKEND overrides."""
    from .inprocess import mslite_available

    backend = backend or settings.get(BACKEND_ENV) or "auto"
    if backend not in BACKENDS:
        raise ValueError("backend must be one of {}, got {!r}".format(", ".join(BACKENDS), backend))
    if backend == "auto":
        return "inprocess" if mslite_available() else "worker"
    return backend


def usable_cores():
    # type: () -> int
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def open_model(path, threads=2, batch_size=None, backend=None, python=None, streams=1):
    """Load a .ms or .mindir file (type sniffed from content) and return a session.

    The session has `inputs`/`outputs` (TensorSpec lists), `run(*batches) -> list of arrays`, `close()`
    and is a context manager. `batch_size` caps what one predict call gets (dynamic-batch models are
    resized to it); fixed-batch graphs are looped over automatically. `streams` > 1 loads the model that
    many times, `threads // streams` threads each, splits every batch across them and adds `submit` for
    pipelined callers; "auto" starts with one session and switches to `threads` streams at the first
    batch (see `streams.py`), capped at the usable cores: each stream is a loaded model (a worker process),
    and more than the cores only contend. Asking for more threads or streams than cores warns; an explicit
    `streams` number is still honoured.
    """
    from .specs import detect_model_format

    detect_model_format(path)  # fail fast, with the clearest message, before starting anything
    threads = int(threads)
    if threads < 1 or (streams != "auto" and int(streams) < 1):
        raise ValueError("threads and streams must be at least 1, got threads={}, streams={}".format(threads, streams))
    inprocess = choose_backend(backend) == "inprocess"
    cores = usable_cores()
    if threads > cores or (streams != "auto" and int(streams) > cores):
        warnings.warn("threads={}, streams={} asks for more than the {} CPU cores this process may use: extra "
                      "threads and streams only contend (streams='auto' starts at most {})".format(
                          threads, streams, cores, cores), RuntimeWarning, stacklevel=2)

    def open_one(threads):
        if inprocess:
            from .inprocess import InProcessSession
            return InProcessSession(path, threads=threads, batch_size=batch_size)
        from .client import WorkerSession
        return WorkerSession(path, threads=threads, batch_size=batch_size, python=python)

    def open_streams(per_stream, count):
        if count == 1:
            return open_one(per_stream)
        return StreamedSession.open(lambda: open_one(per_stream), count)

    if streams == "auto" and min(threads, cores) > 1:
        return AdaptiveSession(open_streams, threads, streams=min(threads, cores))
    streams = 1 if streams == "auto" else int(streams)  # "auto" here: one thread or one core
    return open_streams(max(1, threads // streams), streams)


def convert(source, fmk, output, save_type=MS, backend=None, python=None, **options):
    """Convert a source model with MindSpore Lite's converter; returns the path written.

    `fmk` is onnx|tflite|tf|caffe|mindir, `save_type` ms|mindir. Options: weight_file, config_file,
    input_data_type, output_data_type. Use `fiftyone_mslite.modelfiles.convert` for the checked, user-facing path.
    """
    args = dict(options, source=str(source), fmk=fmk, output=str(output), save_type=save_type)
    if choose_backend(backend) == "inprocess":
        from .inprocess import convert_inprocess
        return convert_inprocess(**args)
    from .client import convert_in_worker
    return convert_in_worker(python=python, **args)

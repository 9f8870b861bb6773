"""The MindSpore Lite bridge: open a model, run batches, convert sources. Nothing else.

Backends are rows of a registry walked in preference order (`backends.py`): in-process (mindspore_lite imports
here) and a worker on the runtime Python (the usual case: PyPI's only wheel is for CPython 3.7), plus any a plugin
registers; model formats are rows of one table (`formats.py`). This package must stay Python-3.7 compatible and
import only numpy and the standard library (mindspore_lite lazily).
"""

import os
import warnings

from . import backends, environment, formats, settings
from .backends import BACKEND_ENV
from .base import Backend, Session
from .environment import cache_home, install, runtime_python
from .errors import (
    ConversionError,
    InputMismatchError,
    ModelFileError,
    MSLiteError,
    RuntimeUnavailableError,
    WorkerCrashedError,
)
from .formats import MINDIR, MS, ModelFormat
from .streams import AdaptiveSession, StreamedSession
from .tensors import TensorSpec

__all__ = [
    "open_model", "convert", "choose_backend", "usable_cores", "Session", "Backend", "ModelFormat", "StreamedSession",
    "AdaptiveSession", "TensorSpec", "backends", "formats", "cache_home", "info", "install", "runtime_python", "MS",
    "MINDIR", "MSLiteError", "ModelFileError", "InputMismatchError", "RuntimeUnavailableError", "WorkerCrashedError",
    "ConversionError", "BACKEND_ENV", "settings",
]


def choose_backend(backend=None):
    # type: (str) -> str
    """The name of the backend that would open a model: the first available one of `backend` (a name, 'auto' or a
    preference list), else of FIFTYONE_MSLITE_BACKEND, else of 'auto' (in-process when mindspore_lite imports here,
    else a worker)."""
    return backends.choose(backend).name


def info():
    """What the bridge would use right now, and why: the answer to 'which MindSpore Lite runs my model?' (where
    MindSpore Lite is found, the backend preference list and the backend it chooses)."""
    result = environment.info()
    result["backend_preference"] = [b.name for b in backends.preference()]  # the setting's list, or 'auto''s
    chosen = backends.choose()
    result["backend"] = chosen.name if chosen.available() else None  # what opens models now
    result["backends_available"] = dict(backends.status())
    return result


def usable_cores():
    # type: () -> int
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def open_model(path, threads=2, batch_size=None, backend=None, python=None, streams=1, device="cpu"):
    """Load a model file MindSpore Lite runs as is (.ms or .mindir, type sniffed from content) and return a session.

    The session has `inputs`/`outputs` (TensorSpec lists), `run(*batches) -> list of arrays`, `close()`
    and is a context manager. `backend` is a backend name, 'auto' or a preference list (see `backends.py`);
    `python` is the worker backend's interpreter. `batch_size` caps what one predict call gets (dynamic-batch
    models are resized to it); fixed-batch graphs are looped over automatically. `streams` > 1 loads the model that
    many times, `threads // streams` threads each, splits every batch across them and adds `submit` for
    pipelined callers; "auto" starts with one session and switches to `threads` streams at the first
    batch (see `streams.py`), capped at the usable cores: each stream is a loaded model (a worker process),
    and more than the cores only contend. Asking for more threads or streams than cores warns; an explicit
    `streams` number is still honoured.
    """
    fmt = formats.detect(path, runnable=True)  # fail fast, with the clearest message, before starting anything
    threads = int(threads)
    if threads < 1 or (streams != "auto" and int(streams) < 1):
        raise ValueError("threads and streams must be at least 1, got threads={}, streams={}".format(threads, streams))
    chosen = backends.choose(backend, fmt, device)
    cores = usable_cores()
    if threads > cores or (streams != "auto" and int(streams) > cores):
        warnings.warn("threads={}, streams={} asks for more than the {} CPU cores this process may use: extra "
                      "threads and streams only contend (streams='auto' starts at most {})".format(
                          threads, streams, cores, cores), RuntimeWarning, stacklevel=2)
    options = {"python": python} if python else {}

    def open_streams(per_stream, count):
        if count == 1:
            return chosen.open(path, per_stream, batch_size, device, **options)
        return StreamedSession.open(lambda: chosen.open(path, per_stream, batch_size, device, **options), count)

    if streams == "auto" and min(threads, cores) > 1:
        return AdaptiveSession(open_streams, threads, streams=min(threads, cores))
    streams = 1 if streams == "auto" else int(streams)  # "auto" here: one thread or one core
    return open_streams(max(1, threads // streams), streams)


def convert(source, fmk, output, save_type=MS, backend=None, python=None, **options):
    """Convert a source model with MindSpore Lite's converter; returns the path written.

    `fmk` is a format the converter reads (onnx|tflite|tf|caffe|mindir: `formats.names(...)` of those with a
    `converter`), `save_type` ms|mindir. Options: weight_file, config_file, input_data_type, output_data_type. Use
    `fiftyone_mslite.modelfiles.convert` for the checked, user-facing path.
    """
    args = dict(options, source=str(source), fmk=fmk, output=str(output), save_type=save_type)
    if python:
        args["python"] = python
    return backends.choose(backend, convert=True).convert(**args)

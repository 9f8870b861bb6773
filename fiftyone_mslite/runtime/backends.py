"""Runtime backends as data, walked in an ordered preference list (as ONNX Runtime's execution providers).

A backend is one way to run MindSpore Lite models: its `name`, whether it is `available()` here, the model formats
it runs as is, the devices it targets, and `open(path, threads, batch_size, device, **options) -> Session`.
The built-ins are "inprocess" (`inprocess.py`: mindspore_lite imported into this interpreter) and "worker"
(`client.py`: a worker process on the runtime Python); plugins add theirs through the `register_backends` hook
(`fiftyone_mslite.hooks` calls `register`). Which one opens a model: the `backend` argument or
FIFTYONE_MSLITE_BACKEND, a name or a comma-separated preference list; "auto" is every backend with a `priority`,
highest first. The first one that is available and runs the model's format and device wins.
"""
from collections import OrderedDict

from . import settings
from .base import Backend
from .client import WorkerBackend
from .inprocess import InProcessBackend

BACKEND_ENV = "FIFTYONE_MSLITE_BACKEND"
AUTO = "auto"


_BACKENDS = OrderedDict()  # name → Backend, in registration order


def register(backend):
    """Add a backend (an instance). A name is one backend: registering another under it replaces it."""
    name = getattr(backend, "name", None)
    if not name or name == AUTO or "," in name or not callable(getattr(backend, "open", None)):
        raise TypeError("register() takes a fiftyone_mslite.runtime.backends.Backend instance with a name (not "
                        "'auto', no commas) and an open() method, got {!r}".format(backend))
    _BACKENDS[name] = backend
    return backend


def get(name):
    # type: (str) -> Backend
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError("backend must be one of {}, got {!r} (a plugin's backend is known once the plugins are "
                         "loaded: every catalog and CLI call loads them, or call "
                         "fiftyone_mslite.hooks.plugin_manager())".format(", ".join(names()), name)) from None


def names():
    """'auto' and every registered backend."""
    return (AUTO,) + tuple(_BACKENDS)


def preference(backend=None):
    """The backends to try, in order: `backend` (a name, 'auto', a comma-separated list or a sequence of names),
    else FIFTYONE_MSLITE_BACKEND, else 'auto'."""
    spec = backend or settings.get(BACKEND_ENV) or AUTO
    wanted = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    order = []
    for name in wanted:
        if name == AUTO:
            ranked = sorted((b for b in _BACKENDS.values() if b.priority is not None), key=lambda b: -b.priority)
            order.extend(b for b in ranked if b not in order)
        elif get(name) not in order:
            order.append(get(name))
    return order


def choose(backend=None, fmt=None, device="cpu", convert=False):
    # type: (object, str, str, bool) -> Backend
    """The first backend of the preference list that is available and runs `fmt` on `device` (or converts). When
    none is available, the last one that could run it: opening it then says what is missing (install the
    runtime, ...)."""
    fits = [b for b in preference(backend) if (b.converts if convert else b.runs(fmt, device))]
    if not fits:
        raise ValueError("no backend of {} runs {} on {}".format(
            ", ".join(b.name for b in preference(backend)), "conversions" if convert else fmt or "models", device))
    for candidate in fits:
        if candidate.available():
            return candidate
    return fits[-1]


def status():
    """{name: available} of every registered backend, for `runtime info`."""
    return OrderedDict((name, bool(b.available())) for name, b in _BACKENDS.items())


__all__ = ["Backend", "register", "get", "names", "preference", "choose", "status", "BACKEND_ENV", "AUTO"]

register(InProcessBackend())
register(WorkerBackend())

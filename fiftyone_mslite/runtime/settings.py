"""Every environment variable fiftyone-mslite reads, in one table, read through one helper.

In the runtime (the bottom layer, Python 3.7) so that every layer can read it. The rows of the layers below the
FiftyOne layer are here; a layer above declares its own (`declare`: the App's in `app/access.py`, the shared-data
folder in `demo.py`), and `SETTING_OWNERS` names those modules so that `fiftyone-mslite runtime info --help` and
docs/configuration.md list every row (`every_setting`).
"""
import os
import re
from collections import namedtuple

Setting = namedtuple("Setting", "name default meaning")

SETTINGS = [
    Setting("FIFTYONE_MSLITE_HOME", "$XDG_CACHE_HOME/fiftyone-mslite or ~/.cache/fiftyone-mslite",
            "cache: runtime venv, downloads, converted and upgraded models, worker logs"),
    Setting("FIFTYONE_MSLITE_BACKEND", "auto", "runtime backend: auto (in-process when mindspore_lite imports "
                                               "here, else a worker), inprocess, worker, a plugin's backend, or a "
                                               "comma-separated preference list (the first available one runs)"),
    Setting("FIFTYONE_MSLITE_RUNTIME_PYTHON", "the runtime venv's python",
            "a Python that already has mindspore_lite, used by the worker"),
    Setting("FIFTYONE_MSLITE_PYTHON37", "found via pyenv, then PATH",
            "the Python 3.7 that `runtime install` builds the runtime venv from"),
    Setting("FIFTYONE_MSLITE_VERBOSE", "0", "1: show MindSpore Lite's native log output"),
    Setting("FIFTYONE_MSLITE_MIRROR", "unset", "offline mirror of public files (directory or base URL laid out "
                                               "as <host>/<path>)"),
    Setting("FIFTYONE_MSLITE_OFFLINE", "0", "1: never download; only the cache and the mirror"),
    Setting("FIFTYONE_MSLITE_MAX_MODEL_SIZE", "2G", "largest model file a download may be (bytes, or K/M/G/T)"),
    Setting("FIFTYONE_MSLITE_MAX_LABELS_SIZE", "8M", "largest label file a download may be (bytes, or K/M/G/T)"),
    Setting("FIFTYONE_MSLITE_DOWNLOAD_DEADLINE", "3600", "longest one download may take, in seconds (headers, body, "
                                                        "retries and redirects together); its partial file is kept "
                                                        "for the next attempt to resume"),
    Setting("FIFTYONE_MSLITE_DOWNLOAD_MIN_RATE", "8K", "slowest a download may be (bytes per second, or K/M/G): a "
                                                       "body slower than this over the read timeout (30 s) is "
                                                       "abandoned and resumed later; headers must arrive within "
                                                       "twice that timeout"),
    Setting("FIFTYONE_MSLITE_CALL_TIMEOUT", "120", "floor of every runtime call's deadline, in seconds: a model "
                                                   "load, batch or conversion (10x) in the worker that takes longer "
                                                   "than max(this, 50x the model's slowest per-image time so far x "
                                                   "the batch) is abandoned, the worker killed and replaced"),
    Setting("FIFTYONE_MSLITE_MAX_INPUT_SIZE", "2G", "largest input a model may declare for one call (bytes, or "
                                                    "K/M/G/T; all inputs of a batch together): checked before "
                                                    "anything is allocated"),
    Setting("FIFTYONE_MSLITE_USER_CATALOG", "$XDG_CONFIG_HOME/fiftyone-mslite/models.yaml",
            "the user catalog file (your own models)"),
]
#: modules above the runtime that declare settings of their own (imported by `every_setting`)
SETTING_OWNERS = ("fiftyone_mslite.app.access", "fiftyone_mslite.demo")
_BY_NAME = {s.name: s for s in SETTINGS}
_OWN = len(SETTINGS)  # rows after these were declared by other layers
_TRUE = ("1", "true", "yes", "on")


def declare(name, default, meaning):
    # type: (str, str, str) -> str
    """Add a setting of the calling layer to the table (idempotent); returns its name."""
    if name not in _BY_NAME:
        _BY_NAME[name] = Setting(name, default, meaning)
        SETTINGS.append(_BY_NAME[name])
    return name


def every_setting():
    """Every row, the owners' (SETTING_OWNERS) included: what `runtime info --help` and the docs list."""
    import importlib

    for owner in SETTING_OWNERS:
        importlib.import_module(owner)
    return SETTINGS[:_OWN] + sorted(SETTINGS[_OWN:], key=lambda s: s.name)  # the same order whoever imported first


def get(name):
    # type: (str) -> str
    """The variable's value, or None when unset or empty. Only declared names (SETTINGS) may be read."""
    if name not in _BY_NAME:
        raise KeyError("{} is not in fiftyone_mslite.runtime.settings.SETTINGS; add it there (or `declare` it in the "
                       "module that owns it) first".format(name))
    return os.environ.get(name) or None


def flag(name):
    # type: (str) -> bool
    """A yes/no setting: 1/true/yes/on (any case) mean yes."""
    return (get(name) or "").strip().lower() in _TRUE


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text):
    """``4G``, ``512M``, ``800k`` or plain bytes (binary units; a trailing ``B``/``iB`` is allowed); None if not."""
    match = re.match(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", text.lower())
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)] if match else None


def human_size(n):
    # type: (int) -> str
    """Bytes as people read them: 36.75 GiB, 48 KiB, 100 bytes (binary units, as the size settings)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return "{:.4g} {}".format(n / scale, unit)
    return "{} bytes".format(n)


def size(name):
    # type: (str) -> int
    """A byte-count setting (its value, else its documented default); a bad value is a one-line ValueError."""
    raw = get(name) or _BY_NAME[name].default
    parsed = parse_size(raw)
    if parsed is None:
        raise ValueError("{}={!r} is not a size: give bytes or a number with K, M, G or T (e.g. 4G).".format(name, raw))
    return parsed


def seconds(name):
    # type: (str) -> float
    """A duration setting in seconds (its value, else its documented default); must be a positive number."""
    raw = get(name) or _BY_NAME[name].default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ValueError("{}={!r} is not a duration: give a positive number of seconds (e.g. 120).".format(name, raw))
    return value


def table():
    # type: () -> str
    """Every setting as aligned text, for `--help` and `runtime info`."""
    rows = every_setting()
    width = max(len(s.name) for s in rows)
    return "\n".join("{:{w}}  {} (default: {})".format(s.name, s.meaning, s.default, w=width) for s in rows)

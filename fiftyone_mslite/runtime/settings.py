"""Every environment variable fiftyone-mslite reads, in one table, read through one helper.

In the runtime (the bottom layer, Python 3.7) so that every layer can read it. The rows of the layers below the
FiftyOne layer are here; a layer above declares its own (`declare`: the App's in `app/`, the shared-data folder in
`demo.py`), and `SETTING_OWNERS` names those modules so that `fiftyone-mslite runtime info --help` and
docs/configuration.md list every row (`every_setting`).
"""
import os
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
    Setting("FIFTYONE_MSLITE_USER_CATALOG", "$XDG_CONFIG_HOME/fiftyone-mslite/models.yaml",
            "the user catalog file (your own models)"),
]
#: modules above the runtime that declare settings of their own (imported by `every_setting`)
SETTING_OWNERS = ("fiftyone_mslite.app", "fiftyone_mslite.demo")
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


def table():
    # type: () -> str
    """Every setting as aligned text, for `--help` and `runtime info`."""
    rows = every_setting()
    width = max(len(s.name) for s in rows)
    return "\n".join("{:{w}}  {} (default: {})".format(s.name, s.meaning, s.default, w=width) for s in rows)

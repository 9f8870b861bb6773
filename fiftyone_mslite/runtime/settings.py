"""Every environment variable fiftyone-mslite reads, in one table, read through one helper.

In the runtime (the bottom layer, Python 3.7) so that every layer can read it; `fiftyone-mslite runtime info
--help` and docs/configuration.md list the same table.
"""
import os
from collections import namedtuple

Setting = namedtuple("Setting", "name default meaning")

SETTINGS = (
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
    Setting("FIFTYONE_MSLITE_APP_ALLOWED_DIRS", "empty (none)", "directories (separated by '%s') whose model "
            "and label files the App may read; catalog names always work" % os.pathsep),
    Setting("FIFTYONE_MSLITE_APP_ALLOW_URLS", "0", "1: let the App fetch label-file URLs given in the browser"),
    Setting("FIFTYONE_MSLITE_USER_CATALOG", "$XDG_CONFIG_HOME/fiftyone-mslite/models.yaml",
            "the user catalog file (your own models)"),
    Setting("FIFTYONE_MSLITE_SHARED", "../shared beside the checkout", "the project's shared data folder "
                                                                        "(demo, benchmarks, tests)"),
)
_BY_NAME = {s.name: s for s in SETTINGS}
_TRUE = ("1", "true", "yes", "on")


def get(name):
    # type: (str) -> str
    """The variable's value, or None when unset or empty. Only names in SETTINGS may be read."""
    if name not in _BY_NAME:
        raise KeyError("{} is not in fiftyone_mslite.runtime.settings.SETTINGS; add it there first".format(name))
    return os.environ.get(name) or None


def flag(name):
    # type: (str) -> bool
    """A yes/no setting: 1/true/yes/on (any case) mean yes."""
    return (get(name) or "").strip().lower() in _TRUE


def table():
    # type: () -> str
    """The settings as aligned text, for `--help` and `runtime info`."""
    width = max(len(s.name) for s in SETTINGS)
    return "\n".join("{:{w}}  {} (default: {})".format(s.name, s.meaning, s.default, w=width) for s in SETTINGS)

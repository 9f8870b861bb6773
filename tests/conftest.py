"""Shared fixtures. FiftyOne and our caches are isolated here, before anything imports fiftyone."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FIFTYONE_MSLITE_SHARED", REPO.parent / "shared"))


def _isolate() -> Path:
    """Point HOME, FiftyOne and our cache at a throw-away directory for the whole session."""
    from fiftyone_mslite.runtime import RuntimeUnavailableError, runtime_python

    try:  # resolve the real runtime venv before HOME moves
        os.environ.setdefault("FIFTYONE_MSLITE_RUNTIME_PYTHON", runtime_python())
    except RuntimeUnavailableError:
        pass  # tests that need it fail with the runtime's own message
    root = Path(tempfile.mkdtemp(prefix="fiftyone-mslite-tests-"))
    os.environ.update({
        "REAL_HOME": os.environ.get("HOME", ""),
        "HOME": str(root / "home"),
        "FIFTYONE_MSLITE_HOME": str(root / "cache"),
        "FIFTYONE_DATABASE_DIR": str(root / "db"),
        "FIFTYONE_DATABASE_NAME": "fiftyone-mslite-tests",
        "FIFTYONE_DEFAULT_DATASET_DIR": str(root / "datasets"),
        "FIFTYONE_MODEL_ZOO_DIR": str(root / "zoo"),
        "FIFTYONE_PLUGINS_DIR": str(root / "plugins"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
    })
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    (root / "home").mkdir()
    return root


TEST_ROOT = _isolate()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real models and data); tests that need it skip when it is absent."""
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"needs ../shared (real models and data) at {SHARED}; absent in a fresh clone")
    return SHARED


@pytest.fixture(scope="session")
def runtime_python() -> str:
    """The Python 3.7 (with mindspore_lite) that the worker backend runs on."""
    from fiftyone_mslite.runtime import runtime_python as find

    return find()


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def python_env(**extra: str) -> dict:
    """Environment for a subprocess that imports this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra)
    return env


PYTHON = sys.executable

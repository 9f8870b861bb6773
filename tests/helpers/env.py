"""Paths and subprocess environment shared by the tests (conftest only holds fixtures)."""
import os
import sys
from pathlib import Path

from fiftyone_mslite.demo import shared_path

REPO = Path(__file__).resolve().parents[2]
SHARED = shared_path()
PYTHON = sys.executable


def python_env(**extra: str) -> dict:
    """Environment for a subprocess that imports this checkout (`extra` may extend PYTHONPATH)."""
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}

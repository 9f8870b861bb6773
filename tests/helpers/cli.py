"""Run the real `fiftyone-mslite` CLI in a subprocess against this checkout."""
from __future__ import annotations

import subprocess
import sys

from helpers.env import python_env

CLI = [sys.executable, "-m", "fiftyone_mslite"]


def cli(*args: str, env: dict | None = None, **more_env: str) -> subprocess.CompletedProcess:
    """`fiftyone-mslite ARGS` with extra environment variables; output captured as text."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=python_env(**(env or {}), **more_env),
                          timeout=600)

"""`runtime install` on a machine without Python 3.7: one line with the exact commands to get one."""
import json
import os
import subprocess
import sys

from helpers.cli import CLI
from helpers.env import python_env


def test_runtime_install_without_python37_says_how_to_get_one(tmp_path):
    (tmp_path / "pyenv" / "versions").mkdir(parents=True)
    env = python_env(FIFTYONE_MSLITE_HOME=str(tmp_path / "cache"), PYENV_ROOT=str(tmp_path / "pyenv"),
                     PATH=os.path.dirname(sys.executable))  # this venv's bin: no python3.7 on it
    for name in ("FIFTYONE_MSLITE_PYTHON37", "FIFTYONE_MSLITE_RUNTIME_PYTHON"):
        env.pop(name, None)

    def install(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "runtime", "install", *extra], capture_output=True, text=True, env=env,
                              timeout=300)

    out = install()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for command in ("pyenv install 3.7", "uv python install 3.7", "conda create", "--python"):
        assert command in lines[0]
    as_json = install("--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"] == "RuntimeUnavailableError"
    assert not (tmp_path / "cache" / "runtime").exists()  # nothing half-made

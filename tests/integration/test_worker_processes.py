"""What the worker backend leaves behind and how many workers it starts (real MindSpore Lite workers)."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers.env import python_env

from fiftyone_mslite import runtime
from fiftyone_mslite.classifier import load_classifier


@pytest.fixture(scope="module")
def tiny_path(tiny_model) -> str:
    with load_classifier(tiny_model) as clf:
        return str(clf.path)


def test_logs_of_a_killed_caller_are_swept(tiny_path, tmp_path):
    """SIGKILL gives the caller no chance to delete its worker's log: logs live in the cache (not $TMPDIR), named
    after their owner, and the next worker started anywhere deletes those whose owner is gone."""
    logs, tmpdir = runtime.cache_home() / "logs", tmp_path / "tmp"
    tmpdir.mkdir()
    code = ("import sys\nfrom fiftyone_mslite.runtime import open_model\n"
            f"session = open_model({tiny_path!r}, backend='worker')\nprint('ready', flush=True)\nsys.stdin.read()")
    caller = subprocess.Popen([sys.executable, "-c", code], env=python_env(TMPDIR=str(tmpdir)), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert caller.stdout.readline() == "ready\n"
        left = list(logs.glob(f"worker-{caller.pid}-*.log"))
        assert len(left) == 1 and not list(tmpdir.iterdir())
    finally:
        caller.send_signal(signal.SIGKILL)
        caller.wait()
    own = set(logs.glob(f"worker-{os.getpid()}-*.log"))
    runtime.open_model(tiny_path, backend="worker").close()
    assert not left[0].exists() and set(logs.glob(f"worker-{os.getpid()}-*.log")) == own  # swept; own one deleted


def test_auto_streams_are_capped_at_the_usable_cores(tiny_path, monkeypatch):
    """--threads 32 on 2 cores must not start 33 workers: "auto" stops at the cores, and asking for more warns."""
    monkeypatch.setattr(runtime.AdaptiveSession, "SWITCH_AFTER_S", 0.0)  # the streams open at the first batch
    cores = runtime.usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    with pytest.warns(RuntimeWarning, match=f"more than the {cores} CPU cores"):
        auto = runtime.open_model(tiny_path, threads=cores + 2, streams="auto", backend="worker")
    with auto:
        assert auto.streams == cores
        spec = auto.inputs[0]
        auto.run(np.zeros((4, *spec.shape[1:]), spec.dtype))  # the first batch switches to streams
        assert len(getattr(auto.session, "sessions", [auto.session])) == cores
    with pytest.warns(RuntimeWarning, match=f"more than the {cores} CPU cores"):  # asked for explicitly: honoured
        runtime.open_model(tiny_path, threads=1, streams=cores + 1, backend="worker").close()

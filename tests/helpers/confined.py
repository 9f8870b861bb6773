"""Run the CLI where the disk is full or read-only: a private mount namespace (`unshare -m`, as root) in which a
folder becomes a size-limited tmpfs (a full disk: writes fail with ENOSPC) or a read-only bind mount of itself.

Why a namespace: as root, a folder without write permission is still writable, and RLIMIT_FSIZE fails writes with
EFBIG rather than the ENOSPC a full disk gives; mounts in a namespace change nothing outside it.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from helpers.env import python_env


def _usable() -> bool:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def confined_cli(*args: str, full: Mapping[Path, str] = {}, read_only: Sequence[Path] = (), after: str = "",
                 **env: str) -> subprocess.CompletedProcess:
    """`fiftyone-mslite ARGS` with each `full` folder a tmpfs of the given size and each `read_only` folder
    read-only; `after` is a shell command run in the same namespace afterwards (its output follows a line
    `--- after`), to look at what the command left where only it could see."""
    try:
        usable = _usable()
    except (OSError, subprocess.TimeoutExpired):
        usable = False
    if not usable:
        pytest.skip("needs `unshare -m` and mount (root in a mount namespace) to make a full or read-only disk")
    steps = [f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(d))}" for d, size in full.items()]
    for d in read_only:
        q = shlex.quote(str(d))
        steps += [f"mount --bind {q} {q}", f"mount -o remount,ro,bind {q}"]
    cli = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "fiftyone_mslite", *args))
    script = " && ".join(steps + ["true"]) + f"; {cli}; code=$?; echo '--- after'; {after or 'true'}; exit $code"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          env=python_env(**env), timeout=900)


def split_after(stdout: str) -> tuple[str, str]:
    """(the command's stdout, the `after` command's output)."""
    before, _, after = stdout.partition("--- after\n")
    return before, after

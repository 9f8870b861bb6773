"""Files read and written safely: only regular files of a bounded size are read (a FIFO would block forever, a
device would never end), and writes are atomic (readers see the old content or the new, never half)."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class UnreadableFile(ValueError):
    """Not a regular file, or larger than the caller allows (the caller words it as its own error)."""


def open_regular(path: str | os.PathLike, max_bytes: int, kind: str = "one file") -> BinaryIO:
    """Open `path` for reading only if it is a regular file of at most `max_bytes`. The open itself does not block
    (O_NONBLOCK) and the check is made on the opened file, so nothing can swap it in between. Raises
    FileNotFoundError / PermissionError as `open` does, UnreadableFile otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"{_KINDS.get(stat.S_IFMT(st.st_mode), 'a special file')}, not a regular file")
        if st.st_size > max_bytes:
            raise UnreadableFile(f"{st.st_size} bytes, above the read limit for {kind} ({max_bytes} bytes)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path` (atomic on
    POSIX). On any failure `path` is untouched and the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename:
            raise
        # a full disk fails in write(), whose error names no file: name the one that was not written
        raise OSError(exc.errno, f"{exc.strerror} (nothing was written)", str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's content, read in 1 MiB blocks (the key of every content-addressed cache)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

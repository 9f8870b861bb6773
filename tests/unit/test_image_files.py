"""Only regular files are read as images: a FIFO would block the reading thread (and Ctrl-C) forever, a device
would never end. Run in a subprocess with a timeout, so a regression fails instead of hanging the suite."""
import os
import subprocess
import sys

import pytest
from helpers.env import python_env

from fiftyone_mslite.adapters import images


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_non_regular_files_are_refused_without_reading(kind, tmp_path):
    path = {"fifo": tmp_path / "sample.jpg", "/dev/zero": "/dev/zero", "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    code = ("from fiftyone_mslite.adapters.images import ImageDecodeError, load_image\n"
            f"try:\n    load_image({str(path)!r})\nexcept ImageDecodeError as exc:\n    print(exc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=python_env())
    expected = {"fifo": "a FIFO", "/dev/zero": "a character device", "directory": "a directory"}[kind]
    assert done.stdout.strip() == f"cannot decode image {path}: {expected}, not a regular file", done.stderr


def test_reads_are_bounded(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    path.write_bytes(b"\x89PNG" + b"\0" * 4096)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1024)
    with pytest.raises(images.ImageDecodeError, match=r"4100 bytes, above the read limit for one image \(1024 bytes\)"):
        images.load_image(path)

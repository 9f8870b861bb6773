"""Shared memory for tensors between the FiftyOne process and the worker.

Python 3.7 has no multiprocessing.shared_memory, so a buffer is an anonymous file (memfd, else an
unlinked file in /dev/shm) mapped by both processes; its fd is inherited by the worker, so nothing
is ever left behind in the filesystem, whatever dies.
"""
import mmap
import os
import tempfile

import numpy as np

_ALIGN = 64


def create_fd(size):
    # type: (int) -> int
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("fiftyone-mslite", 0)
    else:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        fd, name = tempfile.mkstemp(prefix="fiftyone-mslite-", dir=folder)
        os.unlink(name)
    os.set_inheritable(fd, True)
    os.ftruncate(fd, size)
    return fd


class SharedBuffer(object):
    """A growable mapping of a shared fd; both sides remap when the owner reports a new size."""

    def __init__(self, fd, size):
        self.fd = fd
        self.size = 0
        self._map = None
        self.remap(size)

    def remap(self, size):
        if size == self.size:
            return
        if self._map is not None:
            self._map.close()
        self._map = mmap.mmap(self.fd, size)
        self.size = size

    def grow(self, needed):
        """Owner side: make room for `needed` bytes (doubling, so growth is rare)."""
        if needed > self.size:
            size = max(needed, 2 * self.size)
            os.ftruncate(self.fd, size)
            self.remap(size)

    def write(self, arrays):
        """Pack arrays one after another; returns their descriptors for the peer."""
        layout, offset = [], 0
        for arr in arrays:
            layout.append({"offset": offset, "shape": list(arr.shape), "dtype": arr.dtype.str})
            offset += _aligned(arr.nbytes)
        self.grow(offset)
        for desc, arr in zip(layout, arrays):
            self.view(desc)[...] = arr
        return layout

    def view(self, desc):
        """A numpy view (no copy) of one packed array."""
        dtype = np.dtype(desc["dtype"])
        count = int(np.prod(desc["shape"], dtype=np.int64))
        return np.frombuffer(self._map, dtype, count, desc["offset"]).reshape(desc["shape"])

    def close(self):
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _aligned(n):
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN

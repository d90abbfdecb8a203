"""Reads that bypass the page cache: ``O_DIRECT`` with aligned buffers, offsets and lengths.

Rules of this module:

* Only reading.  One :class:`DirectReader` per open device; it owns one
  page-aligned buffer (an anonymous ``mmap``, which the kernel aligns to a
  page) that grows to the largest read asked for and is reused, so a poll
  allocates nothing but the returned ``bytes``.
* A read is widened to the alignment (:data:`ALIGNMENT`, 4096: a multiple
  of every logical block size Linux block devices use) at both ends and one
  ``preadv`` is issued; the bytes asked for are cut out of it.  So "one read"
  here is one system call and one request to the device.

Why ``O_DIRECT``: another writer (a container's own ``lvm`` with
``use_lvmetad=0``, another host on a shared disk) writes metadata with
``O_DIRECT`` too, and a buffered read of a block device may be answered from
this host's page cache, which that write never touched — the watcher would
keep seeing the old header.  ``O_DIRECT`` goes to the device every time.

Where ``O_DIRECT`` is refused (a regular image file on tmpfs or another file
system without it: ``EINVAL`` at ``open``), the reader falls back to buffered
reads (``direct`` is False).  That is safe for regular files: every writer of
the same file goes through the same page cache.
"""

from __future__ import annotations

import errno
import mmap
import os
from types import TracebackType

__all__ = ["ALIGNMENT", "DirectReader", "aligned_span"]

ALIGNMENT = 4096


def aligned_span(offset: int, size: int, alignment: int = ALIGNMENT) -> tuple[int, int]:
    """``(start, length)`` of the smallest aligned span that covers ``[offset, offset+size)``."""
    start = offset - offset % alignment
    end = offset + size
    end += -end % alignment
    return start, max(end - start, alignment)


class DirectReader:
    """An open device (or image file) read with ``O_DIRECT`` when the kernel allows it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.direct = True
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.direct = False
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._buffer = mmap.mmap(-1, ALIGNMENT)
        #: system calls issued (one per :meth:`read`): for the benchmark
        self.reads = 0

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer at the end of the device; ``b""`` past it)."""
        start, length = aligned_span(offset, size)
        if length > len(self._buffer):
            self._buffer.close()
            self._buffer = mmap.mmap(-1, length)
        view = memoryview(self._buffer)[:length]
        try:
            self.reads += 1
            got = os.preadv(self.fd, [view], start)
        except OSError as e:
            if e.errno != errno.EINVAL or not self.direct:
                raise
            # a device whose logical block is larger than ALIGNMENT, or a file system
            # that accepted O_DIRECT at open and refuses the read: go buffered
            self._reopen_buffered()
            got = os.preadv(self.fd, [view], start)
        finally:
            view.release()
        skip = offset - start
        return bytes(self._buffer[skip : max(skip, min(got, skip + size))])

    def _reopen_buffered(self) -> None:
        os.close(self.fd)
        self.direct = False
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._buffer.close()

    def __enter__(self) -> DirectReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

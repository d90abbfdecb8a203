"""The daemon process: startup errors, pid file, daemonising, signals, limits.

Rules of this module:

* Shared by every daemon of the package; nothing here knows which one runs.
* The pid file is held with an ``fcntl`` lock for the daemon's lifetime, so
  "already running" is the lock, not the file's existence.
* Daemonising keeps the parent until the child says it is ready (or why it
  is not), so ``pylvmetad`` without ``-f`` exits 0 only once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import sys
import time
from typing import IO

#: exit status when the pid file is locked by a running daemon
EXIT_LOCKED = 13
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class StartupError(Exception):
    """The daemon cannot start (socket in use, bad path, ...); the message says why."""


class PidFile:
    """A pid file held with an exclusive ``fcntl`` lock for the daemon's lifetime."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for _ in range(20):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    os.close(fd)
                    raise
                time.sleep(0.001)
        else:
            os.close(fd)
            raise StartupError(f"Failed to acquire lock on {self.path}. Already running?")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


def daemonize(name: str) -> IO[bytes] | None:
    """Fork; the parent waits until the child reports readiness and exits with its status.

    Returns the pipe the child writes its readiness byte to.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            status = ready.read(1)
        if status == b"0":
            os._exit(0)
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if code == EXIT_LOCKED:
            print(f"{name}: failed to acquire the pid file lock. Already running?", file=sys.stderr)
        os._exit(code if code > 0 else 1)
    os.close(read_fd)
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return os.fdopen(write_fd, "wb", buffering=0)


def raise_nofile_limit() -> None:
    """Lift the soft open-files limit to the hard one: every idle client holds a descriptor."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin_malloc_mmap_threshold() -> None:
    """Keep glibc from holding on to the memory of large requests.

    glibc serves allocations above a threshold (128 KiB) with mmap and
    returns them on free -- but after freeing one it raises the threshold to
    that size, so later buffers of a 300 KiB vg_update or a 1.7 MB pv_list
    reply come from the heap, which fragments and is not given back: RSS
    grows by megabytes that hold nothing.  Setting the threshold explicitly
    turns that adjustment off.  Not glibc (or no ctypes): nothing to do.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def use_fast_event_loop() -> str:
    """Run on uvloop when it is installed (a dependency on Linux); returns the loop's name.

    uvloop implements the same asyncio API in C (libuv): accepting a
    connection and a request/reply round trip cost about a third of the
    pure-Python loop's (BENCHMARKS.md).  It is optional: without it, or with
    ``PYLVMETAD_EVENT_LOOP=asyncio``, the standard loop runs unchanged.
    """
    if os.environ.get("PYLVMETAD_EVENT_LOOP") == "asyncio":
        return "asyncio"
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"

"""The daemon process: startup errors, pid file, daemonising, signals, limits.

Rules of this module:

* Shared by every daemon of the package; nothing here knows which one runs.
* The pid file is held with an ``fcntl`` lock for the daemon's lifetime, so
  "already running" is the lock, not the file's existence.  It is opened
  with ``O_NOFOLLOW`` and must be a regular file: a symlink planted at its
  path (``ln -s /etc/victim PIDFILE``) or a fifo, directory or device there
  makes the daemon refuse to start instead of truncating or blocking on what
  it points to.  (The C lvmetad follows the link.)  Only the last component
  is checked; the directory is the administrator's.
* Every signal a daemon can be sent is decided in :data:`SIGNAL_ACTIONS`
  (stop, ignore with a log line, ignore silently, or the default action);
  :func:`install_early_signal_handlers` applies it before the event loop
  runs and the daemon's loop installs the ``STOP`` and ``LOG`` handlers.
* Daemonising keeps the parent until the child says it is ready (or why it
  is not), so ``pylvmetad`` without ``-f`` exits 0 only once it serves.
* Light to import: a daemon's command runs this module (pid file, fork,
  early signals) before it imports asyncio or its own code, so that its
  socket listens as early as possible (docs/architecture.md, "Start-up");
  asyncio is imported only by the functions that use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import signal
import stat
import sys
import time
from enum import Enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing before the socket listens (mypy reads it as True)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator
    from typing import IO

#: exit status when the pid file is locked by a running daemon
EXIT_LOCKED = 13


class SignalAction(Enum):
    """What the daemon does on a signal."""

    #: begin the bounded shutdown (a second one closes every connection at once)
    STOP = "stop"
    #: ignored, with an info line in the log saying so
    LOG = "log"
    #: ignored silently (SIG_IGN): the event a signal reports is handled elsewhere
    IGNORE = "ignore"
    #: the kernel's default: a crash stays a crash (core dump), a stop stays a stop
    DEFAULT = "default"


#: every catchable signal, decided (README "Signals").  The rule: only the four
#: conventional stop signals stop the daemon; a signal that would kill it by
#: default but says nothing about the daemon (a stray ``kill -USR1``,
#: ``alarm()``, ``SIGXFSZ``) is ignored and logged; a fault it raises itself
#: (SEGV, BUS, FPE, ILL, ABRT, SYS, TRAP) and a CPU limit set by the
#: administrator keep their default action.  Real-time signals: see
#: :func:`signal_action`.
SIGNAL_ACTIONS: dict[signal.Signals, SignalAction] = {
    signal.SIGTERM: SignalAction.STOP,
    signal.SIGINT: SignalAction.STOP,
    signal.SIGHUP: SignalAction.STOP,  # as the original: no configuration to reload
    signal.SIGQUIT: SignalAction.STOP,  # as the original: a clean stop, no core dump
    signal.SIGUSR1: SignalAction.LOG,
    signal.SIGUSR2: SignalAction.LOG,
    signal.SIGALRM: SignalAction.LOG,  # kills the C lvmetad
    signal.SIGVTALRM: SignalAction.LOG,
    signal.SIGPROF: SignalAction.LOG,
    signal.SIGPOLL: SignalAction.LOG,
    signal.SIGPWR: SignalAction.LOG,
    signal.SIGSTKFLT: SignalAction.LOG,
    signal.SIGXFSZ: SignalAction.LOG,  # a too-large write then fails with EFBIG instead
    signal.SIGPIPE: SignalAction.IGNORE,  # a peer that went away is EPIPE on the write
    signal.SIGTTIN: SignalAction.IGNORE,  # never stop for the terminal in -f mode
    signal.SIGTTOU: SignalAction.IGNORE,
    signal.SIGCHLD: SignalAction.DEFAULT,  # ignored by default; the daemon has no children
    signal.SIGWINCH: SignalAction.DEFAULT,  # ignored by default
    signal.SIGURG: SignalAction.DEFAULT,  # ignored by default
    signal.SIGCONT: SignalAction.DEFAULT,  # resumes after SIGSTOP/SIGTSTP
    signal.SIGTSTP: SignalAction.DEFAULT,  # Ctrl-Z in -f mode suspends, as for any program
    signal.SIGXCPU: SignalAction.DEFAULT,  # RLIMIT_CPU is the administrator's decision
    signal.SIGSEGV: SignalAction.DEFAULT,
    signal.SIGBUS: SignalAction.DEFAULT,
    signal.SIGFPE: SignalAction.DEFAULT,
    signal.SIGILL: SignalAction.DEFAULT,
    signal.SIGABRT: SignalAction.DEFAULT,
    signal.SIGSYS: SignalAction.DEFAULT,
    signal.SIGTRAP: SignalAction.DEFAULT,
}
#: SIGKILL and SIGSTOP cannot be caught, blocked or ignored
UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


def signal_action(signum: int) -> SignalAction:
    """The decision for any signal number: the table, else real-time signals are LOG."""
    try:
        return SIGNAL_ACTIONS[signal.Signals(signum)]
    except (KeyError, ValueError):
        pass
    if signal.SIGRTMIN <= signum <= signal.SIGRTMAX:
        return SignalAction.LOG  # default action terminates; nothing sends them to a daemon
    return SignalAction.DEFAULT


def catchable_signals() -> list[int]:
    """Every signal number a process can install a handler for, on this system."""
    return sorted(int(s) for s in signal.valid_signals() if s not in UNCATCHABLE)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def install_early_signal_handlers(remember: Callable[[int], None]) -> None:
    """Apply :data:`SIGNAL_ACTIONS` before the event loop runs.

    STOP and LOG signals are passed to ``remember`` (the loop acts on them
    once it runs, so a signal during start-up is not fatal); IGNORE signals
    get ``SIG_IGN``; DEFAULT ones ``SIG_DFL``.
    """
    for signum in catchable_signals():
        action = signal_action(signum)
        with contextlib.suppress(OSError, ValueError):
            if action is SignalAction.IGNORE:
                signal.signal(signum, signal.SIG_IGN)
            elif action is SignalAction.DEFAULT:
                signal.signal(signum, signal.SIG_DFL)
            else:
                signal.signal(signum, lambda n, frame: remember(n))


def install_loop_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[str], None], note: Callable[[str], None]
) -> None:
    """Hand STOP signals to ``stop`` and LOG signals to ``note`` (with the signal's name)."""
    for signum in catchable_signals():
        action = signal_action(signum)
        name = signal_name(signum)
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            if action is SignalAction.STOP:
                loop.add_signal_handler(signum, stop, name)
            elif action is SignalAction.LOG:
                loop.add_signal_handler(signum, note, name)


class StartupError(Exception):
    """The daemon cannot start (socket in use, bad path, ...); the message says why."""


class PidFileLocked(StartupError):
    """Another process holds the pid file's lock: a daemon is already running."""


class PidFile:
    """A pid file held with an exclusive ``fcntl`` lock for the daemon's lifetime."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StartupError(f"pid file {self.path} is a symbolic link; refusing to follow it") from exc
            if exc.errno == errno.EISDIR:
                raise StartupError(f"pid file {self.path} is a directory, not a regular file") from exc
            raise StartupError(f"cannot open pid file {self.path}: {exc.strerror}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StartupError(f"pid file {self.path} is not a regular file; refusing to use it")
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
            raise PidFileLocked(f"Failed to acquire lock on {self.path}. Already running?")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            ours, there = os.fstat(self.fd), os.lstat(self.path)
            if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino):  # not something put there since
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


#: the cyclic collector's young-generation threshold once a daemon serves (CPython's is 700)
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_collector() -> tuple[int, int]:
    """Take what start-up made out of the cyclic collector's walks, and walk the young less often.

    Run once, when the daemon is about to serve.  CPython's collector
    runs a young-generation pass every 700 net container allocations and,
    as the heap grows, full passes that walk every object -- the modules,
    classes and functions start-up made included.  A request path that makes
    no reference cycles (the daemon's makes none: a request's objects are
    freed by reference counting) pays for those walks with nothing to find:
    filling the cache with 5000 PVs cost 10.5 µs per pv_found with the
    defaults, 8.1 µs with this (BENCHMARKS.md, issue 17, sixth pass).  So:
    one collection, then ``gc.freeze()`` (start-up's objects move to the
    permanent generation, which no pass walks), and a young threshold of
    :data:`YOUNG_GENERATION_THRESHOLD`.  Cycles still get collected -- a
    pass runs after that many net allocations, a bounded few MB at most.
    Returns (objects frozen, the young threshold).
    """
    import gc

    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    return gc.get_freeze_count(), YOUNG_GENERATION_THRESHOLD


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Ask glibc to return free heap memory to the system (``malloc_trim(0)``).

    Freed buffers below the mmap threshold stay in the heap, resident, until
    something asks for this; the server does after releasing many buffers.
    Returns whether it could (not glibc, or no ctypes: nothing to do).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class _CollectorPauses:
    #: jobs running under :func:`collector_paused` now
    count = 0
    #: whether the collector was on when the first of them began
    was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector from running while a long message is handled.

    The tree of a message of 2 M keys is one list of 2 M pairs: every full
    collection while it lives walks all of it, 10-20 ms in one piece in the
    middle of some step (the collector runs whenever enough objects were
    made, whoever made them).  Reference counting frees everything else as
    before; only cycles made meanwhile wait until the last paused job ends,
    when the collector runs again as it was (left off if it was off).
    Nested and concurrent pauses are counted.
    """
    import gc

    pauses = _CollectorPauses
    if pauses.count == 0:
        pauses.was_enabled = gc.isenabled()
        gc.disable()
    pauses.count += 1
    try:
        yield
    finally:
        pauses.count -= 1
        if pauses.count == 0 and pauses.was_enabled:
            gc.enable()


def use_fast_event_loop() -> str:
    """Run on uvloop when it is installed (a dependency on Linux); returns the loop's name.

    uvloop implements the same asyncio API in C (libuv): accepting a
    connection and a request/reply round trip cost about a third of the
    pure-Python loop's (BENCHMARKS.md).  It is optional: without it, or with
    ``PYLVMETAD_EVENT_LOOP=asyncio``, the standard loop runs unchanged.
    """
    if os.environ.get("PYLVMETAD_EVENT_LOOP") == "asyncio":
        return "asyncio"
    import asyncio

    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"

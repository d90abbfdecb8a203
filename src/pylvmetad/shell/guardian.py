"""The crash guardian: a forked watcher that removes a dead daemon's socket and pid file.

Rules of this module:

* Why: a daemon killed with SIGKILL (or by the OOM killer) leaves its socket
  file behind.  A script that restarts it and waits for the file
  (``[ -S sock ]``) then sees the old file at once and connects before the new
  daemon listens: refused.  The guardian removes the dead daemon's files the
  moment it dies, so the path appears again only when the new daemon listens.
* How: right after the socket listens (before any heavy import, so the fork is
  cheap and copy-on-write), the daemon forks the guardian with a pipe whose
  write end only the daemon holds (``O_CLOEXEC``: no exec'd child inherits it).
  The guardian keeps the read end and nothing else (fds 0-2 become
  ``/dev/null``; the listening socket, the pid file and a daemonised parent's
  readiness pipe are closed, so nothing queues into the dead socket and no
  lock or pipe is held), ignores the stop and log signals a terminal or a
  process-group kill sends, and blocks on the read.  EOF means the daemon is
  exiting, however it does; the guardian then waits until it is reparented
  (the kernel does that only after the daemon's last descriptor, its
  listening socket and pid file lock among them, is closed).
* What it removes: the socket path and the pid file path, each only if it is
  still the very file the daemon created (same ``st_dev``, ``st_ino`` and
  ``st_ctime_ns`` as recorded at creation: an inode number alone may be
  reused by a newer file), and the socket only if nothing answers on it, so a
  newer daemon's socket is never removed.  The pid
  file is removed only while the guardian holds its lock (a newer daemon that
  reopened the same file holds the lock, and the file stays).  On a clean stop
  the daemon removes both itself and the guardian finds them gone.
* Its process: a child of the daemon (so a process-group SIGKILL and a
  descendant walk reach it), named ``pylvm-guardian`` in ``/proc/PID/comm`` so
  that ``pgrep pylvmetad``/``pidof`` name only the daemon (its command line is
  the daemon's: ``pgrep -f`` matches both).  It exits 0 with ``os._exit``.
* Light: ``os``, ``signal``, ``time``, ``fcntl`` and :mod:`.process` only (``socket``,
  already loaded by the daemon, is imported by the guardian when it wakes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time

from .process import SignalAction, catchable_signals, signal_action

#: the guardian's name in /proc/PID/comm (15 bytes at most; not containing a daemon's name)
GUARDIAN_COMM = "pylvm-guardian"


def _ident(st: os.stat_result) -> tuple[int, int, int]:
    # the inode number alone is not enough: a file made after the dead one was
    # unlinked may get its number again; its change time (ns) then differs
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def start_guardian(socket_path: str, pidfile_path: str, pidfile_fd: int) -> int:
    """Fork the guardian for the socket at ``socket_path`` and the pid file held on ``pidfile_fd``.

    Returns the pipe's write end, which the daemon keeps open (and never
    writes) until it exits; returns -1 when the guardian could not be
    started (the daemon runs without one).
    """
    try:
        socket_id = _ident(os.lstat(socket_path))
        pidfile_id = _ident(os.fstat(pidfile_fd))
        read_fd, write_fd = os.pipe()  # both O_CLOEXEC (PEP 446)
    except OSError:
        return -1
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return -1
    if pid == 0:
        try:
            _guard(read_fd, socket_path, socket_id, pidfile_path, pidfile_id)
        finally:
            os._exit(0)
    os.close(read_fd)
    return write_fd


def _guard(
    read_fd: int,
    socket_path: str,
    socket_id: tuple[int, int, int],
    pidfile_path: str,
    pidfile_id: tuple[int, int, int],
) -> None:
    daemon_pid = os.getppid()
    for signum in catchable_signals():
        if signal_action(signum) in (SignalAction.STOP, SignalAction.LOG):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != devnull:
            os.dup2(devnull, fd)
    if read_fd != 3:
        os.dup2(read_fd, 3)
    os.closerange(4, os.sysconf("SC_OPEN_MAX"))  # close_range(2): the socket, the pid file, everything
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(GUARDIAN_COMM)
    while True:
        try:
            if not os.read(3, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    # EOF comes while the dying daemon closes its descriptors one by one: its
    # listening socket and pid file lock may not be closed yet.  Its children
    # are reparented only once all are, so wait for that (bounded).
    deadline = time.monotonic() + 5.0
    while os.getppid() == daemon_pid and time.monotonic() < deadline:
        time.sleep(0.001)
    remove_socket_if_same(socket_path, socket_id)
    remove_pidfile_if_same(pidfile_path, pidfile_id)


def remove_if_same(path: str, ident: tuple[int, int, int]) -> bool:
    """Unlink ``path`` if it is still the file ``ident`` names; True when removed."""
    try:
        if _ident(os.lstat(path)) != ident:
            return False
        os.unlink(path)
    except OSError:
        return False
    return True


def remove_socket_if_same(path: str, ident: tuple[int, int, int]) -> bool:
    """Unlink the dead daemon's socket file, unless it was replaced or something answers on it."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return remove_if_same(path, ident)
    return False  # a listening socket (a newer daemon's): never ours to remove


def remove_pidfile_if_same(path: str, ident: tuple[int, int, int]) -> bool:
    """Unlink the pid file if it is still the dead daemon's file and nobody holds its lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if _ident(os.fstat(fd)) != ident:
            return False
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a newer daemon holds it: OSError, it stays
        return remove_if_same(path, ident)
    except OSError:
        return False
    finally:
        os.close(fd)

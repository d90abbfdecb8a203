"""The daemon's listening socket and its peers: bind, inherit from systemd, SO_PEERCRED.

Rules of this module:

* A socket is never reachable by others, not even for an instant: it is
  bound under umask 077 and chmod 0600 before ``listen``.
* The path appears only once the socket listens (bound under a private
  name, then hard-linked into place), so "the file exists" means "connect
  works" for anyone waiting on it.
* A stale socket file (nobody answers on it) is removed; anything else at
  the path is left alone and reported as a :class:`StartupError`.
* Nothing here knows which daemon it serves.
* A peer's credentials are read once per connection, on the event loop,
  from the descriptor (:func:`peer_credentials_of`): one C-level socket
  object wrapped round it for the one ``getsockopt``, then detached, where
  asking the loop's socket object (uvloop's ``PseudoSocket``) builds a
  Python-level :class:`socket.socket` per call: ~9.6k instructions against
  ~4.5k (issue 17, row 1).
* Light to import (no logging, no dataclasses): a daemon's command binds its
  socket with this module before importing anything heavy.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket
import stat
import struct

from .process import StartupError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing before the socket listens (mypy reads it as True)

if TYPE_CHECKING:
    from collections.abc import Callable


#: SO_PEERCRED's struct ucred: pid, uid, gid
_UCRED = struct.Struct("3i")


class PeerCredentials:
    """A peer's SO_PEERCRED."""

    __slots__ = ("gid", "pid", "uid")

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid = pid
        self.uid = uid
        self.gid = gid

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerCredentials):
            return NotImplemented
        return (self.pid, self.uid, self.gid) == (other.pid, other.uid, other.gid)

    def __hash__(self) -> int:
        return hash((self.pid, self.uid, self.gid))

    def __repr__(self) -> str:
        return f"PeerCredentials(pid={self.pid}, uid={self.uid}, gid={self.gid})"


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """SO_PEERCRED of a connected UNIX socket, or None where unavailable."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


_SOL_SOCKET = socket.SOL_SOCKET
#: None where the platform has no SO_PEERCRED (then nobody's credentials are known)
_SO_PEERCRED: int | None = getattr(socket, "SO_PEERCRED", None)


def peer_credentials_of(fd: int) -> PeerCredentials | None:
    """:func:`peer_credentials` of the connected UNIX socket open as ``fd`` (left open).

    The descriptor is wrapped in the C-level socket type (no Python-level
    ``socket.socket.__init__``) for the one call and detached, so ``fd``
    stays the caller's.
    """
    if _SO_PEERCRED is None:
        return None
    try:
        sock = _socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
    except OSError:
        return None
    try:
        raw = sock.getsockopt(_SOL_SOCKET, _SO_PEERCRED, 12)  # _UCRED.size
    except OSError:
        return None
    finally:
        sock.detach()
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def _log_stale(path: str) -> None:
    import logging

    logging.getLogger("pylvmetad").warning("removing stale socket %s", path)


def bind_unix_socket(path: str, on_stale: Callable[[str], None] = _log_stale) -> socket.socket:
    """Create, bind and listen on ``path`` with mode 0600 from the first instant.

    A stale socket file (nobody answers on it) is removed, after
    ``on_stale(path)`` (by default a warning in the log; a daemon that binds
    before its logging is set up collects it and logs it later); a live
    daemon on it, or a path that is not a socket, is a :class:`StartupError`.
    """
    if len(os.fsencode(path)) > 107:
        raise StartupError(f"daemon socket path too long: {path}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(f"{path} exists and is not a socket; refusing to remove it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except OSError:
            on_stale(path)
            os.unlink(path)
        else:
            raise StartupError(f"socket {path} already in use: another daemon answers there")
        finally:
            probe.close()
    # Bind and listen under a private name, then link it to ``path``: whoever sees
    # the path can connect at once (no "exists but refuses" window for clients and
    # tools that wait for the file), and link(2), unlike rename, fails when another
    # daemon got there first.  A path too long for a private name is bound directly.
    private = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    if len(os.fsencode(private)) > 107:
        private = path
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)  # no window in which the socket is accessible to others
    try:
        with contextlib.suppress(FileNotFoundError):
            if private != path:
                os.unlink(private)  # left by a crashed daemon of the same pid
        sock.bind(private)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind {path}: {exc.strerror}") from exc
    finally:
        os.umask(old_umask)
    try:
        os.chmod(private, 0o600)
        sock.listen(128)
        if private != path:
            try:
                os.link(private, path)
            except OSError as exc:
                raise StartupError(f"cannot bind {path}: {exc.strerror}") from exc
    except BaseException:
        sock.close()
        if private != path:
            os.unlink(private)
        raise
    if private != path:
        os.unlink(private)
    sock.setblocking(False)
    return sock


def inherited_socket(path: str, environ: dict[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed as fd 3, if it is one we should use.

    Accepted when ``LISTEN_PID`` is our pid and ``LISTEN_FDS`` is 1 (the
    original also wants ``SD_ACTIVATION=1``; we do not insist, so a plain
    socket unit works too) and fd 3 is a UNIX stream socket bound at ``path``.
    The variables are removed from the environment either way.
    """
    env = os.environ if environ is None else environ
    listen_pid = env.pop("LISTEN_PID", None)
    listen_fds = env.pop("LISTEN_FDS", None)
    env.pop("SD_ACTIVATION", None)
    env.pop("LISTEN_FDNAMES", None)
    if listen_pid is None or listen_fds is None:
        return None
    if not (listen_pid.isdigit() and int(listen_pid) == os.getpid() and listen_fds == "1"):
        return None
    try:
        sock = socket.socket(fileno=3)
    except OSError:
        return None
    bound = sock.getsockname()
    if (
        sock.family != socket.AF_UNIX
        or sock.type != socket.SOCK_STREAM
        or not isinstance(bound, str)
        or not bound.startswith(path)
    ):
        sock.detach()
        return None
    sock.setblocking(False)
    return sock

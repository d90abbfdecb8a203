"""The client half of LVM's daemon protocol: connect, send a request, read its reply.

Rules of this module:

* It knows the transport only: a UNIX stream socket carrying one request,
  then one reply, strictly alternating.  What a request says, the ``hello``
  check and what a reply means belong to each daemon's typed client
  (:mod:`pylvmetad.metad.client`; lvmlockd's will sit beside it).  It
  imports only :mod:`pylvmetad.wire`.
* It lives outside :mod:`pylvmetad.shell` (the daemons' server side) so a
  client program -- ``pylvmetactl``, the scanner, a benchmark -- never
  imports the asyncio server, pid files or signal handling.
* :class:`Transport` (blocking) and :class:`AsyncTransport` (asyncio) have
  the same operations.  Any exchange that does not complete -- timeout,
  broken connection, oversized reply, cancellation -- closes the
  connection: there are no request ids, so a reply left half-read would be
  taken for the next request's.

The reader completes a reply the way LVM's C client does (daemon-io.c):
when the bytes received so far *end* with the terminator.  The daemons
never send unsolicited data, so this is exact for every real reply.
"""

from __future__ import annotations

import asyncio
import builtins
import socket
import time
from typing import Final

from .wire.codec import Section
from .wire.framing import TERMINATOR, decode

__all__ = [
    "DEFAULT_MAX_REPLY",
    "AsyncTransport",
    "ConnectionLost",
    "DaemonError",
    "DaemonNotRunning",
    "DaemonTimeout",
    "ProtocolError",
    "ReplyReader",
    "Transport",
]

#: a reply larger than this is treated as a broken peer, not buffered forever
DEFAULT_MAX_REPLY: Final = 1 << 30
_RECV_SIZE: Final = 1 << 16


class DaemonError(Exception):
    """Base of everything a client of the daemons raises.

    For a reply the daemon refused, ``response`` and ``reason`` are its
    fields and ``reply`` the whole parsed reply; for transport problems (no
    daemon, timeout, broken reply) they are ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: str | None = None,
        reason: str | None = None,
        reply: Section | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.reason = reason
        self.reply = reply


class DaemonNotRunning(DaemonError):
    """Nothing accepts connections on the socket (missing file, refused, no permission)."""

    def __init__(self, socket_path: str, cause: OSError, daemon: str = "lvmetad") -> None:
        detail = cause.strerror or str(cause)
        super().__init__(f"{daemon} is not running: cannot connect to {socket_path}: {detail}")
        self.socket_path = socket_path
        self.cause = cause


class DaemonTimeout(DaemonError, builtins.TimeoutError):
    """The daemon did not accept the connection or did not finish a reply in time.

    Also a built-in :class:`TimeoutError`, so generic timeout handling catches it.
    """


class ConnectionLost(DaemonError):
    """The daemon closed the connection (or it broke) before a complete reply."""


class ProtocolError(DaemonError):
    """The peer does not speak the expected protocol, or sent a reply that does not parse."""


class ReplyReader:
    """Accumulates received bytes until they end with the terminator (the C client's rule)."""

    __slots__ = ("_buf", "_limit")

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> bytes | None:
        """The reply body (terminator removed) once complete, else None."""
        if not self._buf and data.endswith(TERMINATOR):  # the usual case: one read, no copy
            return data[: -len(TERMINATOR)]
        self._buf += data
        if self._buf.endswith(TERMINATOR):
            return bytes(self._buf[: -len(TERMINATOR)])
        if len(self._buf) > self._limit:
            raise ProtocolError(f"reply larger than {self._limit} bytes without a terminator")
        return None


class _TransportBase:
    def __init__(self, socket_path: str, *, daemon: str = "lvmetad", max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self.socket_path = socket_path
        #: the daemon's name in error messages
        self.daemon = daemon
        self.max_reply = max_reply

    def timeout_error(self, what: str, limit: float | None) -> DaemonTimeout:
        return DaemonTimeout(f"{self.daemon} at {self.socket_path} did not {what} within {limit} s")

    def _closed_early(self) -> ConnectionLost:
        return ConnectionLost(f"{self.daemon} at {self.socket_path} closed the connection before replying")

    def _broken(self, exc: OSError) -> ConnectionLost:
        return ConnectionLost(f"connection to {self.daemon} at {self.socket_path} failed: {exc}")


class Transport(_TransportBase):
    """One blocking connection; not thread-safe by itself (the typed clients lock around it)."""

    def __init__(self, socket_path: str, *, daemon: str = "lvmetad", max_reply: int = DEFAULT_MAX_REPLY) -> None:
        super().__init__(socket_path, daemon=daemon, max_reply=max_reply)
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def open(self, connect_timeout: float | None) -> None:
        """Connect (no-op when connected); :class:`DaemonNotRunning` or :class:`DaemonTimeout`."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(self.socket_path)
        except builtins.TimeoutError:
            sock.close()
            raise self.timeout_error("accept the connection", connect_timeout) from None
        except OSError as exc:
            sock.close()
            raise DaemonNotRunning(self.socket_path, exc, self.daemon) from exc
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def exchange_bytes(self, data: bytes, limit: float | None) -> bytes:
        """Send one request, return its reply body (terminator removed); failures close."""
        sock = self._sock
        assert sock is not None, "exchange on a closed transport"
        deadline = None if limit is None else time.monotonic() + limit
        reader = ReplyReader(self.max_reply)
        try:
            sock.settimeout(limit)
            sock.sendall(data)
            while True:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise builtins.TimeoutError
                    sock.settimeout(remaining)
                chunk = sock.recv(_RECV_SIZE)
                if not chunk:
                    raise self._closed_early()
                body = reader.feed(chunk)
                if body is not None:
                    return body
        except builtins.TimeoutError:
            self.close()
            raise self.timeout_error("reply", limit) from None
        except OSError as exc:
            self.close()
            raise self._broken(exc) from exc
        except BaseException:  # our own errors, KeyboardInterrupt: the exchange is unfinished
            self.close()
            raise

    def exchange(self, data: bytes, limit: float | None) -> str:
        """:meth:`exchange_bytes` as text (bytes that are not UTF-8 survive, as in the framer)."""
        return decode(self.exchange_bytes(data, limit))


class AsyncTransport(_TransportBase):
    """The asyncio twin of :class:`Transport`."""

    def __init__(self, socket_path: str, *, daemon: str = "lvmetad", max_reply: int = DEFAULT_MAX_REPLY) -> None:
        super().__init__(socket_path, daemon=daemon, max_reply=max_reply)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def open(self, connect_timeout: float | None) -> None:
        if self._writer is not None:
            return
        try:
            async with asyncio.timeout(connect_timeout):
                self._reader, self._writer = await asyncio.open_unix_connection(self.socket_path)
        except builtins.TimeoutError:
            raise self.timeout_error("accept the connection", connect_timeout) from None
        except OSError as exc:
            raise DaemonNotRunning(self.socket_path, exc, self.daemon) from exc

    def abort(self) -> None:
        """Close without waiting: also safe while the task is being cancelled."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    async def close(self) -> None:
        writer = self._writer
        self.abort()
        if writer is not None:
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def exchange_bytes(self, data: bytes, limit: float | None) -> bytes:
        """See :meth:`Transport.exchange_bytes`; cancellation closes too."""
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None, "exchange on a closed transport"
        replies = ReplyReader(self.max_reply)
        try:
            async with asyncio.timeout(limit):
                writer.write(data)
                await writer.drain()
                while True:
                    chunk = await reader.read(_RECV_SIZE)
                    if not chunk:
                        raise self._closed_early()
                    body = replies.feed(chunk)
                    if body is not None:
                        return body
        except builtins.TimeoutError:
            self.abort()
            raise self.timeout_error("reply", limit) from None
        except OSError as exc:
            self.abort()
            raise self._broken(exc) from exc
        except BaseException:
            self.abort()
            raise

    async def exchange(self, data: bytes, limit: float | None) -> str:
        return decode(await self.exchange_bytes(data, limit))

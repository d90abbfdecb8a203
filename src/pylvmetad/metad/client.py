"""A client for lvmetad: the requests LVM's tools send, as Python calls.

Rules of this module:

* It is written from the wire protocol (docs/protocol.md), not from pylvmetad's
  internals: it must work against the original C daemon as well.  It uses
  only the wire layer, the protocol's names (:mod:`.protocol`) and the
  transport of :mod:`pylvmetad.rpc`.
* :class:`Client` (blocking sockets) and :class:`AsyncClient` (asyncio) have
  the same methods, written once: :class:`LvmetadRequests` holds the typed
  requests (each names its request and builds its fields), and everything
  else that does not touch a socket — encoding a request, checking the
  handshake, turning a reply into a result or an exception — lives in
  module-level functions.  Each client only adds its transport
  (:mod:`pylvmetad.rpc`): connect, lock, exchange.

Theory of operation
-------------------
A connection is opened on first use (or by ``connect()`` / ``with``), and
starts, as LVM's ``daemon_open`` does, with a ``hello`` whose reply must say
``OK``, protocol ``lvmetad``, version 1.  After that the connection carries
one request, then one reply, strictly alternating; there are no request ids,
so a reply that did not arrive in time makes the connection useless: it is
closed, and the next request opens a fresh one.

Every request except ``hello`` carries ``token``, ``pid``, ``cmd`` and
``update_timeout``, like an LVM command's.  The default token is ``"skip"``,
which passes the daemon's token gate for any request — what lvmetactl and
lvmlockd send.  A caller that populates the cache, as ``pvscan --cache``
does, runs the update-in-progress protocol (docs/protocol.md §4):
``token_update("update in progress")``, ``pv_clear_all()``, ``pv_found()``
per device, ``token_update("filter:N")``.  A successful ``token_update``
makes its token the client's own, so the requests in between carry it.

``call`` returns any reply as it came; the typed methods return the reply
when it says ``OK`` and raise the matching :class:`LvmetadError` subclass
otherwise, so a caller handles "not found" or "token mismatch" with
``except`` instead of string comparisons.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

from ..rpc import (
    DEFAULT_MAX_REPLY,
    AsyncTransport,
    ConnectionLost,
    DaemonError,
    DaemonNotRunning,
    DaemonTimeout,
    ProtocolError,
    Transport,
)
from ..wire.codec import Atom, Node, ParseError, Section, format_tree, parse
from ..wire.framing import TERMINATOR, encode_request
from .protocol import (
    DEFAULT_SOCKET,
    PROTOCOL,
    PROTOCOL_VERSION,
    SKIP_TOKEN,
    UPDATE_IN_PROGRESS,
    default_socket_path,
)

__all__ = [
    "DEFAULT_MAX_REPLY",
    "DEFAULT_SOCKET",
    "SKIP_TOKEN",
    "UPDATE_IN_PROGRESS",
    "AsyncClient",
    "Client",
    "ConnectionLost",
    "DaemonNotRunning",
    "LvmetadError",
    "LvmetadRequests",
    "LvmetadTimeout",
    "MultipleVGs",
    "NotFound",
    "ProtocolError",
    "RequestFailed",
    "TokenMismatch",
    "TokenUpdating",
    "default_socket_path",
]

_TERMINATOR_TEXT: Final = TERMINATOR.decode()

FieldValue = Atom | list[Atom] | bool | Section | None


# ---------------------------------------------------------------------------
# Exceptions (the transport's, under the names this client has always had)
# ---------------------------------------------------------------------------
#: base of everything this client raises (see :class:`pylvmetad.rpc.DaemonError`)
LvmetadError = DaemonError
#: also a built-in :class:`TimeoutError`
LvmetadTimeout = DaemonTimeout


class RequestFailed(LvmetadError):
    """``response = "failed"``: the daemon rejected or could not execute the request."""


class NotFound(LvmetadError):
    """``response = "unknown"``: the PV, device or VG asked for is not in the cache."""


class MultipleVGs(LvmetadError):
    """``response = "multiple"``: a VG name that maps to several VG uuids (look up by uuid)."""


class TokenMismatch(LvmetadError):
    """``response = "token_mismatch"``: the daemon's cache was populated for another token.

    ``expected`` is the daemon's token (``"update in progress"`` while another
    command populates the cache — LVM waits and retries then), ``received``
    the token we sent, ``update_pid`` the populating command's pid or 0.
    """

    def __init__(self, message: str, *, reply: Section) -> None:
        super().__init__(message, response="token_mismatch", reason=reply.get_str_allow_empty("reason"), reply=reply)
        self.expected = reply.get_str_allow_empty("expected")
        self.received = reply.get_str_allow_empty("received")
        self.update_pid = reply.get_int64("update_pid")


class TokenUpdating(LvmetadError):
    """``response = "token_updating"``: another command is populating the cache right now.

    Only ``token_update("update in progress")`` gets this, while the other
    command (``update_pid``) is within its update timeout.
    """

    def __init__(self, message: str, *, reply: Section) -> None:
        super().__init__(message, response="token_updating", reason=reply.get_str_allow_empty("reason"), reply=reply)
        self.expected = reply.get_str_allow_empty("expected")
        self.update_pid = reply.get_int64("update_pid")


_SIMPLE_ERRORS: Final[Mapping[str, type[LvmetadError]]] = {
    "failed": RequestFailed,
    "unknown": NotFound,
    "multiple": MultipleVGs,
}


# ---------------------------------------------------------------------------
# Sans-I/O: requests and replies
# ---------------------------------------------------------------------------
def build_request(request: str, fields: Mapping[str, FieldValue], common: Mapping[str, FieldValue]) -> bytes:
    """The wire bytes of a request: ``request``, the fields, then the common fields.

    ``None`` fields are left out (LVM reads an absent field as "not given");
    a :class:`Section` value becomes a section; booleans become 0/1.  A
    common field the caller also passed explicitly is not repeated (the
    daemon would read the first one anyway).  A body containing the
    terminator is refused: the daemon would cut the message there.
    """
    tree = Section([("request", request)])
    for key, value in (*fields.items(), *((k, v) for k, v in common.items() if k not in fields)):
        node = _node(value)
        if node is not None:
            tree.add(key, node)
    body = format_tree(tree)
    if _TERMINATOR_TEXT in body:
        raise ValueError(f"{request}: a field value contains the message terminator {_TERMINATOR_TEXT!r}")
    return encode_request(body)


def _node(value: FieldValue) -> Node | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return list(value)
    return value


def parse_reply(text: str) -> Section:
    """A reply text as a tree; a reply that is not config text is the peer's fault."""
    try:
        return parse(text)
    except ParseError as exc:
        raise ProtocolError(f"unparsable reply from lvmetad: {exc}") from exc


def check_hello(reply: Section, socket_path: str) -> None:
    """The check LVM's ``daemon_open`` makes before it uses a connection."""
    response = reply.get_str_allow_empty("response")
    protocol = reply.get_str_allow_empty("protocol")
    version = reply.get_int64("version")
    if response != "OK" or protocol != PROTOCOL or version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"{socket_path} is not an lvmetad speaking protocol version 1 "
            f"(hello answered response={response!r} protocol={protocol!r} version={version!r})",
            response=response,
            reason=reply.get_str_allow_empty("reason"),
            reply=reply,
        )


def check_ok(request: str, reply: Section) -> Section:
    """Return an ``OK`` reply; raise the exception that names any other response."""
    response = reply.get_str_allow_empty("response")
    if response == "OK":
        return reply
    reason = reply.get_str_allow_empty("reason")
    message = f"{request}: lvmetad answered {response!r}" + (f": {reason}" if reason else "")
    if response == "token_mismatch":
        raise TokenMismatch(
            message + f" (expected token {reply.get_str_allow_empty('expected')!r}, "
            f"sent {reply.get_str_allow_empty('received')!r}, update_pid {reply.get_int64('update_pid')})",
            reply=reply,
        )
    if response == "token_updating":
        raise TokenUpdating(message + f" (update_pid {reply.get_int64('update_pid')})", reply=reply)
    if response is None:
        raise ProtocolError(f"{request}: reply without a response field", reply=reply)
    error = _SIMPLE_ERRORS.get(response, LvmetadError)
    raise error(message, response=response, reason=reason, reply=reply)


#: what a typed method returns: the reply (blocking client) or a coroutine of it (asyncio)
SectionResult = TypeVar("SectionResult")
#: what ``dump`` returns: the text, or a coroutine of it
TextResult = TypeVar("TextResult")


class LvmetadRequests(Generic[SectionResult, TextResult]):
    """Configuration, per-request fields and the 17 typed requests, written once for both clients.

    A typed method only names its request and builds its fields; the
    concrete client's :meth:`_ok` (request, reply, :func:`check_ok`) and
    :meth:`_text` do the exchange over its transport, blocking or awaited.
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        timeout: float | None = 10.0,
        connect_timeout: float | None = 5.0,
        token: str = SKIP_TOKEN,
        pid: int | None = None,
        cmd: str = "pylvmetactl",
        update_timeout: int = 10,
        max_reply: int = DEFAULT_MAX_REPLY,
    ) -> None:
        #: the socket path: the argument, else $LVM_LVMETAD_SOCKET, else /run/lvm/lvmetad.socket
        self.socket_path = socket_path or default_socket_path()
        #: seconds to wait for each complete reply (None: forever, as the C client)
        self.timeout = timeout
        #: seconds to wait for connect() and the hello reply
        self.connect_timeout = connect_timeout
        #: sent with every request; set by a successful token_update
        self.token = token
        self.pid = os.getpid() if pid is None else pid
        self.cmd = cmd
        #: how long the daemon lets our "update in progress" block other populators
        self.update_timeout = update_timeout
        self.max_reply = max_reply
        self._init_connection()

    def _init_connection(self) -> None:
        """Set up the (closed) connection state of the concrete client."""
        raise NotImplementedError

    def _ok(
        self, request: str, fields: Mapping[str, FieldValue] | None = None, *, adopt_token: str | None = None
    ) -> SectionResult:
        """Send ``request``; the reply if it says OK (then ``adopt_token`` becomes ours), else raise."""
        raise NotImplementedError

    def _text(self, request: str) -> TextResult:
        """Send ``request``; its reply text as received."""
        raise NotImplementedError

    def _common(self) -> dict[str, FieldValue]:
        return {"token": self.token, "update_timeout": self.update_timeout, "pid": self.pid, "cmd": self.cmd}

    def _encode(self, request: str, body: Section | None, fields: Mapping[str, FieldValue]) -> bytes:
        merged: dict[str, FieldValue] = dict(fields)
        if body is not None:
            for key, value in body.items:
                merged.setdefault(key, value)
        common = {} if request == "hello" else self._common()
        return build_request(request, merged, common)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.socket_path!r}, token={self.token!r})"

    # -- typed requests -------------------------------------------------------
    def hello(self) -> SectionResult:
        """The handshake again (a cheap "is the daemon alive" probe): protocol and version."""
        return self._ok("hello")

    def token_update(self, token: str, *, update_timeout: int | None = None) -> SectionResult:
        """Set the daemon's token; on success it becomes this client's token too.

        ``"update in progress"`` starts a cache population (raises
        :class:`TokenUpdating` while another command is populating); any
        other token finishes ours (:class:`TokenMismatch` if another command
        took the update over).  Reply fields: ``prev_token``, ``update_pid``.
        """
        fields: dict[str, FieldValue] = {"token": token}
        if update_timeout is not None:
            fields["update_timeout"] = update_timeout
        return self._ok("token_update", fields, adopt_token=token)

    def pv_clear_all(self) -> SectionResult:
        """Empty every PV and VG table (the first step of a population)."""
        return self._ok("pv_clear_all")

    def pv_found(self, pvmeta: Section, vgname: str | None = None, metadata: Section | None = None) -> SectionResult:
        """Report a PV label (and, if the PV holds metadata, its VG) as pvscan does.

        Reply fields: ``status`` (orphan/complete/partial), ``changed``,
        ``vgid``, ``vgname``, ``seqno_before``, ``seqno_after``.
        :class:`RequestFailed` for a duplicate PV or incomplete input.
        """
        return self._ok("pv_found", {"pvmeta": pvmeta, "vgname": vgname, "metadata": metadata})

    def pv_gone(self, uuid: str | None = None, device: int | None = None) -> SectionResult:
        """Forget a PV by uuid or device number (:class:`NotFound` if unknown)."""
        return self._ok("pv_gone", {"uuid": uuid, "device": device})

    def pv_lookup(self, uuid: str | None = None, device: int | None = None) -> SectionResult:
        """One PV's record (section ``physical_volume``) by uuid or device number."""
        return self._ok("pv_lookup", {"uuid": uuid, "device": device})

    def pv_list(self) -> SectionResult:
        """Every PV (section ``physical_volumes``, keyed by PV uuid)."""
        return self._ok("pv_list")

    def vg_update(self, vgname: str, metadata: Section) -> SectionResult:
        """Store a VG's new metadata as a command that just wrote it does."""
        return self._ok("vg_update", {"vgname": vgname, "metadata": metadata})

    def vg_remove(self, uuid: str) -> SectionResult:
        """Forget a VG; its PVs become orphans (OK for unknown uuids too)."""
        return self._ok("vg_remove", {"uuid": uuid})

    def vg_lookup(self, uuid: str | None = None, name: str | None = None) -> SectionResult:
        """A VG's ``name`` and ``metadata`` (with pvmeta merged into its PVs).

        :class:`NotFound` for an unknown VG, :class:`MultipleVGs` for a name
        that several VGs share (look up by uuid then).
        """
        return self._ok("vg_lookup", {"uuid": uuid, "name": name})

    def vg_list(self) -> SectionResult:
        """Every VG (section ``volume_groups``, keyed by VG uuid, each with ``name``)."""
        return self._ok("vg_list")

    def vg_clear_outdated_pvs(self, vgid: str) -> SectionResult:
        """Drop a VG's list of PVs holding older metadata (after they were repaired)."""
        return self._ok("vg_clear_outdated_pvs", {"vgid": vgid})

    def set_global_info(
        self,
        global_invalid: int | bool | None = None,
        global_disable: int | bool | None = None,
        disable_reason: str | None = None,
    ) -> SectionResult:
        """Set or clear the global INVALID / DISABLE flags (``disable_reason``: DIRECT, REPAIR, ...)."""
        return self._ok(
            "set_global_info",
            {
                "global_invalid": global_invalid,
                "global_disable": global_disable,
                "disable_reason": disable_reason,
            },
        )

    def get_global_info(self) -> SectionResult:
        """Token, update state, global flags and daemon pid (cancels an update past its timeout)."""
        return self._ok("get_global_info")

    def set_vg_info(self, version: int, uuid: str | None = None, name: str | None = None) -> SectionResult:
        """Mark a VG invalid if ``version`` is above its cached seqno (0: unconditionally)."""
        return self._ok("set_vg_info", {"uuid": uuid, "name": name, "version": version})

    def dump(self) -> TextResult:
        """The daemon's whole state as text (no ``response`` field; see docs/protocol.md §5 dump)."""
        return self._text("dump")

    def stats(self) -> SectionResult:
        """pylvmetad's own counters (sections of figures); the C daemon answers ``failed``."""
        return self._ok("stats")


# ---------------------------------------------------------------------------
# Blocking client
# ---------------------------------------------------------------------------
class Client(LvmetadRequests[Section, str]):
    """A blocking lvmetad connection; safe to share between threads (one exchange at a time).

    ``Client(socket_path=None, *, timeout=10.0, connect_timeout=5.0,
    token="skip", pid=os.getpid(), cmd="pylvmetactl", update_timeout=10)``.
    Use as a context manager, or call :meth:`close`.
    """

    def _init_connection(self) -> None:
        self._transport = Transport(self.socket_path, daemon=PROTOCOL, max_reply=self.max_reply)
        self._lock = threading.Lock()

    # -- connection --------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._transport.connected

    def connect(self) -> None:
        """Open the connection and check the hello reply (no-op when already open)."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        with self._lock:
            self._transport.close()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _ensure_connected(self) -> None:
        transport = self._transport
        if transport.connected:
            return
        transport.open(self.connect_timeout)
        try:
            text = transport.exchange(self._encode("hello", None, {}), self.connect_timeout)
            check_hello(parse_reply(text), self.socket_path)
        except BaseException:
            transport.close()
            raise

    # -- raw requests --------------------------------------------------------
    def call_text(self, request: str, body: Section | None = None, **fields: FieldValue) -> str:
        """Send a request and return the reply text exactly as received (terminator removed)."""
        data = self._encode(request, body, fields)
        with self._lock:
            self._ensure_connected()
            return self._transport.exchange(data, self.timeout)

    def call(self, request: str, body: Section | None = None, **fields: FieldValue) -> Section:
        """Send ``request`` with ``fields`` and the children of ``body``; return the parsed reply.

        No check of ``response``: this is for callers that handle every
        answer themselves (the conformance tools, lvmetactl).  The token,
        pid, cmd and update_timeout fields are added unless given.
        """
        return parse_reply(self.call_text(request, body, **fields))

    def _ok(
        self, request: str, fields: Mapping[str, FieldValue] | None = None, *, adopt_token: str | None = None
    ) -> Section:
        reply = check_ok(request, self.call(request, None, **(fields or {})))
        if adopt_token is not None:
            self.token = adopt_token
        return reply

    def _text(self, request: str) -> str:
        return self.call_text(request)


# ---------------------------------------------------------------------------
# asyncio client
# ---------------------------------------------------------------------------
class AsyncClient(LvmetadRequests[Coroutine[Any, Any, Section], Coroutine[Any, Any, str]]):
    """The asyncio twin of :class:`Client`: same constructor, same methods, awaited.

    Concurrent tasks sharing one client are served one exchange at a time,
    because the protocol has no request ids.  Use ``async with``, or await
    :meth:`close`.
    """

    def _init_connection(self) -> None:
        self._transport = AsyncTransport(self.socket_path, daemon=PROTOCOL, max_reply=self.max_reply)
        self._lock: asyncio.Lock | None = None

    # -- connection --------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._transport.connected

    def _get_lock(self) -> asyncio.Lock:
        # created lazily: the lock belongs to the loop that first uses the client
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def connect(self) -> None:
        """Open the connection and check the hello reply (no-op when already open)."""
        async with self._get_lock():
            await self._ensure_connected()

    async def close(self) -> None:
        async with self._get_lock():
            await self._transport.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _ensure_connected(self) -> None:
        transport = self._transport
        if transport.connected:
            return
        await transport.open(self.connect_timeout)
        try:
            text = await transport.exchange(self._encode("hello", None, {}), self.connect_timeout)
            check_hello(parse_reply(text), self.socket_path)
        except BaseException:
            transport.abort()
            raise

    # -- raw requests --------------------------------------------------------
    async def call_text(self, request: str, body: Section | None = None, **fields: FieldValue) -> str:
        """See :meth:`Client.call_text`."""
        data = self._encode(request, body, fields)
        async with self._get_lock():
            await self._ensure_connected()
            return await self._transport.exchange(data, self.timeout)

    async def call(self, request: str, body: Section | None = None, **fields: FieldValue) -> Section:
        """See :meth:`Client.call`."""
        return parse_reply(await self.call_text(request, body, **fields))

    async def _ok(
        self, request: str, fields: Mapping[str, FieldValue] | None = None, *, adopt_token: str | None = None
    ) -> Section:
        reply = check_ok(request, await self.call(request, None, **(fields or {})))
        if adopt_token is not None:
            self.token = adopt_token
        return reply

    async def _text(self, request: str) -> str:
        return await self.call_text(request)

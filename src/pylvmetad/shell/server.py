"""The asyncio server: accept, frame, dispatch, write.  Nothing more.

Rules of this module:

* No protocol decisions here, and no daemon's code: it serves any
  :class:`MessageHandler` (lvmetad's request handler, lvmlockd's, a test's).
  Bytes go through a :class:`~pylvmetad.wire.framing.Framer`, each complete
  message through :meth:`MessageHandler.handle_message`, and the reply
  back out.  Each request runs to completion on the event loop thread, so
  every request is atomic with respect to every other without locks.
* A connection is an :class:`asyncio.Protocol` (no stream coroutines: a
  request is answered inside ``data_received``, which halves the per-request
  cost of the event loop).  A slow or stalled client holds its buffer and
  nothing else, and blocks nobody.  Its input is bounded by ``max_message``;
  its output by the transport's high-water mark: a client that does not read
  its replies stops being read until it does.
* All connections together are bounded by ``max_buffered``: the bytes held
  for partial messages, messages waiting to be answered, and replies the
  peer has not read.  Each connection's share is recounted when it receives
  data and after it is answered (O(1)); when the total passes the budget,
  the stale shares of the others are recounted once, and if it is still
  over, the connection whose share just grew pays: input over the budget is
  answered ``failed`` "daemon buffer budget exceeded" and closed, a reply
  that does not fit is dropped with its connection (aborted).  Nobody else
  is disturbed.
* The fast path (issue 17): a read that is exactly one whole message of at
  most STEP_THRESHOLD bytes, on a connection holding nothing else (no partial
  message, nothing waiting, no job, not paused, not shutting down: the
  general path closes a connection once answered), is answered straight from
  ``data_received``: no queue, and the budget accounted once, after the
  answer (:meth:`Server.account`).  The recount before the answer is
  skipped because it cannot refuse it: the daemon's count plus the whole
  read is checked to be within the budget, and the connection's share only
  shrank since it was counted (its peer read replies).  The answered
  message counts as freed, as the general path's recount counts it.
  "Holding nothing else" is one flag, ``Connection.quiet``, recounted
  (:meth:`Connection._settle`) wherever what it sums up changes; the length
  and the budget are one bound, ``Server.fast_max``, recounted whenever
  ``buffered`` changes; the read's
  bytes are counted once, in ``ServerStats.fast_in``, which is both the
  fast path's share of ``bytes_in`` and what it freed; and a
  :class:`BatchObserver` is fed inline, four list entries a request, no
  call.  Each of those is a few hundred instructions of a request that
  costs ~100k in all.
* Memory given back: when connections release more than ``TRIM_AFTER``
  bytes of buffers, glibc is asked to return free memory to the system
  (``malloc_trim``, once per event-loop turn at most); without that, the
  heap of 5000 closed 64 KiB partial messages stayed resident.  The fast
  path's freed bytes are added in when :meth:`Server.release` runs; the
  fast path itself compares ``fast_in`` with ``fast_trim_at``, the count
  at which the total reaches TRIM_AFTER.
* A large message or reply costs its own connection, not everyone's: a
  message longer than STEP_THRESHOLD is handled as a *job*, a generator the
  loop advances one bounded step per turn (the handler's ``message_steps``
  parses a window of the text per step), and a reply longer than
  STEP_THRESHOLD is encoded and written STEP_THRESHOLD characters per turn.
  Meanwhile that connection is not read (its messages stay in order) and
  every other client is served between the steps.  While a long message is
  decoded, parsed, answered and its tree released, the cyclic garbage
  collector is paused (``process.collector_paused``: a full collection walks
  the whole tree in one piece); a job is closed when its client goes, so
  the pause ends with it.
* The poll window (``poll_window`` seconds, :mod:`.pollwindow`): after a
  read or an accept the loop polls instead of sleeping until that long has
  passed with no read or accept, so the next request of a command is read at
  once instead of after an idle vCPU's halt and wake-up.  The only hook is a
  check of ``Server.poll`` in ``connection_made`` and ``data_received``
  while the window is closed; nothing is delayed or reordered by it.
* Shutdown is bounded (a difference from the original, which serves
  connected clients until they leave, so one idle client -- lvmlockd keeps
  one open for good -- holds it up for ever): stop accepting; keep serving
  connected clients for ``shutdown_grace`` seconds; then close every idle
  connection, and each busy one (a message partly received, or messages
  waiting while the peer does not read its replies) as soon as its requests
  are answered; ``finish_limit`` (10) seconds later still, whatever is left
  is aborted.  A closing transport flushes the replies before it closes.  A
  second signal aborts every connection at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Protocol, cast

from ..wire.framing import (
    DEFAULT_MAX_MESSAGE,
    TERMINATOR,
    Framer,
    Message,
    MessageTooLarge,
    decode,
    decode_steps,
    encode_reply,
)
from ..wire.replies import Reply, failed
from .limits import DEFAULT_MAX_BUFFERED
from .logs import WIRE
from .pollwindow import PollWindow
from .process import collector_paused, release_free_memory
from .sockets import PeerCredentials, peer_credentials

log = logging.getLogger("pylvmetad")

#: bytes of buffers released after which free memory is returned to the system
TRIM_AFTER = 8 * 1024 * 1024

#: the logger's own memo of ``isEnabledFor`` answers, emptied by :mod:`logging`
#: whenever a level changes (every ``setLevel`` and ``logging.disable``: -l's
#: set-up in logs.py, tests' caplog), so a hit is always current; a miss
#: (or a Python without the memo) asks :meth:`~logging.Logger.isEnabledFor`
_ENABLED: dict[int, bool] = getattr(log, "_cache", {})


def wire_enabled() -> bool:
    """``log.isEnabledFor(WIRE)``, a dict hit instead of a method call when the answer is memoised."""
    enabled = _ENABLED.get(WIRE)
    return log.isEnabledFor(WIRE) if enabled is None else enabled


@dataclass(frozen=True)
class Peer:
    """Who sent a message: the connection's serial number and its SO_PEERCRED, if known."""

    connection: int
    credentials: PeerCredentials | None


#: who a connection is until it is admitted (immutable, so one serves all)
_NO_PEER = Peer(0, None)


class DeferredReply:
    """A reply that is not ready yet (lvmlockd's lock requests wait on the lock manager).

    The connection answers nothing else until the future resolves, so replies
    stay in request order; other connections are served meanwhile.  A
    cancelled future sends nothing (the request was dropped).
    """

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Reply]) -> None:
        self.future = future


class MessageHandler(Protocol):
    """What the server serves: one reply per message, never an exception.

    ``peer_gone`` is called once when a connection that sent messages (or
    could have) ends, so a daemon that keeps per-client state (lvmlockd's
    locks) can drop it; lvmetad keeps none.
    """

    def handle_message(self, text: str, peer: Peer) -> Reply | DeferredReply: ...

    def peer_gone(self, peer: Peer) -> None: ...


#: a handler's optional ``message_steps(text, peer)``: ``handle_message`` as a
#: generator that yields between bounded steps and returns the reply
MessageSteps = Callable[[str, "Peer"], Generator[None, None, Reply]]
#: a handler's optional ``handle_bytes(message, peer)``: ``handle_message`` on the
#: undecoded message (never deferred), returning the reply and, if the handler has
#: it at hand, its encoding (lvmetad's reply memo); None: the server encodes it
HandleBytes = Callable[[bytes, "Peer"], tuple[Reply, bytes | None]]
#: messages and replies longer than this (bytes, characters) are handled in steps
STEP_THRESHOLD = 256 * 1024


@dataclass
class ServerStats:
    """Connection-level counters kept by the server (request figures live in metrics)."""

    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    #: bytes read but those the fast path answered (see bytes_in)
    read_in: int = 0
    #: bytes of the reads the fast path answered (also what it freed: Server.release)
    fast_in: int = 0
    bytes_out: int = 0
    #: connections refused or dropped for passing ``max_buffered``
    over_budget: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def bytes_in(self) -> int:
        """Bytes read from clients."""
        return self.read_in + self.fast_in


#: called after each request with the reply and its handling time in seconds
RequestObserver = Callable[[Reply, float], None]


class BatchObserver(Protocol):
    """A :data:`RequestObserver` the server feeds without a call per request.

    Per request the server extends ``batch`` (read anew each time) with the
    reply's ``request``, ``response`` and ``reason`` and the handling time,
    and once the batch holds ``fold_at`` entries or more it calls ``fold``,
    which counts them and may replace ``batch``.  Calling the observer
    itself must count the same as that.
    """

    batch: list[str | float | None]
    fold_at: int

    def fold(self) -> None: ...

    def __call__(self, reply: Reply, elapsed: float) -> None: ...


class Server:
    """Serves a :class:`MessageHandler` on a listening UNIX socket."""

    def __init__(
        self,
        handler: MessageHandler,
        sock: socket.socket,
        *,
        socket_path: str | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        idle_timeout: float = 0,
        shutdown_grace: float = 2.0,
        finish_limit: float = 10.0,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        allow_uids: frozenset[int] | None = None,
        observer: RequestObserver | None = None,
        poll_window: float = 0,
    ) -> None:
        self.handler = handler
        self.sock = sock
        #: the path to unlink on exit (None when systemd owns the socket)
        self.socket_path = socket_path
        self.max_message = max_message
        #: the longest read the fast path takes (a whole message of at most STEP_THRESHOLD bytes)
        self.whole_max = min(max_message, STEP_THRESHOLD) + len(TERMINATOR)
        self.idle_timeout = idle_timeout
        #: seconds connected clients are still served after a shutdown request
        self.shutdown_grace = shutdown_grace
        #: seconds after the grace that a request partly received has to complete
        self.finish_limit = finish_limit
        #: budget for the bytes held for all connections together
        self.max_buffered = max_buffered
        #: the bytes held for all connections, as last counted (Connection.held)
        self.buffered = 0
        #: the longest read the fast path takes now: whole_max, within the budget (_counted)
        self.fast_max = 0
        self._counted()
        #: bytes freed since the last trim, but the fast path's since ``_fast_mark``
        self._released = 0
        #: stats.fast_in when the fast path's freed bytes were last added to ``_released``
        self._fast_mark = 0
        #: stats.fast_in at which the freed bytes reach TRIM_AFTER (the fast path's one check)
        self.fast_trim_at = TRIM_AFTER
        self._trim_scheduled = False
        self.allow_uids = allow_uids
        self.observer = observer
        #: the observer when it takes batches (BatchObserver), fed inline
        self.batched: BatchObserver | None = (
            cast(BatchObserver, observer)
            if callable(getattr(observer, "fold", None)) and hasattr(observer, "batch")
            else None
        )
        #: the handler's stepped form, if it has one (else long messages are handled in one go)
        self.message_steps: MessageSteps | None = getattr(handler, "message_steps", None)
        #: the handler's bytes-in form, if it has one (short messages go through it)
        self.handle_bytes: HandleBytes | None = getattr(handler, "handle_bytes", None)
        self.stats = ServerStats()
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[Connection] = set()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._force = False
        #: grace over: connections close as soon as they are idle
        self.draining = False
        self._grace_handles: list[asyncio.TimerHandle] = []
        self._serials = itertools.count(1)
        #: seconds the loop polls after the last read or accept (0: it sleeps at once; .pollwindow)
        self.poll_window = poll_window
        #: the poll window, once serving (None when poll_window is 0)
        self.poll: PollWindow | None = None

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.poll_window > 0:
            stats = self.stats
            self.poll = PollWindow(
                self.poll_window,
                lambda: stats.read_in + stats.fast_in + stats.connections_total,
                loop.call_soon,
            )
        self._server = await loop.create_unix_server(lambda: Connection(self), sock=self.sock)
        self._idle.set()
        self._arm_idle_timer()

    def request_shutdown(self, reason: str = "") -> None:
        """Stop accepting; serve connected clients for the grace period, then close them.

        A second request closes every connection at once.
        """
        if self._stopping.is_set():
            if not self._force:
                log.info("second shutdown request: closing %d connections", len(self._connections))
                self._close_all()
            return
        log.info(
            "shutting down%s; %d clients connected, served for %g more seconds",
            f" ({reason})" if reason else "",
            len(self._connections),
            self.shutdown_grace,
        )
        self._stopping.set()
        if self._server is not None:
            self._server.close()
        if self._connections:
            loop = asyncio.get_running_loop()
            self._grace_handles.append(loop.call_later(self.shutdown_grace, self._end_grace))

    def _end_grace(self) -> None:
        """Close idle connections now, busy ones once answered (at the latest ``finish_limit`` later)."""
        self.draining = True
        busy = 0
        for connection in list(self._connections):
            connection.quiet = False  # the general path closes it once answered
            if connection.idle:
                connection.close()
            else:
                busy += 1
        if busy:
            log.info("grace period over: waiting for %d connections to finish their requests", busy)
            loop = asyncio.get_running_loop()
            self._grace_handles.append(loop.call_later(self.finish_limit, self._close_all))

    def _close_all(self) -> None:
        if self._connections:
            log.info("closing %d connections", len(self._connections))
        self._force = True
        for connection in list(self._connections):
            connection.abort()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def serve_until_stopped(self) -> None:
        """Run until shutdown was requested and every client has disconnected."""
        if self._server is None:
            await self.start()
        await self._stopping.wait()
        assert self._server is not None
        await self._idle.wait()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self.close_socket()

    def close_socket(self) -> None:
        if self.poll is not None:
            self.poll.stop()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for handle in self._grace_handles:
            handle.cancel()
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    def _arm_idle_timer(self) -> None:
        if self.idle_timeout <= 0 or self.stats.connections_open:
            return
        loop = asyncio.get_running_loop()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = loop.call_later(
            self.idle_timeout, self.request_shutdown, f"inactive for {self.idle_timeout:g} seconds"
        )

    # -- connection bookkeeping (called by Connection) ----------------------
    def admit(self, connection: Connection, peer: PeerCredentials | None) -> bool:
        """Whether a new connection may be served; counts it if so."""
        if self._stopping.is_set():  # the original refuses connections once stopping
            return False
        if self.allow_uids is not None and (peer is None or peer.uid not in self.allow_uids):
            self.stats.connections_refused += 1
            log.warning(
                "refused connection from uid %s pid %s: not in --allow-uid",
                peer.uid if peer else "?",
                peer.pid if peer else "?",
            )
            return False
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        connection.peer = Peer(next(self._serials), peer)
        self._connections.add(connection)
        self._idle.clear()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        return True

    def forget(self, connection: Connection) -> None:
        """A served connection ended."""
        if connection not in self._connections:
            return  # it was refused, never counted
        self._connections.discard(connection)
        self.stats.connections_open -= 1
        if connection.held:
            self.buffered -= connection.held
            self._counted()
            self.release(connection.held)
            connection.held = 0
        try:
            self.handler.peer_gone(connection.peer)
        except Exception:  # one client's clean-up must not take the daemon down
            log.exception("clean-up after %s failed", connection.who)
        if not self.stats.connections_open:
            self._idle.set()
            if not self._stopping.is_set():
                self._arm_idle_timer()

    # -- the daemon-wide buffer budget ------------------------------------
    def recount(self, connection: Connection) -> bool:
        """Recount what ``connection`` holds; True if it grew and the daemon is over budget."""
        return self.account(connection, connection.holding(), 0)

    def account(self, connection: Connection, now: int, freed: int) -> bool:
        """``connection`` holds ``now`` bytes and freed ``freed`` more; True if it grew and the daemon is over budget.

        :meth:`recount` with the count already taken (the fast path knows it
        holds nothing but unsent replies); ``freed`` is what went without
        being counted (an answered message that was never counted as held).
        """
        before = connection.held
        if now == before:  # the usual ping-pong: nothing held before or after
            if freed:
                self.release(freed)
            return False
        connection.held = now
        self.buffered += now - before
        self._counted()
        if now < before:
            self.release(before - now + freed)
            return False
        if freed:
            self.release(freed)
        if self.buffered <= self.max_buffered:
            return False
        total = 0  # the others' shares may be stale (their peers have read replies since)
        for other in self._connections:
            other.held = other.holding()
            total += other.held
        self.buffered = total
        self._counted()
        return total > self.max_buffered

    def _counted(self) -> None:
        """``buffered`` changed: recount ``fast_max``."""
        self.fast_max = min(self.whole_max, self.max_buffered - self.buffered)

    def release(self, size: int) -> None:
        """``size`` bytes of buffers were freed; give memory back once enough were.

        The fast path counts what it frees in ``stats.fast_in`` only (the
        bytes it read), and calls this when that reaches ``fast_trim_at``.
        """
        fast_in = self.stats.fast_in
        released = self._released = self._released + size + fast_in - self._fast_mark
        self._fast_mark = fast_in
        if released < TRIM_AFTER:
            self.fast_trim_at = fast_in + TRIM_AFTER - released
            return
        self.fast_trim_at = 1 << 62  # until the trim: nothing more to check
        if not self._trim_scheduled:
            self._trim_scheduled = True
            asyncio.get_running_loop().call_soon(self._trim)

    def _trim(self) -> None:
        self._trim_scheduled = False
        self._released = 0
        self._fast_mark = self.stats.fast_in
        self.fast_trim_at = self._fast_mark + TRIM_AFTER
        release_free_memory()

    def observe(self, reply: Reply, elapsed: float) -> None:
        """Tell the observer (if any) about one answered request; its failure is logged, never raised."""
        batched = self.batched
        if batched is not None:
            batch = batched.batch
            batch += (reply.request, reply.response, reply.reason, elapsed)
            if len(batch) >= batched.fold_at:
                self.fold()
        elif self.observer is not None:
            try:
                self.observer(reply, elapsed)
            except Exception:  # statistics must never cost a reply
                log.exception("request observer failed")

    def fold(self) -> None:
        """Have the batch observer count its batch; its failure is logged, never raised."""
        assert self.batched is not None
        try:
            self.batched.fold()
        except Exception:  # statistics must never cost a reply
            log.exception("request observer failed")


class Connection(asyncio.Protocol):
    """One client: bytes in through a :class:`Framer`, one reply per message out.

    Messages are answered in order as they complete.  While the transport
    holds more unsent reply bytes than its high-water mark, reading stops
    and complete messages wait in ``pending``; that bounds what a client
    that never reads its replies can make the daemon hold.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.framer = Framer(server.max_message)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[Message] = collections.deque()
        #: the message or reply being handled in steps (see the module's rules)
        self.job: Generator[None, None, None] | None = None
        #: a DeferredReply is outstanding: later messages wait for it
        self.waiting = False
        self.writing_paused = False
        self.admitted = False
        self.closing = False
        #: the fast path may take the next read: admitted, not closing, nothing held or waiting
        #: (kept by :meth:`_settle` at every change of what it sums up)
        self.quiet = False
        self.who = "unknown peer"
        self.peer = _NO_PEER
        #: this connection's share of Server.buffered, as last counted
        self.held = 0
        # structured fields of error lines, for --log-json (docs/observability.md)
        self.peer_fields: dict[str, int] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        poll = self.server.poll
        if poll is not None and not poll.open:
            poll.wake()
        sock = transport.get_extra_info("socket")
        peer = peer_credentials(sock) if sock is not None else None
        if not self.server.admit(self, peer):
            self.closing, self.quiet = True, False
            transport.close()
            return
        self.admitted = True
        self._settle()
        if peer is not None:
            self.who = f"pid {peer.pid} uid {peer.uid}"
            self.peer_fields = {"peer_pid": peer.pid, "peer_uid": peer.uid}
        if wire_enabled():
            log.log(WIRE, "connection from %s", self.who)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted and wire_enabled():
            log.log(WIRE, "connection from %s closed", self.who)
        self.closing, self.quiet = True, False
        self.pending.clear()
        job, self.job = self.job, None
        if job is not None:
            with contextlib.suppress(ValueError):  # ValueError: it is running (it wrote, the write failed)
                job.close()  # now: it may have paused the garbage collector
        self.server.forget(self)

    def close(self) -> None:
        self.closing, self.quiet = True, False
        if self.transport is not None:
            self.transport.close()

    def holding(self) -> int:
        """Bytes held for this connection now: partial input, waiting messages, unsent replies."""
        held = self.framer.pending
        if self.pending:
            held += sum(map(len, self.pending))
        if self.transport is not None and not self.closing:
            held += self.transport.get_write_buffer_size()
        return held

    def abort(self) -> None:
        """Close now, dropping replies the peer has not read."""
        self.closing, self.quiet = True, False
        if self.transport is not None:
            self.transport.abort()

    def _settle(self) -> None:
        """Recount ``quiet`` after what it sums up changed (the fast path's precondition)."""
        self.quiet = (
            self.admitted
            and not self.closing
            and not self.server.draining
            and not self.pending
            and not self.framer.pending
            and self.job is None
            and not self.waiting
            and not self.writing_paused
        )

    @property
    def idle(self) -> bool:
        """No message partly received or waiting to be answered (unread replies are flushed by close)."""
        return not self.pending and not self.framer.pending and self.job is None and not self.waiting

    # -- flow control: stop reading while replies pile up unread ------------
    def pause_writing(self) -> None:
        self.writing_paused, self.quiet = True, False
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._settle()
        if self.transport is not None and not self.closing:
            if self.job is not None:
                self._schedule_step()  # reading resumes when the job is done
                return
            self.transport.resume_reading()
            self._answer_pending()

    # -- requests -----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        server = self.server
        poll = server.poll
        if poll is not None and not poll.open:
            poll.wake()
        size = len(data)
        if (
            self.quiet  # so: not closing or draining, nothing partly received or waiting, no job, not paused
            and size <= server.fast_max  # so: within whole_max and the budget
            and data[-4:] == TERMINATOR  # (-len(TERMINATOR); a slice is cheaper than endswith)
        ):
            message = data[:-4]
            if 35 not in message:  # no "#" of its own (35: an int is a memchr, b"#" is not)
                stats = server.stats
                fast_in = stats.fast_in = stats.fast_in + size
                transport = self.transport
                assert transport is not None  # quiet: admitted, so connected
                handle_bytes = server.handle_bytes
                try:
                    if handle_bytes is None or type(message) is not bytes:
                        self._answer(message)
                    else:  # _answer, inline: this runs per request
                        try:
                            wire = _ENABLED[WIRE]  # wire_enabled(), inline
                        except KeyError:
                            wire = log.isEnabledFor(WIRE)
                        if wire:
                            self._log_message(message)
                        began = perf_counter()
                        reply, reply_data = handle_bytes(message, self.peer)
                        elapsed = perf_counter() - began
                        batched = server.batched
                        if batched is not None:  # server.observe(reply, elapsed), inline
                            batch = batched.batch
                            batch += (reply.request, response := reply.response, reply.reason, elapsed)
                            if len(batch) >= batched.fold_at:
                                server.fold()
                        else:
                            response = reply.response
                            server.observe(reply, elapsed)
                        if wire or response == "failed":
                            self._log_reply(reply, wire)
                        if reply_data is None and len(reply.body) > STEP_THRESHOLD:
                            self._start_job(self._stepped_write(reply.body))
                        else:
                            if reply_data is None:  # not encoded by the handler (the memo's replies are)
                                reply_data = encode_reply(reply.body)
                            stats.bytes_out += len(reply_data)
                            transport.write(reply_data)
                except Exception:  # never let one connection take the daemon down
                    log.exception("connection from %s failed", self.who)
                    self.close()
                if self.closing:
                    return
                # what holding() counts: nothing is buffered or waiting here, so only unsent replies
                held = transport.get_write_buffer_size()
                if held != self.held and server.account(self, held, 0):
                    self._drop_replies()
                    return
                if fast_in >= server.fast_trim_at:
                    server.release(0)
                return
        if self.closing:
            return
        server.stats.read_in += size
        try:
            self.pending.extend(self.framer.messages(data))
        except MessageTooLarge as exc:
            self._too_large(exc)
            return
        if server.recount(self):
            self._refuse_input()
            return
        self._answer_pending()
        if not self.closing and server.recount(self):
            self._drop_replies()

    def _too_large(self, exc: MessageTooLarge) -> None:
        log.error(
            "request from %s too large: %s; disconnecting",
            self.who,
            exc,
            extra={
                "fields": {
                    "request": "NONE",
                    "response": "failed",
                    "reason": "request too large",
                    **self.peer_fields,
                }
            },
        )
        reply = failed("NONE", "request too large")
        self.server.observe(reply, 0.0)
        self.pending.clear()
        self._write(encode_reply(reply.body))
        self.close()  # the transport flushes the reply, then closes

    def _refuse_input(self) -> None:
        server = self.server
        server.stats.over_budget += 1
        log.error(
            "input from %s passes the daemon's buffer budget (%d bytes held, --max-buffered %d); disconnecting",
            self.who,
            server.buffered,
            server.max_buffered,
            extra={
                "fields": {
                    "request": "NONE",
                    "response": "failed",
                    "reason": "daemon buffer budget exceeded",
                    **self.peer_fields,
                }
            },
        )
        reply = failed("NONE", "daemon buffer budget exceeded")
        server.observe(reply, 0.0)
        self.pending.clear()
        self.framer = Framer(server.max_message)  # drop the partial message now
        server.recount(self)
        self._write(encode_reply(reply.body))
        self.close()

    def _drop_replies(self) -> None:
        server = self.server
        server.stats.over_budget += 1
        log.error(
            "replies unread by %s pass the daemon's buffer budget (%d bytes held, --max-buffered %d); disconnecting",
            self.who,
            server.buffered,
            server.max_buffered,
        )
        self.abort()
        server.recount(self)

    def eof_received(self) -> bool:
        # a half-sent message is dropped, nothing changed; close our side
        return False

    def _answer_pending(self) -> None:
        pending = self.pending
        while pending and not self.writing_paused and not self.closing and self.job is None and not self.waiting:
            message = pending.popleft()
            try:
                if len(message) > STEP_THRESHOLD:
                    self._start_job(self._stepped_answer(message))
                else:
                    self._answer(message)
            except Exception:  # never let one connection take the daemon down
                log.exception("connection from %s failed", self.who)
                self.close()
        if self.server.draining and not self.closing and self.idle:
            self.close()  # shutting down: answered, so it goes (its replies are flushed first)
        self._settle()

    # -- jobs: a long message or reply, a bounded step per turn of the loop --
    def _start_job(self, job: Generator[None, None, None]) -> None:
        self.job, self.quiet = job, False
        assert self.transport is not None
        self.transport.pause_reading()  # its next messages wait, in order, until this one is answered
        self._schedule_step()

    def _schedule_step(self) -> None:
        asyncio.get_running_loop().call_soon(self._step)

    def _step(self) -> None:
        job = self.job
        if job is None or self.writing_paused:
            return  # resume_writing schedules the next step
        if self.closing:
            self.job = None
            job.close()
            return
        try:
            next(job)
        except StopIteration:
            self.job = None
            if self.transport is not None and not self.writing_paused:
                self.transport.resume_reading()
            self._answer_pending()  # and _settle
            return
        except Exception:  # never let one connection take the daemon down
            self.job = None
            log.exception("connection from %s failed", self.who)
            self.close()
            return
        if self.server.recount(self):  # a long reply the peer does not read
            self._drop_replies()
            return
        self._schedule_step()

    def _stepped_answer(self, message: Message) -> Generator[None, None, None]:
        """:meth:`_answer` for a long message: parsed and answered in steps."""
        server = self.server
        with collector_paused():  # its tree is walked by every full collection (process.py)
            text = yield from decode_steps(message)  # a step per MiB (framing's rules)
            del message
            elapsed = 0.0
            began = time.perf_counter()
            if server.message_steps is None:
                reply = server.handler.handle_message(text, self.peer)
            else:
                steps = server.message_steps(text, self.peer)
                while True:
                    try:
                        next(steps)
                    except StopIteration as done:
                        reply = done.value
                        break
                    elapsed += time.perf_counter() - began
                    yield
                    began = time.perf_counter()
            del text
        if isinstance(reply, DeferredReply):
            self._defer(reply, time.perf_counter() - elapsed, wire_enabled())
            return
        elapsed += time.perf_counter() - began
        self._answered(reply, elapsed, wire_enabled())
        yield from self._stepped_write(reply.body)

    def _stepped_write(self, body: str) -> Generator[None, None, None]:
        """Encode and write a long reply STEP_THRESHOLD characters at a time."""
        for start in range(0, len(body), STEP_THRESHOLD):
            self._write(body[start : start + STEP_THRESHOLD].encode("utf-8", "surrogateescape"))
            yield
        self._write(TERMINATOR if body.endswith("\n") else b"\n" + TERMINATOR)

    def _answer(self, message: Message) -> None:
        """Answer one message no longer than STEP_THRESHOLD (the steps of :meth:`_send_reply`, inline)."""
        server = self.server
        wire = _ENABLED.get(WIRE)  # wire_enabled(), inline
        if wire is None:
            wire = log.isEnabledFor(WIRE)
        if wire:
            self._log_message(message)
        handle_bytes = server.handle_bytes
        if handle_bytes is not None and type(message) is bytes:  # not a handed-over buffer
            began = perf_counter()
            reply, data = handle_bytes(message, self.peer)
            elapsed = perf_counter() - began
        else:
            text = decode(message)
            began = perf_counter()
            answer = server.handler.handle_message(text, self.peer)
            if isinstance(answer, DeferredReply):
                self._defer(answer, began, wire)
                return
            elapsed = perf_counter() - began
            reply, data = answer, None
        # self._answered(reply, elapsed, wire) and self._write(data), inline: this runs per request
        server.observe(reply, elapsed)
        if wire or reply.response == "failed":
            self._log_reply(reply, wire)
        if data is None:  # not encoded by the handler (the memo's replies are)
            body = reply.body
            if len(body) > STEP_THRESHOLD:
                self._start_job(self._stepped_write(body))
                return
            data = encode_reply(body)
        transport = self.transport
        assert transport is not None
        server.stats.bytes_out += len(data)
        transport.write(data)

    def _send_reply(self, reply: Reply, elapsed: float, wire: bool) -> None:
        self._answered(reply, elapsed, wire)
        if len(reply.body) > STEP_THRESHOLD:
            self._start_job(self._stepped_write(reply.body))
        else:
            self._write(encode_reply(reply.body))

    def _defer(self, deferred: DeferredReply, began: float, wire: bool) -> None:
        """Answer when the future resolves; until then this connection's next messages wait."""
        self.waiting, self.quiet = True, False

        def done(future: asyncio.Future[Reply]) -> None:
            self.waiting = False
            self._settle()
            if self.closing or future.cancelled():
                return
            try:
                self._send_reply(future.result(), time.perf_counter() - began, wire)
            except Exception:  # never let one connection take the daemon down
                log.exception("connection from %s failed", self.who)
                self.close()
                return
            self._answer_pending()

        deferred.future.add_done_callback(done)

    def _answered(self, reply: Reply, elapsed: float, wire: bool) -> None:
        """Count and log a reply before it is written."""
        self.server.observe(reply, elapsed)
        if reply.response == "failed" or wire:
            self._log_reply(reply, wire)

    def _log_message(self, message: Message) -> None:
        """Log a message at WIRE."""
        log.log(WIRE, "%s", "".join(f"<- {line}\n" for line in decode(message).splitlines()).rstrip("\n"))

    def _log_reply(self, reply: Reply, wire: bool) -> None:
        """Log a failed reply as an error, and any reply at WIRE when ``wire``."""
        if reply.response == "failed":
            log.error(
                "%s from %s failed: %s",
                reply.request,
                self.who,
                reply.reason,
                extra={
                    "fields": {
                        "request": reply.request,
                        "response": "failed",
                        "reason": reply.reason,
                        **self.peer_fields,
                    }
                },
            )
        if wire:
            log.log(WIRE, "%s", "".join(f"-> {line}\n" for line in reply.body.splitlines()).rstrip("\n"))

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.server.stats.bytes_out += len(data)
        self.transport.write(data)

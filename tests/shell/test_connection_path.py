"""The per-connection path (issue 17, row 1: connect, three requests, close).

Peer credentials are read from the descriptor and are the same as asking
the socket; a connection's log names are made from them when asked; a
connection that only takes the fast path never gets a framer of its own;
and the idle timeout is one timer for the daemon, re-armed only when it
fires, that still shuts down exactly ``idle_timeout`` after the last client
left and never while one is connected.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import pytest

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.shell import server as server_module
from pylvmetad.shell.server import Connection, Peer, Server
from pylvmetad.shell.sockets import PeerCredentials, peer_credentials, peer_credentials_of
from pylvmetad.wire.framing import TERMINATOR

HELLO = b'request="hello"\n' + TERMINATOR


class Sink:
    """A transport that keeps what is written; its socket is ``sock`` (None: no socket)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.written: list[bytes] = []
        self.sock = sock
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.sock if name == "socket" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


# -- credentials --------------------------------------------------------------


def test_credentials_from_the_descriptor_are_the_sockets_and_leave_it_open() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        read = peer_credentials_of(ours.fileno())
        assert read == peer_credentials(ours)
        assert read == PeerCredentials(os.getpid(), os.getuid(), os.getgid())
        ours.sendall(b"still open")  # the descriptor was not closed by the read
        assert theirs.recv(100) == b"still open"


def test_credentials_of_what_is_not_a_socket_are_unknown() -> None:
    read_end, write_end = os.pipe()
    try:
        assert peer_credentials_of(read_end) is None
        os.write(write_end, b"x")  # still open
        assert os.read(read_end, 1) == b"x"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_connection_is_named_by_its_peers_credentials_and_unknown_without() -> None:
    async def body() -> tuple[list[object], list[object]]:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            known, unknown = Connection(server), Connection(server)
            known.connection_made(Sink(ours))  # type: ignore[arg-type]
            unknown.connection_made(Sink())  # type: ignore[arg-type]
            return (
                [known.who, known.peer_fields, known.peer],
                [unknown.who, unknown.peer_fields, unknown.peer],
            )

    known, unknown = asyncio.run(body())
    pid, uid = os.getpid(), os.getuid()
    assert known == [
        f"pid {pid} uid {uid}",
        {"peer_pid": pid, "peer_uid": uid},
        Peer(1, PeerCredentials(pid, uid, os.getgid())),
    ]
    assert unknown == ["unknown peer", {}, Peer(2, None)]


def test_allow_uids_still_refuse_a_peer_without_credentials() -> None:
    async def body() -> tuple[bool, int, int]:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX), allow_uids=frozenset({os.getuid()}))
        sink = Sink()
        connection = Connection(server)
        connection.connection_made(sink)  # type: ignore[arg-type]
        return sink.closed, server.stats.connections_refused, server.stats.connections_open

    assert asyncio.run(body()) == (True, 1, 0)


# -- a framer only when needed ------------------------------------------------


def test_only_a_read_the_fast_path_does_not_take_gives_a_connection_a_framer() -> None:
    async def body() -> None:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
        fast, general = Connection(server), Connection(server)
        fast.connection_made(Sink())  # type: ignore[arg-type]
        general.connection_made(Sink())  # type: ignore[arg-type]
        for _ in range(3):
            fast.data_received(HELLO)
        assert fast.framer is server_module._NO_FRAMER
        general.data_received(HELLO[:5])
        assert general.framer is not server_module._NO_FRAMER and general.framer.pending == 5
        general.data_received(HELLO[5:])
        assert server_module._NO_FRAMER.pending == 0  # the shared one is never fed

    asyncio.run(body())


# -- the idle timeout: one timer, re-armed when it fires ----------------------


class Clock:
    """The loop's time and timers, by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Clock:
        self.timers.append((when, callback))
        return self  # the handle: cancel() is all the server calls

    def cancel(self) -> None:
        self.timers.clear()

    def fire(self, at: float, *, early: bool = False) -> None:
        """Advance to ``at`` and run the one pending timer (due by then, unless ``early``)."""
        assert len(self.timers) == 1
        when, callback = self.timers.pop()
        assert early or when <= at
        self.now = at
        callback()


@pytest.fixture
def idle_server() -> tuple[Server, Clock]:
    server = Server(RequestHandler(), socket.socket(socket.AF_UNIX), idle_timeout=10)
    clock = Clock()
    server._start_idle_timer(clock)  # type: ignore[arg-type]
    return server, clock


def test_idle_timeout_with_nobody_connected_shuts_down_when_due(idle_server: tuple[Server, Clock]) -> None:
    server, clock = idle_server
    assert clock.timers[0][0] == 10
    clock.fire(10)
    assert server.stopping


def test_idle_timeout_counts_from_when_the_last_client_left(idle_server: tuple[Server, Clock]) -> None:
    server, clock = idle_server

    async def body() -> None:
        connections = [Connection(server) for _ in range(50)]
        clock.now = 3
        for connection in connections:  # 50 sessions: no timer armed or cancelled for any of them
            connection.connection_made(Sink())  # type: ignore[arg-type]
            connection.data_received(HELLO)
        assert len(clock.timers) == 1
        clock.fire(10)  # clients connected: not idle, look again a timeout later
        assert not server.stopping and clock.timers[0][0] == 20
        clock.now = 15
        for connection in connections:
            connection.connection_lost(None)
        assert len(clock.timers) == 1
        clock.fire(20)  # the last left at 15: due at 25
        assert not server.stopping and clock.timers[0][0] == 25
        clock.fire(24.9995, early=True)  # a rounding early: not yet, and no spin (at least a millisecond on)
        assert not server.stopping and clock.timers[0][0] == pytest.approx(25.0005)
        clock.fire(25.001)
        assert server.stopping

    asyncio.run(body())


def test_no_idle_timeout_arms_no_timer() -> None:
    server = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
    clock = Clock()
    server._start_idle_timer(clock)  # type: ignore[arg-type]
    assert clock.timers == []


def test_stopping_with_nobody_connected_is_idle_at_once_and_with_clients_once_they_leave() -> None:
    async def body() -> None:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX), shutdown_grace=60)
        connection = Connection(server)
        connection.connection_made(Sink())  # type: ignore[arg-type]
        server.request_shutdown("test")
        assert not server._idle.is_set()
        connection.connection_lost(None)
        assert server._idle.is_set()
        server.close_socket()

        alone = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
        alone.request_shutdown("test")
        assert alone._idle.is_set()
        alone.close_socket()

    asyncio.run(body())

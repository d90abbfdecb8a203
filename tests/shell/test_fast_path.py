"""The server's fast path: one whole short message in one read (issue 17).

In process, with a transport that keeps what is written: the fast path and
the general path (a message with a "#" of its own, two messages in one read,
a message in two reads) give the same replies, the same request counts, and
leave nothing counted against the buffer budget.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.metrics import Metrics
from pylvmetad.shell.server import Connection, Server
from pylvmetad.wire.framing import TERMINATOR


class Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.unsent = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


HELLO = b'request="hello"\n' + TERMINATOR
HASHED = b'request="hello"\nnote="#1"\n' + TERMINATOR


def run(reads: list[bytes], *, unsent: int = 0, max_buffered: int = 1 << 20) -> tuple[Server, Metrics, Sink]:
    async def body() -> tuple[Server, Metrics, Sink]:
        handler = RequestHandler()
        metrics = Metrics(handler.state)
        server = Server(handler, socket.socket(socket.AF_UNIX), observer=metrics.observer, max_buffered=max_buffered)
        metrics.attach_server(server)
        sink = Sink()
        sink.unsent = unsent
        connection = Connection(server)
        connection.connection_made(sink)  # type: ignore[arg-type]
        for data in reads:
            connection.data_received(data)
        return server, metrics, sink

    return asyncio.run(body())


def test_fast_and_general_paths_answer_and_count_alike() -> None:
    fast = run([HELLO, HELLO])
    general = run([HASHED, HELLO + HELLO[:5], HELLO[5:]])
    for server, _metrics, sink in (fast, general):
        assert all(reply.startswith(b'response = "OK"') for reply in sink.written)
        assert server.buffered == 0
        assert server.stats.bytes_out == sum(map(len, sink.written))
    assert len(fast[2].written) == 2 and len(general[2].written) == 3
    assert fast[1].snapshot().requests["hello"].count == 2
    assert general[1].snapshot().requests["hello"].count == 3
    assert fast[2].written[0] == general[2].written[0]


def test_fast_path_counts_unsent_replies_against_the_budget() -> None:
    server, _, sink = run([HELLO], unsent=5000)
    assert len(sink.written) == 1
    assert server.buffered == 5000  # what the transport still holds


def test_fast_path_drops_replies_over_the_budget() -> None:
    server, _, sink = run([HELLO], unsent=5000, max_buffered=4096)
    assert len(sink.written) == 1 and server.stats.over_budget == 1


def test_a_read_that_would_pass_the_budget_takes_the_general_path_and_is_refused() -> None:
    big = b'request="hello"\nx="' + b"y" * 5000 + b'"\n' + TERMINATOR
    server, _, sink = run([big], max_buffered=4096)
    assert server.stats.over_budget == 1
    assert b"daemon buffer budget exceeded" in sink.written[0]


def test_wire_logging_follows_level_changes_between_requests(caplog: pytest.LogCaptureFixture) -> None:
    """The WIRE check is memoised by logging itself; each level change is seen by the next request."""
    from pylvmetad.shell.logs import WIRE

    async def body() -> list[int]:
        handler = RequestHandler()
        server = Server(handler, socket.socket(socket.AF_UNIX))
        connection = Connection(server)
        connection.connection_made(Sink())  # type: ignore[arg-type]
        seen = []
        for level in (logging.INFO, WIRE, logging.INFO, WIRE):
            caplog.set_level(level, logger="pylvmetad")
            caplog.clear()
            connection.data_received(HELLO)
            seen.append(sum(r.levelno == WIRE and r.getMessage().startswith(("<- ", "-> ")) for r in caplog.records))
        return seen

    assert asyncio.run(body()) == [0, 2, 0, 2]

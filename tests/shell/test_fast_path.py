"""The server's fast path: one whole short message in one read (issue 17).

In process, with a transport that keeps what is written: the fast path and
the general path (a message with a "#" of its own, two messages in one read,
a message in two reads) give the same replies, the same request counts, and
leave nothing counted against the buffer budget.  The fast path's one flag
(``Connection.quiet``) is what it sums up after any sequence of reads, pauses
and deferred replies, and every quiet whole read takes the fast path; what
the fast path frees asks for a trim as the general path's does.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.metrics import Metrics
from pylvmetad.shell import server as server_module
from pylvmetad.shell.server import Connection, DeferredReply, Peer, Server
from pylvmetad.wire.framing import TERMINATOR
from pylvmetad.wire.replies import Reply, ok


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


# -- the fast path's precondition, one flag (Connection.quiet) ------------------


def quiet_now(connection: Connection) -> bool:
    """What Connection.quiet sums up, counted afresh."""
    return (
        connection.admitted
        and not connection.closing
        and not connection.pending
        and not connection.framer.pending
        and connection.job is None
        and not connection.waiting
        and not connection.writing_paused
    )


EVENTS = st.lists(st.sampled_from(["whole", "hashed", "pair", "head", "tail", "pause", "resume", "unsent", "read"]))


@settings(max_examples=200, deadline=None)
@given(events=EVENTS)
def test_quiet_is_always_what_it_sums_up_and_the_fast_path_takes_every_quiet_whole_read(events: list[str]) -> None:
    async def body() -> None:
        handler = RequestHandler()
        metrics = Metrics(handler.state)
        server = Server(handler, socket.socket(socket.AF_UNIX), observer=metrics.observer)
        sink = Sink()
        connection = Connection(server)
        assert not connection.quiet  # not connected yet
        connection.connection_made(sink)  # type: ignore[arg-type]
        for event in events:
            quiet, fast_in = connection.quiet, server.stats.fast_in
            if event == "pause":
                connection.pause_writing()
            elif event == "resume":
                if connection.writing_paused:
                    connection.resume_writing()
            elif event == "unsent":
                sink.unsent += 100
            elif event == "read":
                sink.unsent = 0
            else:
                data = {"whole": HELLO, "hashed": HASHED, "pair": HELLO + HELLO, "head": HELLO[:5], "tail": HELLO[5:]}
                connection.data_received(data[event])
                if event in ("whole", "tail") and quiet:  # one whole message (the tail's is garbage: NONE)
                    assert server.stats.fast_in == fast_in + len(data[event])  # the fast path took it
                else:
                    assert server.stats.fast_in == fast_in
            assert connection.quiet == quiet_now(connection), event
            assert not connection.closing
            counted = sum(figures.count for figures in metrics.snapshot().requests.values())
            assert len(sink.written) == counted
        assert server.stats.bytes_in == server.stats.read_in + server.stats.fast_in

    asyncio.run(body())


def test_after_a_message_in_two_reads_the_next_whole_read_takes_the_fast_path() -> None:
    server, metrics, sink = run([HELLO[:5], HELLO[5:], HELLO])
    stats = server.stats
    assert (stats.read_in, stats.fast_in, stats.bytes_in) == (len(HELLO), len(HELLO), 2 * len(HELLO))
    assert len(sink.written) == 2 and metrics.snapshot().requests["hello"].count == 2


def test_a_deferred_reply_keeps_the_next_read_off_the_fast_path_until_it_is_sent() -> None:
    class Deferring:
        def __init__(self) -> None:
            self.futures: list[asyncio.Future[Reply]] = []

        def handle_message(self, text: str, peer: Peer) -> Reply | DeferredReply:
            if "wait" in text:
                self.futures.append(asyncio.get_running_loop().create_future())
                return DeferredReply(self.futures[-1])
            return ok("hello")

        def peer_gone(self, peer: Peer) -> None:
            pass

    async def body() -> None:
        handler = Deferring()
        server = Server(handler, socket.socket(socket.AF_UNIX))
        sink = Sink()
        connection = Connection(server)
        connection.connection_made(sink)  # type: ignore[arg-type]
        connection.data_received(b'request="wait"\n' + TERMINATOR)
        assert connection.waiting and not connection.quiet
        connection.data_received(HELLO)  # waits behind the deferred reply
        assert server.stats.fast_in == len(b'request="wait"\n' + TERMINATOR) and sink.written == []
        handler.futures[0].set_result(ok("wait"))
        await asyncio.sleep(0)  # one turn of the loop: the future's callback
        assert [w.split(b"\n")[0] for w in sink.written] == [b'response = "OK"'] * 2
        assert connection.quiet
        connection.data_received(HELLO)
        assert server.stats.fast_in == len(b'request="wait"\n' + TERMINATOR) + len(HELLO)

    asyncio.run(body())


def test_the_fast_paths_freed_bytes_ask_for_a_trim_once_they_reach_trim_after(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(server_module, "TRIM_AFTER", 10 * len(HELLO))
    monkeypatch.setattr(server_module, "release_free_memory", lambda: trims.append(1))

    async def body() -> None:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
        connection = Connection(server)
        connection.connection_made(Sink())  # type: ignore[arg-type]
        for _ in range(9):
            connection.data_received(HELLO)
        assert not server._trim_scheduled
        connection.data_received(HELLO)  # the tenth: 10 * len(HELLO) freed
        assert server._trim_scheduled
        connection.data_received(HELLO)
        await asyncio.sleep(0)
        assert trims == [1] and not server._trim_scheduled
        # what the general path frees counts too: a message of 121 bytes in two reads, then the fast path's
        long = b'request="hello"\nx="' + b"y" * 100 + b'"\n' + TERMINATOR
        assert len(long) - len(TERMINATOR) == 121
        connection.data_received(long[:5])
        connection.data_received(long[5:])
        assert connection.quiet and not server._trim_scheduled
        for _ in range(3):
            connection.data_received(HELLO)
        assert not server._trim_scheduled  # 121 + 3 * 20 freed
        connection.data_received(HELLO)  # 121 + 4 * 20 >= 200
        assert server._trim_scheduled
        await asyncio.sleep(0)
        assert trims == [1, 1]

    asyncio.run(body())


def test_once_the_grace_is_over_a_busy_connection_is_answered_then_closed() -> None:
    """Draining takes every connection off the fast path: the general path closes it once answered."""

    class ClosingSink(Sink):
        closed = False

        def close(self) -> None:
            self.closed = True

    async def body() -> None:
        server = Server(RequestHandler(), socket.socket(socket.AF_UNIX))
        busy, idle = ClosingSink(), ClosingSink()
        connection = Connection(server)
        connection.connection_made(busy)  # type: ignore[arg-type]
        Connection(server).connection_made(idle)  # type: ignore[arg-type]
        connection.data_received(HELLO[:5])
        server._end_grace()
        assert idle.closed and not busy.closed and not connection.quiet
        connection.data_received(HELLO[5:])
        assert len(busy.written) == 1 and busy.closed
        assert server.stats.fast_in == 0  # nothing took the fast path

    asyncio.run(body())

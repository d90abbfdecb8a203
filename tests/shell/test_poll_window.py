"""The poll window: the loop polls for ``window`` seconds after the last activity, then sleeps.

The window itself with a fake loop and a fake clock (it closes exactly a
window after the last activity it saw, never keeps more than one turn
pending, and stops for good on shutdown); then a real server on a socket:
a request opens the window, the reply is unchanged, and the window closes
by itself once the client is quiet (waited on with the close callback, no
sleep).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.cli import main as pylvmetad_main
from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.shell.pollwindow import BACKOFF_MAX, BACKOFF_RESET, BACKOFF_START, MAX_POLL_WINDOW, PREEMPTED, PollWindow
from pylvmetad.shell.server import Server
from pylvmetad.shell.sockets import bind_unix_socket
from pylvmetad.wire.framing import TERMINATOR


class FakeLoop:
    """call_soon into a list; the clock and the activity count are set by the test."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], None]] = []
        self.now = 100.0
        self.activity = 0

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.ready.append(callback)

    def turn(self) -> None:
        """One turn of the loop: run what was ready when it began."""
        ready, self.ready = self.ready, []
        for callback in ready:
            callback()


def window(loop: FakeLoop, seconds: float = 0.001) -> PollWindow:
    return PollWindow(seconds, lambda: loop.activity, loop.call_soon, clock=lambda: loop.now)


def test_it_polls_until_a_window_passes_with_no_activity_then_stops() -> None:
    loop = FakeLoop()
    poll = window(loop)
    closed: list[float] = []
    poll.on_close = lambda: closed.append(loop.now)
    poll.wake()
    assert poll.open and len(loop.ready) == 1
    for _ in range(5):
        loop.now += 0.0001
        loop.turn()
        assert poll.open and len(loop.ready) == 1  # still inside the window: one turn pending, never more
    loop.now = 100.0 + 0.001
    loop.turn()
    assert not poll.open and loop.ready == [] and closed == [100.001]
    assert poll.windows == 1 and poll.turns == 6


def test_activity_extends_the_window_and_a_wake_while_open_changes_nothing() -> None:
    loop = FakeLoop()
    poll = window(loop, 0.0004)
    poll.wake()
    loop.now += 0.0003
    loop.activity += 1  # a request was read
    poll.wake()  # the server does not call it while open, but it must be harmless
    assert len(loop.ready) == 1 and poll.windows == 1
    loop.turn()  # sees the activity at 100.0003: open until 100.0007
    loop.now = 100.00065
    loop.turn()
    assert poll.open
    loop.now = 100.0007
    loop.turn()
    assert not poll.open and loop.ready == []
    poll.wake()  # the next request opens it again
    assert poll.open and poll.windows == 2 and len(loop.ready) == 1


def test_stop_ends_it_at_the_next_turn_and_for_good() -> None:
    loop = FakeLoop()
    poll = window(loop)
    poll.wake()
    poll.stop()
    loop.turn()
    assert not poll.open and loop.ready == []
    poll.wake()
    assert not poll.open and loop.ready == []


def test_a_late_turn_with_nothing_done_suspends_polling_with_a_doubling_back_off() -> None:
    loop = FakeLoop()
    poll = window(loop, 0.005)
    backoffs: list[float] = []
    for _ in range(8):
        loop.now = max(loop.now, poll.resume_at)
        poll.wake()
        assert poll.open
        loop.now += PREEMPTED * 1.01  # the thread was off the CPU: the other CPUs' work ran instead
        loop.turn()
        assert not poll.open and loop.ready == []
        backoffs.append(poll.backoff)
        poll.wake()  # suspended: the next request is read after a sleep, as without a window
        assert not poll.open and loop.ready == []
    assert backoffs[:3] == [BACKOFF_START, 2 * BACKOFF_START, 4 * BACKOFF_START]
    assert max(backoffs) == BACKOFF_MAX and poll.preemptions == 8
    # a window that closes normally leaves the back-off as it is ...
    loop.now = poll.resume_at
    poll.wake()
    while poll.open:  # turns come every 0.4 ms until the window has passed
        loop.now += 0.0004
        loop.turn()
    assert poll.backoff == BACKOFF_MAX and poll.preemptions == 8
    # ... and a preemption long after the last one starts it again from the beginning
    loop.now += BACKOFF_RESET
    poll.wake()
    loop.now += PREEMPTED * 1.01
    loop.turn()
    assert poll.backoff == BACKOFF_START and poll.preemptions == 9


def test_a_late_turn_after_work_is_not_a_preemption() -> None:
    loop = FakeLoop()
    poll = window(loop)
    poll.wake()
    loop.now += 0.01  # a long request was answered in that turn of the loop
    loop.activity += 1
    loop.turn()
    assert poll.open and poll.preemptions == 0 and poll.resume_at == 0


@pytest.mark.parametrize("seconds", [0, -1e-6, MAX_POLL_WINDOW * 2])
def test_a_window_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="poll window"):
        window(FakeLoop(), seconds)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.booleans(), st.booleans()), max_size=60))
def test_it_is_open_exactly_while_within_a_window_of_the_last_activity(
    steps: list[tuple[int, bool, bool]],
) -> None:
    """Each step: advance the clock (µs), maybe some activity (and a wake, as the server does), a turn.

    (Steps stay below PREEMPTED: the back-off has tests of its own.)
    """
    assert PREEMPTED > 400e-6
    loop = FakeLoop()
    poll = window(loop, 0.001)
    last: float | None = None  # when the window last saw activity (or was opened)
    for advance, active, wakes in steps:
        loop.now += advance * 1e-6
        if active:
            loop.activity += 1
            if wakes and not poll.open:
                poll.wake()
                last = loop.now
        was_open = poll.open
        loop.turn()
        assert len(loop.ready) == (1 if poll.open else 0)
        if was_open:
            assert last is not None
            if active:
                last = loop.now
            assert poll.open == (loop.now < last + 0.001)


def test_a_server_opens_the_window_on_a_request_and_it_closes_by_itself(tmp_path: Path) -> None:
    path = str(tmp_path / "s")

    async def body() -> tuple[bytes, int, int, bool]:
        server = Server(RequestHandler(), bind_unix_socket(path), socket_path=path, poll_window=0.002)
        await server.start()
        assert server.poll is not None and not server.poll.open
        closed = asyncio.Event()
        server.poll.on_close = closed.set
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'request = "hello"\n' + TERMINATOR)
        reply = await reader.readuntil(TERMINATOR)
        await asyncio.wait_for(closed.wait(), 10)
        windows, turns, still_open = server.poll.windows, server.poll.turns, server.poll.open
        writer.close()
        await writer.wait_closed()
        server.request_shutdown("test")
        await server.serve_until_stopped()
        return reply, windows, turns, still_open

    reply, windows, turns, still_open = asyncio.run(body())
    assert reply.startswith(b'response = "OK"')
    assert windows >= 1 and turns >= 1 and not still_open


def test_without_a_window_the_server_has_no_poll(tmp_path: Path) -> None:
    path = str(tmp_path / "s")

    async def body() -> object:
        server = Server(RequestHandler(), bind_unix_socket(path), socket_path=path)
        await server.start()
        poll = server.poll
        server.close_socket()
        return poll

    assert asyncio.run(body()) is None


def test_the_daemon_refuses_a_window_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert pylvmetad_main(["-f", "--poll-window", str(round(MAX_POLL_WINDOW * 1e6) + 1)]) == 1
    assert "--poll-window must be between 0 and" in capsys.readouterr().err

"""The garbage collector is paused while a long message is handled, and only then (issue 17).

A full collection walks every live tree; with a message of millions of keys
that is a 10-20 ms pause in one piece.  ``process.collector_paused`` keeps
the collector off for the duration of a stepped job; these tests check the
pause is counted, restores what was there, and ends with the job however
the job ends (answered, or its client gone in the middle).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Generator, Iterator

import pytest

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.shell.process import collector_paused
from pylvmetad.shell.server import STEP_THRESHOLD, Peer
from pylvmetad.wire.framing import TERMINATOR
from pylvmetad.wire.replies import Reply
from shell.test_server_steps import read_reply, serve

LONG = b'request = "hello"\nx = [' + b",".join([b"1"] * (STEP_THRESHOLD // 2 + 1000)) + b"]\n" + TERMINATOR


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was:
            gc.disable()


def test_paused_inside_on_after_and_nested_pauses_are_counted() -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer job still runs
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    gc.enable()


def test_an_abandoned_generator_ends_its_pause() -> None:
    def job() -> Generator[None, None, None]:
        with collector_paused():
            yield
            yield

    steps = job()
    next(steps)
    assert not gc.isenabled()
    steps.close()
    assert gc.isenabled()


class Recording:
    """lvmetad's handler; records whether the collector ran at each step of a long message."""

    def __init__(self, hold: int = 0) -> None:
        self.inner = RequestHandler()
        self.enabled: list[bool] = []
        self.hold = hold  # extra loop turns the first step is held for
        self.begun = asyncio.Event()
        self.ended = asyncio.Event()

    def handle_message(self, text: str, peer: Peer) -> Reply:
        return self.inner.handle_message(text, peer)

    def peer_gone(self, peer: Peer) -> None:
        pass

    def message_steps(self, text: str, peer: Peer) -> Generator[None, None, Reply]:
        try:
            steps = self.inner.message_steps(text, peer)
            while True:
                self.enabled.append(gc.isenabled())
                try:
                    next(steps)
                except StopIteration as done:
                    reply: Reply = done.value
                    return reply
                self.begun.set()
                for _ in range(self.hold):
                    yield
                self.hold = 0
                yield
        finally:
            self.ended.set()


def test_a_long_message_is_handled_with_the_collector_paused() -> None:
    handler = Recording()

    async def client(path: str) -> None:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        writer.write(LONG)
        assert b'response = "OK"' in await read_reply(reader)
        writer.close()
        await writer.wait_closed()

    asyncio.run(serve(handler, client))
    assert len(handler.enabled) >= 2 and not any(handler.enabled)
    assert gc.isenabled()


def test_a_client_gone_in_the_middle_ends_the_pause_with_its_job() -> None:
    # The server pauses reading a connection while one of its messages is a
    # job, so a client's hang-up is seen when the job ends, not before: the
    # job is held a bounded number of loop turns, the client goes meanwhile,
    # and the pause must end with the job all the same.
    handler = Recording(hold=2000)

    async def client(path: str) -> None:
        _, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        writer.write(LONG)
        await asyncio.wait_for(handler.begun.wait(), 30)
        assert not gc.isenabled()
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(handler.ended.wait(), 30)
        assert gc.isenabled()

    asyncio.run(serve(handler, client))
    assert gc.isenabled()

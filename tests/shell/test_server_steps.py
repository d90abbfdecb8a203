"""A huge message or reply costs its own connection, not everyone's (issue 17).

The server handles a message longer than ``STEP_THRESHOLD`` as a job the
event loop advances a bounded step per turn, so another client's ``hello``
is answered while the long message is still being parsed.  Ordering is
proved with events, not timing: the handler below wraps lvmetad's real one
and, once the long message's parse has begun, holds it (yielding, without
progress) until the other client has its reply.  A server that ran the
parse in one go could never give the other client a turn, so the long
reply would come first and the test fails.

~2 s (a 2 MB message through the real parser, in steps).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Generator

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.shell.server import STEP_THRESHOLD, Peer, Server
from pylvmetad.shell.sockets import bind_unix_socket
from pylvmetad.wire.framing import TERMINATOR
from pylvmetad.wire.replies import Reply, ok

HELLO = b'request = "hello"\n' + TERMINATOR


class HeldHandler:
    """lvmetad's handler; a long message's parse waits, once begun, for ``release``."""

    def __init__(self) -> None:
        self.inner = RequestHandler()
        self.begun = asyncio.Event()
        self.release = asyncio.Event()
        self.events: list[str] = []
        self.steps = 0

    def handle_message(self, text: str, peer: Peer) -> Reply:
        return self.inner.handle_message(text, peer)

    def peer_gone(self, peer: Peer) -> None:
        pass

    def message_steps(self, text: str, peer: Peer) -> Generator[None, None, Reply]:
        steps = self.inner.message_steps(text, peer)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                self.events.append("long message answered")
                reply: Reply = done.value
                return reply
            self.steps += 1
            self.begun.set()
            spins = 0
            while not self.release.is_set() and spins < 100_000:  # bounded: a stalling server just spins through
                spins += 1
                yield
            yield


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(TERMINATOR)


async def serve(handler: object, body: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s")
        server = Server(handler, bind_unix_socket(path), socket_path=path)  # type: ignore[arg-type]
        await server.start()
        try:
            await body(path)  # type: ignore[operator]
        finally:
            server.request_shutdown("test over")
            server.request_shutdown("test over")
            server.close_socket()


def test_a_huge_message_does_not_stall_another_clients_hello() -> None:
    handler = HeldHandler()
    long_message = b'request = "hello"\nx = [' + b",".join([b"1"] * 1_000_000) + b"]\n" + TERMINATOR
    assert len(long_message) > 4 * STEP_THRESHOLD

    async def clients(path: str) -> None:
        long_reader, long_writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        long_writer.write(long_message)
        long_reply = asyncio.ensure_future(read_reply(long_reader))
        begun = asyncio.ensure_future(handler.begun.wait())
        await asyncio.wait([long_reply, begun], return_when=asyncio.FIRST_COMPLETED)
        assert not long_reply.done(), "the long message was answered before its parse yielded once"
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        writer.write(HELLO)
        reply = await read_reply(reader)
        handler.events.append("hello answered")
        handler.release.set()
        assert b'response = "OK"' in reply
        assert b'response = "OK"' in await long_reply
        for w in (writer, long_writer):
            w.close()
            await w.wait_closed()

    asyncio.run(serve(handler, clients))
    assert handler.events == ["hello answered", "long message answered"]
    assert handler.steps >= 4  # the parse itself went in several steps


class BigReplies:
    """Replies to ``big`` with a long body (written in steps), to anything else with OK."""

    def __init__(self, size: int) -> None:
        self.body = "".join(f"line{i}={i}\n" for i in range(size // 12))

    def handle_message(self, text: str, peer: Peer) -> Reply:
        if "big" in text:
            return Reply(self.body, "big", "OK")
        return ok("hello")

    def peer_gone(self, peer: Peer) -> None:
        pass


def test_a_long_reply_is_written_whole_and_in_order() -> None:
    handler = BigReplies(4 * STEP_THRESHOLD)

    async def clients(path: str) -> None:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        writer.write(b'request = "big"\n' + TERMINATOR + HELLO)  # pipelined: the hello waits its turn
        big = await read_reply(reader)
        assert big == handler.body.encode() + TERMINATOR
        assert b'response = "OK"' in await read_reply(reader)
        writer.close()
        await writer.wait_closed()

    asyncio.run(serve(handler, clients))

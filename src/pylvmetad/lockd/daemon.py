"""The daemon side of pylvmlockd: requests off the shared server shell into the core.

Rules of this module:

* The shell (:mod:`pylvmetad.shell.server`) frames bytes and calls
  :meth:`LockdHandler.handle_message`; ``hello``, ``quit``, ``info`` and
  ``dump`` are answered here at once (§2.3), everything else goes to the
  core, whose reply usually waits on the lock manager: it is handed back as
  a :class:`~pylvmetad.shell.server.DeferredReply`, so that connection
  answers nothing else meanwhile (one request at a time, §1.5) while every
  other connection is served.
* A connection is a client id (the shell's connection serial): locks
  belong to it and go when it closes (§1.7).
* ``info``/``dump`` text goes out after the reply as datagrams to
  lvmlockctl's abstract socket ``\\0lvmlockd-dump.sock`` (§3.19).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from ..shell.server import DeferredReply, Peer
from ..wire.codec import ParseError, parse
from ..wire.replies import Reply
from . import protocol as P
from .core import Lockd

log = logging.getLogger("pylvmlockd")

DUMP_SOCKET = b"\0lvmlockd-dump.sock"
DUMP_CHUNK = 65536
DUMP_MAX = 1 << 20


class LockdHandler:
    def __init__(self, lockd: Lockd, *, quit: Callable[[], None] | None = None) -> None:
        self.lockd = lockd
        self.quit = quit

    def handle_message(self, text: str, peer: Peer) -> Reply | DeferredReply:
        try:
            tree = parse(text)
        except ParseError:
            # lvmlockd leaves such a client without a reply; we may say "bad request" (§11 quirk 1)
            return Reply(P.standard_reply(0, "none", P.EINVAL, 0, "none"), "NONE", "OK")
        name = tree.get_str("request") or ""
        if name == "hello":
            return Reply(P.hello_reply(0), name, "OK")
        if name == "quit":
            if self.lockd.lockspaces:
                return Reply(P.hello_reply(P.EBUSY), name, "OK")
            if self.quit is not None:
                asyncio.get_running_loop().call_soon(self.quit)
            return Reply(P.hello_reply(0), name, "OK")
        if name in ("info", "dump"):
            return self.dump(name)
        req = P.parse_request(tree)
        if req is None:
            return Reply(P.standard_reply(0, "none", P.EINVAL, 0, "none"), name or "NONE", "OK")
        reply_text = self.lockd.submit(req, peer.connection & 0xFFFFFFFF)
        if reply_text.done():
            return Reply(reply_text.result(), name, "OK")
        out: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def done(future: asyncio.Future[str]) -> None:
            if out.done():
                return
            if future.cancelled():
                out.cancel()
            else:
                out.set_result(Reply(future.result(), name, "OK"))

        reply_text.add_done_callback(done)
        return DeferredReply(out)

    def peer_gone(self, peer: Peer) -> None:
        self.lockd.client_gone(peer.connection & 0xFFFFFFFF)

    def dump(self, name: str) -> Reply:
        text = self.lockd.info_text() if name == "info" else self.lockd.dump_text()
        data = text.encode(errors="replace")
        result = 0
        if len(data) > DUMP_MAX:
            data, result = data[:DUMP_MAX], P.ENOSPC
        asyncio.get_running_loop().call_soon(send_dump, data)
        return Reply(P.dump_reply(result, len(data)), name, "OK")


def send_dump(data: bytes) -> None:
    """The text, in datagrams of at most 64 KiB, to the bound lvmlockctl (dropped if none listens)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        for start in range(0, len(data), DUMP_CHUNK):
            sock.sendto(data[start : start + DUMP_CHUNK], DUMP_SOCKET)

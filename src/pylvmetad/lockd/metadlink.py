"""pylvmlockd's link to the local lvmetad (§5.4): one connection, reconnected on demand.

Rules of this module:

* Exactly what lvmlockd sends: ``set_vg_info`` and ``set_global_info``
  (simple formatter, ``token = "skip"``, no pid, no cmd), plus the
  ``vg_lookup`` that finds the lease LV on its PV (:mod:`.leasemap`).
* Nothing here may fail a lock request: an lvmetad that is not running,
  refuses or breaks the connection is logged and the message dropped, as
  lvmlockd does.  A broken connection is reopened and the message resent
  up to twice.
* Uses the package's transport (:mod:`pylvmetad.rpc`), not lvmetad's typed
  client: the layers contract keeps lockd and metad independent.
"""

from __future__ import annotations

import asyncio
import logging

from ..rpc import AsyncTransport, DaemonError
from ..wire.codec import ParseError, Section, parse, quote
from ..wire.framing import encode_request

log = logging.getLogger("pylvmlockd")

DEFAULT_LVMETAD_SOCKET = "/run/lvm/lvmetad.socket"
#: lvmlockd waits for lvmetad without limit; we stop waiting after this long
REPLY_TIMEOUT = 30.0


def _message(request: str, *fields: tuple[str, str | int]) -> str:
    lines = [f"request = {quote(request)}"]
    for key, value in fields:
        lines.append(f"{key} = {quote(value) if isinstance(value, str) else value}")
    return "\n".join(lines) + "\n"


class LvmetadLink:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.transport = AsyncTransport(socket_path, daemon="lvmetad")
        self.lock = asyncio.Lock()
        self.sent = 0

    async def call(self, request: str, *fields: tuple[str, str | int]) -> Section | None:
        """Send one message; its parsed reply, or None when lvmetad could not be reached."""
        data = encode_request(_message(request, *fields))
        async with self.lock:
            for _attempt in range(3):
                try:
                    if not self.transport.connected:
                        await self.transport.open(5.0)
                        await self.transport.exchange(encode_request(_message("hello")), REPLY_TIMEOUT)
                    text = await self.transport.exchange(data, REPLY_TIMEOUT)
                except DaemonError as exc:
                    self.transport.abort()
                    log.debug("lvmetad at %s: %s", self.socket_path, exc)
                    continue
                self.sent += 1
                try:
                    reply = parse(text)
                except ParseError:
                    log.warning("lvmetad %s: unreadable reply", request)
                    return None
                if reply.get_str("response") != "OK":
                    log.warning("lvmetad %s: %s", request, reply.get_str("reason") or reply.get_str("response"))
                return reply
            log.debug("lvmetad %s dropped: %s not reachable", request, self.socket_path)
            return None

    async def set_vg_info(self, uuid: str, name: str, version: int) -> bool:
        """Whether lvmetad got it (False: not reachable, dropped)."""
        fields = (("token", "skip"), ("uuid", uuid), ("name", name), ("version", version))
        return await self.call("set_vg_info", *fields) is not None

    async def set_global_invalid(self) -> bool:
        """Whether lvmetad got it (False: not reachable, dropped)."""
        return await self.call("set_global_info", ("token", "skip"), ("global_invalid", 1)) is not None

    async def close(self) -> None:
        await self.transport.close()

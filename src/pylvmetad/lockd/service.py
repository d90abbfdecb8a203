"""The running pylvmlockd: the core, the lock manager, the server, the stop rule.

Rules of this module:

* Imported by :mod:`.cli`'s serving coroutine, once the pid file is held and
  the socket listens: asyncio, the core and the sanlock binding are imported
  here, never by :mod:`.cli` (docs/architecture.md, "Start-up").
* :func:`serve` returns the exit status; the pid file stays the caller's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from ..shell.server import Server
from ..shell.startup import Launch
from . import protocol as P
from .core import Lockd
from .daemon import LockdHandler
from .leasemap import pv_locator
from .manager import LockManager
from .memory import SharedDisk
from .metadlink import LvmetadLink
from .sanlock import SanlockManager, dm_locator


async def serve(args: argparse.Namespace, launch: Launch, *, metad_path: str) -> int:
    log = logging.getLogger("pylvmlockd")
    metad = LvmetadLink(metad_path)
    lm: LockManager
    if args.test:
        lm = SharedDisk().host(args.host_id or 1)
    else:
        locator = pv_locator(metad) if args.lease_device == "pv" else dm_locator
        lm = SanlockManager(io_timeout=args.io_timeout, locator=locator, killpath=args.killpath)
    lockd = Lockd(
        lm,
        metad,
        gl_type=P.LM_SANLOCK if args.gl_type == "sanlock" else None,
        host_id=args.host_id,
        host_id_file=args.host_id_file,
    )
    await lockd.probe()
    server: Server | None = None

    def quit_now() -> None:
        assert server is not None
        server.request_shutdown("quit")

    handler = LockdHandler(lockd, quit=quit_now)
    server = Server(handler, launch.sock, socket_path=launch.socket_path, shutdown_grace=0.5)
    loop = asyncio.get_running_loop()
    shutdowns: list[asyncio.Task[None]] = []

    def stop(name: str) -> None:
        busy = [ls for ls in lockd.lockspaces.values() if ls.holds_locks(lv_only=False)]
        if busy:
            log.warning("%s: ignore shutdown for %d lockspaces holding locks", name, len(busy))
            return
        shutdowns.append(loop.create_task(_shutdown(lockd, server, name)))

    def started() -> bool:
        lockd.note("lvmlockd started")
        return True

    await launch.serve(server, stop=stop, started=started)
    await lockd.close()
    await metad.close()
    return 0


async def _shutdown(lockd: Lockd, server: Server, reason: str) -> None:
    await lockd.close()
    server.request_shutdown(reason)

"""The running pylvmlockd: the core, the lock manager, the server, the signals.

Rules of this module:

* Imported by :mod:`.cli` only once the pid file is held and the socket
  listens (see there): everything heavy -- asyncio, the core, the sanlock
  binding -- is imported here, never by :mod:`.cli` itself.
* :func:`run` returns the exit status; the pid file stays the caller's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

from .. import __version__
from ..shell.process import install_loop_signal_handlers
from ..shell.server import Server
from . import protocol as P
from .core import Lockd
from .daemon import LockdHandler
from .leasemap import pv_locator
from .manager import LockManager
from .memory import SharedDisk
from .metadlink import LvmetadLink
from .sanlock import SanlockManager, dm_locator


def run(
    args: argparse.Namespace, sock: socket.socket, *, socket_path: str | None, metad_path: str, on_ready: object
) -> int:
    """Serve on the listening ``sock`` until stopped; the exit status."""
    return asyncio.run(_run(args, sock, socket_path=socket_path, metad_path=metad_path, on_ready=on_ready))


async def _run(
    args: argparse.Namespace, sock: socket.socket, *, socket_path: str | None, metad_path: str, on_ready: object
) -> int:
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
    server = Server(handler, sock, socket_path=socket_path, shutdown_grace=0.5)
    loop = asyncio.get_running_loop()
    shutdowns: list[asyncio.Task[None]] = []

    def stop(name: str) -> None:
        busy = [ls for ls in lockd.lockspaces.values() if ls.holds_locks(lv_only=False)]
        if busy:
            log.warning("%s: ignore shutdown for %d lockspaces holding locks", name, len(busy))
            return
        shutdowns.append(loop.create_task(_shutdown(lockd, server, name)))

    install_loop_signal_handlers(loop, stop, lambda name: log.info("%s received and ignored", name))
    await server.start()
    lockd.note("lvmlockd started")
    log.info("pylvmlockd %s (pid %d) serving %s", __version__, os.getpid(), socket_path)
    if callable(on_ready):
        on_ready()
    await server.serve_until_stopped()
    await lockd.close()
    await metad.close()
    return 0


async def _shutdown(lockd: Lockd, server: Server, reason: str) -> None:
    await lockd.close()
    server.request_shutdown(reason)

"""The running pylvmlockd: the core, the lock manager, the server, the stop rule.

Rules of this module:

* Imported by :mod:`.cli`'s serving coroutine, once the pid file is held and
  the socket listens: asyncio, the core and the sanlock binding are imported
  here, never by :mod:`.cli` (docs/architecture.md, "Start-up").
* :func:`serve` returns the exit status; the pid file stays the caller's.
* With ``-A 1`` the adopt file is read and the core adopts what it lists
  before the server accepts anyone (§8.6); from then on
  :class:`AdoptFileWriter` keeps the file equal to the core's table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from ..shell.server import Server
from ..shell.startup import Launch
from . import protocol as P
from .adopt import parse, render
from .core import Lockd
from .daemon import LockdHandler
from .leasemap import pv_locator
from .manager import LockManager
from .memory import SharedDisk
from .metadlink import LvmetadLink
from .metrics import Metrics
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
    if args.adopt:
        try:
            with open(args.adopt_file, encoding="utf-8", errors="replace") as f:
                table = parse(f.read())
        except FileNotFoundError:
            log.warning("adopt: no %s, nothing to adopt", args.adopt_file)
        except OSError as exc:
            log.warning("adopt: cannot read %s: %s", args.adopt_file, exc)
        else:
            adopted = await lockd.adopt(table)
            log.warning("adopt: %d lockspaces, %d LV locks adopted", len(lockd.lockspaces), max(adopted, 0))

    def adopt_text() -> str | None:
        table = lockd.adopt_table()
        return render(table, os.getpid()) if table.vgs else None

    writer = AdoptFileWriter(args.adopt_file, adopt_text)
    lockd.on_change = writer.update
    if args.adopt:  # what the file listed is ours now, or gone: the file says so
        writer.last = ""
        writer.update()
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

    metrics = Metrics(lockd, server)

    def started() -> bool:
        if args.metrics_listen:
            try:
                metrics.serve_http(args.metrics_listen)
            except (OSError, ValueError) as exc:
                log.critical("cannot serve metrics on %s: %s", args.metrics_listen, exc)
                return False
        lockd.note("lvmlockd started")
        return True

    status = await launch.serve(server, stop=stop, started=started)
    metrics.stop_http()
    await lockd.close()
    await metad.close()
    return status


class AdoptFileWriter:
    """Keeps the adopt file equal to the core's table: rewritten (by rename) when it changes,
    removed when there is nothing to adopt (no lockspace), so a daemon that never starts a
    lockspace never creates it."""

    def __init__(self, path: str, text: Callable[[], str | None]) -> None:
        self.path = path
        self.text = text
        self.last: str | None = None
        self.failed = False

    def update(self) -> None:
        text = self.text()
        if text == self.last:
            return
        tmp = f"{self.path}.tmp"
        try:
            if text is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            else:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, self.path)
        except OSError as exc:
            if not self.failed:
                logging.getLogger("pylvmlockd").warning("cannot write the adopt file %s: %s", self.path, exc)
            self.failed = True
            return
        self.failed = False
        self.last = text


async def _shutdown(lockd: Lockd, server: Server, reason: str) -> None:
    await lockd.close()
    server.request_shutdown(reason)

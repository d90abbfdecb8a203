"""The running pylvmetad: the cache, its handlers, the server, metrics, signals.

Rules of this module:

* Imported by :mod:`.cli` only once the pid file is held and the socket
  listens (see there): asyncio, uvloop, the cache and the handlers are
  imported here, never by :mod:`.cli` itself.
* :func:`run` returns the exit status; the pid file stays the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from .. import __version__
from ..shell.process import (
    SignalAction,
    install_loop_signal_handlers,
    pin_malloc_mmap_threshold,
    signal_action,
    signal_name,
    use_fast_event_loop,
)
from ..shell.server import Server
from .handlers import RequestHandler
from .metrics import Metrics


def run(
    sock: socket.socket,
    *,
    socket_path: str | None,
    max_message: int,
    idle_timeout: int,
    shutdown_grace: float,
    max_buffered: int,
    allow_uids: frozenset[int] | None,
    metrics_listen: str | None,
    on_ready: object,
    early_signals: list[int],
) -> int:
    """Serve on the listening ``sock`` until stopped; the exit status."""
    pin_malloc_mmap_threshold()
    use_fast_event_loop()
    return asyncio.run(
        _run(
            sock,
            socket_path=socket_path,
            max_message=max_message,
            idle_timeout=idle_timeout,
            shutdown_grace=shutdown_grace,
            max_buffered=max_buffered,
            allow_uids=allow_uids,
            metrics_listen=metrics_listen,
            on_ready=on_ready,
            early_signals=early_signals,
        )
    )


async def _run(
    sock: socket.socket,
    *,
    socket_path: str | None,
    max_message: int,
    idle_timeout: int,
    shutdown_grace: float,
    max_buffered: int,
    allow_uids: frozenset[int] | None,
    metrics_listen: str | None,
    on_ready: object,
    early_signals: list[int],
) -> int:
    log = logging.getLogger("pylvmetad")
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    server = Server(
        handler,
        sock,
        socket_path=socket_path,
        max_message=max_message,
        idle_timeout=idle_timeout,
        shutdown_grace=shutdown_grace,
        max_buffered=max_buffered,
        allow_uids=allow_uids,
        observer=metrics.observe,
    )
    metrics.attach_server(server)
    handler.stats_provider = metrics.stats_section
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        server.request_shutdown(name)

    def note(name: str) -> None:
        log.info("%s received and ignored (README, Signals)", name)

    install_loop_signal_handlers(loop, stop, note)
    await server.start()
    for early in early_signals:
        (stop if signal_action(early) is SignalAction.STOP else note)(signal_name(early))
    if metrics_listen:
        try:
            metrics.serve_http(metrics_listen)
        except (OSError, ValueError) as exc:
            log.critical("cannot serve metrics on %s: %s", metrics_listen, exc)
            server.close_socket()
            return 1
    log.info(
        "pylvmetad %s (pid %d) serving %s",
        __version__,
        os.getpid(),
        socket_path or "a socket inherited from systemd",
    )
    if callable(on_ready):
        on_ready()
    await server.serve_until_stopped()
    metrics.stop_http()
    log.info("exiting")
    return 0

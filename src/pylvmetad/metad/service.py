"""The running pylvmetad: the cache, its handlers, the server, the metrics.

Rules of this module:

* Imported by :mod:`.cli`'s serving coroutine, once the pid file is held and
  the socket listens: the cache, the handlers and the server are imported
  here, never by :mod:`.cli` (docs/architecture.md, "Start-up").
* :func:`serve` returns the exit status; the pid file stays the caller's.
"""

from __future__ import annotations

import logging

from ..shell.server import Server
from ..shell.startup import Launch
from .handlers import RequestHandler
from .metrics import Metrics


async def serve(
    launch: Launch,
    *,
    max_message: int,
    idle_timeout: int,
    shutdown_grace: float,
    max_buffered: int,
    allow_uids: frozenset[int] | None,
    metrics_listen: str | None,
    poll_window: float = 0,
) -> int:
    log = logging.getLogger("pylvmetad")
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    server = Server(
        handler,
        launch.sock,
        socket_path=launch.socket_path,
        max_message=max_message,
        idle_timeout=idle_timeout,
        shutdown_grace=shutdown_grace,
        max_buffered=max_buffered,
        allow_uids=allow_uids,
        observer=metrics.observer,
        poll_window=poll_window,
    )
    metrics.attach_server(server)
    handler.stats_provider = metrics.stats_section

    def serve_metrics() -> bool:
        if metrics_listen:
            try:
                metrics.serve_http(metrics_listen)
            except (OSError, ValueError) as exc:
                log.critical("cannot serve metrics on %s: %s", metrics_listen, exc)
                return False
        return True

    if poll_window:
        log.debug("poll window: %d µs after each read or accept", round(poll_window * 1e6))
    status = await launch.serve(server, started=serve_metrics)
    if status:
        return status
    metrics.stop_http()
    log.info("exiting")
    return 0

"""The start-up sequence every daemon of the package runs, from its parsed options to its exit status.

Rules of this module:

* One sequence, in this order: early signal handlers (optional) → open-files
  limit → systemd's inherited socket → daemonise (unless in the
  foreground) → logging → pid file → listening socket → event loop →
  signals → serve → bounded shutdown.  A daemon's cli parses its own
  options and calls :func:`run_daemon` with the differences as parameters
  and its own serving coroutine; nothing here knows which daemon runs.
* A start-up error (pid file locked or unusable, socket in use) is logged
  as critical, echoed to stderr when asked, reported to the waiting parent
  of a daemonised child, and returned as the exit status: ``EXIT_LOCKED``
  for a pid file held by a running daemon, 1 otherwise.  The pid file is
  released on every path after it was acquired.
* :meth:`Launch.serve` is the serving part inside the event loop: STOP
  signals begin the server's bounded shutdown (or what the daemon passes
  as ``stop``), LOG signals are logged and ignored, signals remembered
  before the loop ran are acted on once it serves, and readiness is
  reported only once the socket accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from .logs import setup_logging
from .process import (
    EXIT_LOCKED,
    PidFile,
    PidFileLocked,
    SignalAction,
    StartupError,
    daemonize,
    install_early_signal_handlers,
    install_loop_signal_handlers,
    pin_malloc_mmap_threshold,
    raise_nofile_limit,
    signal_action,
    signal_name,
    use_fast_event_loop,
)
from .server import Server
from .sockets import bind_unix_socket, inherited_socket


@dataclass
class Launch:
    """What :func:`run_daemon` hands the daemon's serving coroutine."""

    #: the program's name: its logger, its log lines
    name: str
    #: the listening socket, bound (or inherited from systemd)
    sock: socket.socket
    #: its path, to unlink on exit; None when inherited (systemd owns the file)
    socket_path: str | None
    #: signals that arrived before the event loop ran, to act on once serving
    early_signals: list[int] = field(default_factory=list)
    #: tells a waiting parent (daemonised) that the child serves: b"0", or failed: b"1"
    report: Callable[[bytes], None] = lambda status: None

    async def serve(
        self,
        server: Server,
        *,
        stop: Callable[[str], None] | None = None,
        started: Callable[[], bool] | None = None,
    ) -> int:
        """Install the loop's signal handlers, serve until stopped; returns the exit status.

        ``stop`` gets a STOP signal's name (default: the server's bounded
        shutdown).  ``started`` runs once the socket accepts, before readiness
        is reported; False from it closes the socket and the daemon exits 1.
        """
        log = logging.getLogger(self.name)
        on_stop = server.request_shutdown if stop is None else stop

        def note(signame: str) -> None:
            log.info("%s received and ignored (README, Signals)", signame)

        install_loop_signal_handlers(asyncio.get_running_loop(), on_stop, note)
        await server.start()
        for early in self.early_signals:
            (on_stop if signal_action(early) is SignalAction.STOP else note)(signal_name(early))
        if started is not None and not started():
            server.close_socket()
            return 1
        log.info(
            "%s %s (pid %d) serving %s",
            self.name,
            __version__,
            os.getpid(),
            self.socket_path or "a socket inherited from systemd",
        )
        self.report(b"0")
        await server.serve_until_stopped()
        return 0


def run_daemon(
    name: str,
    serve: Callable[[Launch], Coroutine[Any, Any, int]],
    *,
    socket_path: str,
    pidfile_path: str,
    foreground: bool,
    log_levels: set[int],
    log_json: bool = False,
    echo_errors: bool = False,
    early_signals: list[int] | None = None,
    tune_runtime: bool = False,
) -> int:
    """Run a daemon from its parsed options to its exit status (the module's sequence).

    ``echo_errors``: in the foreground, print a start-up error to stderr as
    ``NAME: message`` besides logging it.  ``early_signals``: install the
    early signal handlers, remembering STOP and LOG signals in this list
    (None: the default actions until the loop runs).  ``tune_runtime``: pin
    glibc's mmap threshold and run on uvloop when installed.
    """
    if early_signals is not None:
        # a signal that arrives before the event loop runs is remembered, not fatal
        install_early_signal_handlers(early_signals.append)
    os.environ["LC_ALL"] = "C"
    raise_nofile_limit()
    inherited = inherited_socket(socket_path)
    ready = None if foreground else daemonize(name)
    setup_logging(log_levels, foreground, log_json, name=name)
    log = logging.getLogger(name)

    def report(status: bytes) -> None:
        if ready is not None:
            with contextlib.suppress(OSError):
                ready.write(status)
                ready.close()

    def refuse(exc: Exception) -> None:
        log.critical("%s", exc)
        if echo_errors and foreground:
            print(f"{name}: {exc}", file=sys.stderr)
        report(b"1")

    pidfile = PidFile(pidfile_path)
    try:
        pidfile.acquire()
    except (StartupError, OSError) as exc:
        refuse(exc)
        return EXIT_LOCKED if isinstance(exc, PidFileLocked) else 1
    try:
        try:
            sock = inherited if inherited is not None else bind_unix_socket(socket_path)
        except StartupError as exc:
            refuse(exc)
            return 1
        if tune_runtime:
            pin_malloc_mmap_threshold()
            use_fast_event_loop()
        launch = Launch(
            name,
            sock,
            None if inherited is not None else socket_path,
            early_signals if early_signals is not None else [],
            report,
        )
        return asyncio.run(serve(launch))
    finally:
        pidfile.release()

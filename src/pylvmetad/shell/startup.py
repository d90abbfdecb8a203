"""The start-up sequence every daemon of the package runs, from its parsed options to its exit status.

Rules of this module:

* One sequence, in this order: early signal handlers (optional) → open-files
  limit → systemd's inherited socket → daemonise (unless in the
  foreground) → pid file → listening socket → crash guardian → logging →
  event loop → signals → serve (the cyclic collector tuned first, when asked) →
  bounded shutdown.
* Listen first, import later: everything up to the listening socket runs
  on light modules only (this one, :mod:`.process`, :mod:`.sockets`); asyncio,
  logging and the server are imported after it, and a daemon's cli hands in a
  ``serve`` coroutine that imports the daemon's own heavy modules when it
  starts.  A client that connects meanwhile waits in the socket's backlog
  (docs/architecture.md, "Start-up").  What happens before logging is set up
  (a stale socket file removed, a start-up error) is logged right after.  A daemon's cli parses its own
  options and calls :func:`run_daemon` with the differences as parameters
  and its own serving coroutine; nothing here knows which daemon runs.
* A start-up error (pid file locked or unusable, socket in use) is logged
  as critical, echoed to stderr when asked, reported to the waiting parent
  of a daemonised child, and returned as the exit status: ``EXIT_LOCKED``
  for a pid file held by a running daemon, 1 otherwise.  The pid file is
  released on every path after it was acquired.
* The crash guardian (:mod:`.guardian`) is forked once the socket listens
  and before anything heavy is imported, unless the socket came from systemd
  (systemd owns its file) or the daemon was told not to (``--no-guardian``):
  it removes the socket and pid file if the daemon dies without doing so.
* :meth:`Launch.serve` is the serving part inside the event loop: STOP
  signals begin the server's bounded shutdown (or what the daemon passes
  as ``stop``), LOG signals are logged and ignored, signals remembered
  before the loop ran are acted on once it serves, and readiness is
  reported only once the socket accepts.  It logs which codec runs (a
  warning when the C accelerator is missing or stale and nobody asked for
  pure Python).
"""

from __future__ import annotations

import os
import sys

from .process import EXIT_LOCKED, PidFile, PidFileLocked, StartupError, daemonize, raise_nofile_limit
from .sockets import bind_unix_socket, inherited_socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing before the socket listens (mypy reads it as True)

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Coroutine
    from typing import Any

    from .server import Server


def _no_report(status: bytes) -> None:
    return None


class Launch:
    """What :func:`run_daemon` hands the daemon's serving coroutine."""

    __slots__ = ("early_signals", "name", "report", "sock", "socket_path", "tune_collector")

    def __init__(
        self,
        name: str,
        sock: socket.socket,
        socket_path: str | None,
        early_signals: list[int] | None = None,
        report: Callable[[bytes], None] = _no_report,
        tune_collector: bool = False,
    ) -> None:
        #: the program's name: its logger, its log lines
        self.name = name
        #: the listening socket, bound (or inherited from systemd)
        self.sock = sock
        #: its path, to unlink on exit; None when inherited (systemd owns the file)
        self.socket_path = socket_path
        #: signals that arrived before the event loop ran, to act on once serving
        self.early_signals = early_signals if early_signals is not None else []
        #: tells a waiting parent (daemonised) that the child serves: b"0", or failed: b"1"
        self.report = report
        #: tune the cyclic collector once serving (:func:`~pylvmetad.shell.process.tune_collector`)
        self.tune_collector = tune_collector

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
        import asyncio
        import logging

        from .. import __version__
        from .process import SignalAction, install_loop_signal_handlers, signal_action, signal_name

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
        if self.tune_collector:
            from .process import tune_collector

            frozen, young = tune_collector()
            log.debug("collector: %d start-up objects frozen, young generation threshold %d", frozen, young)
        log.info(
            "%s %s (pid %d) serving %s",
            self.name,
            __version__,
            os.getpid(),
            self.socket_path or "a socket inherited from systemd",
        )
        from ..wire.codec import ACCEL_MISSING, ACCEL_STATUS

        (log.warning if ACCEL_MISSING else log.info)("codec: %s", ACCEL_STATUS)
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
    guardian: bool = True,
) -> int:
    """Run a daemon from its parsed options to its exit status (the module's sequence).

    ``echo_errors``: in the foreground, print a start-up error to stderr as
    ``NAME: message`` besides logging it.  ``early_signals``: install the
    early signal handlers, remembering STOP and LOG signals in this list
    (None: the default actions until the loop runs).  ``tune_runtime``: pin
    glibc's mmap threshold, run on uvloop when installed, and tune the
    cyclic collector once serving.  ``guardian``:
    fork the crash guardian once a socket of our own listens.
    """
    if early_signals is not None:
        from .process import install_early_signal_handlers

        # a signal that arrives before the event loop runs is remembered, not fatal
        install_early_signal_handlers(early_signals.append)
    os.environ["LC_ALL"] = "C"
    raise_nofile_limit()
    inherited = inherited_socket(socket_path)
    ready = None if foreground else daemonize(name)

    def report(status: bytes) -> None:
        if ready is not None:
            try:
                ready.write(status)
                ready.close()
            except OSError:
                pass

    # pid file and socket before any heavy import (module doc); logged once logging is up
    stale: list[str] = []
    failure: Exception | None = None
    pidfile = PidFile(pidfile_path)
    sock = None
    try:
        pidfile.acquire()
        try:
            sock = inherited if inherited is not None else bind_unix_socket(socket_path, stale.append)
        except StartupError as exc:
            failure = exc
    except (StartupError, OSError) as exc:
        failure = exc
    guard_fd = -1
    if guardian and failure is None and sock is not None and inherited is None and pidfile.fd is not None:
        from .guardian import start_guardian

        guard_fd = start_guardian(socket_path, pidfile_path, pidfile.fd)
    try:
        import logging

        from .logs import setup_logging

        setup_logging(log_levels, foreground, log_json, name=name)
        log = logging.getLogger(name)
        for path in stale:
            log.warning("removing stale socket %s", path)
        if failure is not None or sock is None:
            log.critical("%s", failure)
            if echo_errors and foreground:
                print(f"{name}: {failure}", file=sys.stderr)
            report(b"1")
            return EXIT_LOCKED if isinstance(failure, PidFileLocked) else 1
        if tune_runtime:
            from .process import pin_malloc_mmap_threshold, use_fast_event_loop

            pin_malloc_mmap_threshold()
            use_fast_event_loop()
        import asyncio

        launch = Launch(name, sock, None if inherited is not None else socket_path, early_signals, report, tune_runtime)
        return asyncio.run(serve(launch))
    finally:
        pidfile.release()
        if guard_fd >= 0:
            os.close(guard_fd)  # the guardian finds the files gone and exits

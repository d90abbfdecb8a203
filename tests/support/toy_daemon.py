"""A toy daemon on :func:`pylvmetad.shell.startup.run_daemon`, run as its own process.

``TOY`` serves a one-line reply through :func:`run_daemon` and
:meth:`Launch.serve` with nothing of pylvmetad's or pylvmlockd's, so the
tests that run it pin the start-up sequence itself.  Its command line is
the socket path, the pid file path, then any of these flags:

* ``--daemon``: daemonise (else it stays in the foreground);
* ``--echo``: echo a start-up error to stderr (``echo_errors``);
* ``--early``: install the early signal handlers, and send itself SIGUSR1
  and SIGTERM before serving;
* ``--fail-started``: its ``started`` callback refuses;
* ``--tune``: ``tune_runtime`` (the collector tuned once serving).

It logs every level to stderr; readiness is its "serving" line (what
:class:`Toy` waits for), never a sleep.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOY = r"""
import os, signal, sys
from pylvmetad.shell.server import Server
from pylvmetad.shell.startup import Launch, run_daemon
from pylvmetad.wire.replies import ok

sock_path, pid_path, *flags = sys.argv[1:]

class Handler:
    def handle_message(self, text, peer):
        return ok("hello")

    def peer_gone(self, peer):
        pass

async def serve(launch: Launch) -> int:
    if "--early" in flags:  # the early handlers are still in place: remembered, acted on once serving
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
    server = Server(Handler(), launch.sock, socket_path=launch.socket_path, shutdown_grace=0.2)
    return await launch.serve(server, started=lambda: "--fail-started" not in flags)

sys.exit(run_daemon(
    "toyd",
    serve,
    socket_path=sock_path,
    pidfile_path=pid_path,
    foreground="--daemon" not in flags,
    log_levels={10, 15, 20, 30, 40, 50},
    echo_errors="--echo" in flags,
    early_signals=[] if "--early" in flags else None,
    tune_runtime="--tune" in flags,
))
"""
#: seconds any wait on the toy may take before the test fails (a hang, not a slow run)
HANG_GUARD = 30


def toy_argv(sock: Path, pid: Path, *flags: str) -> list[str]:
    return [sys.executable, "-c", TOY, str(sock), str(pid), *flags]


def run_toy(sock: Path, pid: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run the toy to its exit (a start that fails, or a daemonised parent)."""
    return subprocess.run(toy_argv(sock, pid, *flags), capture_output=True, text=True, timeout=HANG_GUARD)


class Toy:
    """A foreground toy daemon, returned once its "serving" line is logged."""

    def __init__(self, sock: Path, pid: Path, *flags: str) -> None:
        self.sock, self.pid = sock, pid
        self.proc = subprocess.Popen(toy_argv(sock, pid, *flags), stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        for line in self.proc.stderr:  # blocks until the daemon logs (or exits: the loop ends)
            self.lines.append(line)
            if " serving " in line:
                break
        else:
            self.kill()
            raise AssertionError(f"the toy never served: {self.lines}")

    def finish(self) -> tuple[int, str]:
        """Wait for the exit; the status and the whole of stderr."""
        assert self.proc.stderr is not None
        rest = self.proc.stderr.read()
        return self.proc.wait(HANG_GUARD), "".join(self.lines) + rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(HANG_GUARD)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

"""The ``pylvmetad`` command: options, pid file, logging, daemonising, signals.

Options and environment follow the original lvmetad (docs/protocol.md §1) so it
can replace it in a unit file or an LVM test suite unchanged; the long
options are pylvmetad's own additions.

It imports only light modules: the pid file is locked and the socket
listens before asyncio, uvloop, the cache and its handlers are imported
(they are :mod:`.service`'s, imported when the serving coroutine starts), so
a client that connects while the daemon starts waits in the backlog
(docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import LVM_VERSION
from ..shell.limits import DEFAULT_MAX_BUFFERED
from ..shell.loglevels import DEFAULT_LOG_LEVELS, parse_levels
from ..shell.pollwindow import DEFAULT_POLL_WINDOW, MAX_POLL_WINDOW
from ..shell.startup import Launch, run_daemon
from .protocol import DEFAULT_SOCKET, SOCKET_ENV

DEFAULT_PIDFILE = "/run/lvmetad.pid"
#: seconds connected clients are served after a stop signal (README, Reliability)
DEFAULT_SHUTDOWN_GRACE = 2.0
#: The largest request LVM 2.02 sends is a VG's metadata (pv_found, vg_update).
#: LVM writes a VG's new metadata into the circular metadata area beside the
#: old copy and refuses when the two and the 512-byte header do not fit, so
#: the metadata text is at most about half the area: 510 KiB with the default
#: 1 MiB area.  32 MiB takes the metadata of a 64 MiB area (64 times the
#: default; a VG of 100k PVs writes about 25 MB) plus the request's own
#: fields, and makes a hostile message a quarter of the 128 MiB it was
#: (README, Limits).  A larger area needs a larger --max-message.
DEFAULT_MAX_MESSAGE = 32 * 1024 * 1024
_early_signals: list[int] = []

USAGE = """\
usage: pylvmetad [-f] [-h] [-?] [-V] [-l LEVELS] [-p PIDFILE] [-s SOCKET] [-t SECONDS]
                 [--max-message BYTES] [--max-buffered BYTES] [--shutdown-grace SECONDS]
                 [--allow-uid UID[,UID...]]
                 [--metrics-listen HOST:PORT] [--log-json] [--no-guardian]
                 [--poll-window MICROSECONDS]

pylvmetad: LVM metadata cache daemon, wire-compatible with lvmetad of LVM 2.02.

  -f             stay in the foreground and log to stderr as well as syslog
  -l LEVELS      comma list of log classes: all,fatal,error,warn,info,wire,debug
                 (default: %(levels)s; unknown words are ignored)
  -p PIDFILE     pid file, locked while running; must be a regular file
                 (a symbolic link, fifo or directory there is refused)
                 (default: $LVM_LVMETAD_PIDFILE or %(pidfile)s)
  -s SOCKET      UNIX socket to listen on
                 (default: $LVM_LVMETAD_SOCKET or %(socket)s)
  -t SECONDS     exit after SECONDS with no client connected (0: never)
  -V             print the version and exit
  -h, -?         print this help and exit
  --max-message BYTES
                 largest request accepted (default %(max)d); a larger one gets
                 'failed' "request too large" and the connection is closed
  --max-buffered BYTES
                 bytes held for all clients together: partial requests and
                 unread replies (default %(buffered)d); the client that passes
                 it gets 'failed' "daemon buffer budget exceeded" or is closed
  --shutdown-grace SECONDS
                 after a stop signal, serve connected clients this long, then
                 close them once their requests are answered (default %(grace)g)
  --allow-uid UID[,UID...]
                 accept connections only from these user ids (SO_PEERCRED)
  --metrics-listen HOST:PORT
                 serve Prometheus metrics over HTTP at HOST:PORT (off by default)
  --log-json     log one JSON object per line (for journald and log shippers)
  --no-guardian  start no crash guardian: a killed daemon's socket and pid file
                 stay behind (README, Crash clean-up)
  --poll-window MICROSECONDS
                 after a request, keep polling for the next one this long
                 instead of sleeping (default %(poll)d; 0: sleep at once; at
                 most %(poll_max)d): halves a command's round trips where an
                 idle CPU is slow to wake, as on virtual machines

Signals: SIGTERM, SIGINT, SIGHUP, SIGQUIT stop accepting connections; the
daemon exits once connected clients have left or the grace period is over (a
second signal closes them at once).  SIGUSR1, SIGUSR2, SIGALRM and other
signals that would kill it by default are logged and ignored (README, Signals).
"""


def usage_text() -> str:
    return USAGE % {
        "levels": DEFAULT_LOG_LEVELS,
        "pidfile": DEFAULT_PIDFILE,
        "socket": DEFAULT_SOCKET,
        "max": DEFAULT_MAX_MESSAGE,
        "grace": DEFAULT_SHUTDOWN_GRACE,
        "buffered": DEFAULT_MAX_BUFFERED,
        "poll": round(DEFAULT_POLL_WINDOW * 1e6),
        "poll_max": round(MAX_POLL_WINDOW * 1e6),
    }


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pylvmetad", add_help=False)
    p.add_argument("-f", dest="foreground", action="store_true")
    p.add_argument("-h", dest="help", action="store_true")
    p.add_argument("-?", dest="help_stderr", action="store_true")
    p.add_argument("-V", dest="version", action="store_true")
    p.add_argument("-l", dest="levels", default=None)
    p.add_argument("-p", dest="pidfile", default=None)
    p.add_argument("-s", dest="socket", default=None)
    p.add_argument("-t", dest="timeout", default="0")
    p.add_argument("--max-message", type=int, default=DEFAULT_MAX_MESSAGE)
    p.add_argument("--max-buffered", type=int, default=DEFAULT_MAX_BUFFERED)
    p.add_argument("--shutdown-grace", type=float, default=DEFAULT_SHUTDOWN_GRACE)
    p.add_argument("--allow-uid", default=None)
    p.add_argument("--metrics-listen", default=None)
    p.add_argument("--log-json", action="store_true")
    p.add_argument("--no-guardian", dest="guardian", action="store_false")
    p.add_argument("--poll-window", type=int, default=round(DEFAULT_POLL_WINDOW * 1e6))
    p.add_argument("--help", dest="help", action="store_true")
    return p


def parse_timeout(text: str) -> int:
    if not text.isdigit() or int(text) >= 4294967295:
        raise UsageError("Invalid value of timeout parameter.")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pylvmetad``; returns the exit status."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_in)
        timeout = parse_timeout(args.timeout)
        allow = None
        if args.allow_uid is not None:
            allow = frozenset(int(u) for u in args.allow_uid.split(",") if u.strip())
        if args.max_message < 1024:
            raise UsageError("--max-message must be at least 1024 bytes")
        if args.max_buffered < args.max_message:
            raise UsageError("--max-buffered must be at least --max-message")
        if not 0 <= args.shutdown_grace <= 3600:
            raise UsageError("--shutdown-grace must be between 0 and 3600 seconds")
        if not 0 <= args.poll_window <= MAX_POLL_WINDOW * 1e6:
            raise UsageError(f"--poll-window must be between 0 and {round(MAX_POLL_WINDOW * 1e6)} microseconds")
    except (UsageError, ValueError) as exc:
        print(f"pylvmetad: {exc}", file=sys.stderr)
        print(usage_text(), file=sys.stderr, end="")
        return 1
    if args.help:
        print(usage_text(), end="")
        return 0
    if args.help_stderr:
        print(usage_text(), file=sys.stderr, end="")
        return 0
    if args.version:
        print(f"lvmetad version: {LVM_VERSION}")
        return 0

    socket_path = args.socket or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    pidfile_path = args.pidfile or os.environ.get("LVM_LVMETAD_PIDFILE") or DEFAULT_PIDFILE

    async def serve(launch: Launch) -> int:
        from .service import serve as serve_cache  # the heavy part, once the socket listens

        return await serve_cache(
            launch,
            max_message=args.max_message,
            idle_timeout=timeout,
            shutdown_grace=args.shutdown_grace,
            max_buffered=args.max_buffered,
            allow_uids=allow,
            metrics_listen=args.metrics_listen,
            poll_window=args.poll_window / 1e6,
        )

    return run_daemon(
        "pylvmetad",
        serve,
        socket_path=socket_path,
        pidfile_path=pidfile_path,
        foreground=args.foreground,
        log_levels=parse_levels(args.levels),
        log_json=args.log_json,
        echo_errors=True,
        early_signals=_early_signals,
        tune_runtime=True,
        guardian=args.guardian,
    )


if __name__ == "__main__":
    raise SystemExit(main())

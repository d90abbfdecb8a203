"""The ``pylvmetad`` command: options, pid file, logging, daemonising, signals.

Options and environment follow the original lvmetad (PROTOCOL.md §1) so it
can replace it in a unit file or an LVM test suite unchanged; the long
options are pylvmetad's own additions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import logging
import logging.handlers
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import IO

from . import LVM_VERSION, __version__
from .framing import DEFAULT_MAX_MESSAGE
from .handlers import RequestHandler
from .server import WIRE, Server, StartupError, bind_unix_socket, inherited_socket

DEFAULT_SOCKET = "/run/lvm/lvmetad.socket"
DEFAULT_PIDFILE = "/run/lvmetad.pid"
EXIT_LOCKED = 13
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_early_signals: list[int] = []

#: the original's log classes; "all" enables every one
LOG_LEVELS = {
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "wire": WIRE,
    "debug": logging.DEBUG,
}
DEFAULT_LOG_LEVELS = "fatal,error,warn,info"

USAGE = """\
usage: pylvmetad [-f] [-h] [-?] [-V] [-l LEVELS] [-p PIDFILE] [-s SOCKET] [-t SECONDS]
                 [--max-message BYTES] [--allow-uid UID[,UID...]]
                 [--metrics-listen HOST:PORT] [--log-json]

pylvmetad: LVM metadata cache daemon, wire-compatible with lvmetad of LVM 2.02.

  -f             stay in the foreground and log to stderr as well as syslog
  -l LEVELS      comma list of log classes: all,fatal,error,warn,info,wire,debug
                 (default: %(levels)s; unknown words are ignored)
  -p PIDFILE     pid file, locked while running
                 (default: $LVM_LVMETAD_PIDFILE or %(pidfile)s)
  -s SOCKET      UNIX socket to listen on
                 (default: $LVM_LVMETAD_SOCKET or %(socket)s)
  -t SECONDS     exit after SECONDS with no client connected (0: never)
  -V             print the version and exit
  -h, -?         print this help and exit
  --max-message BYTES
                 largest request accepted (default %(max)d); a larger one gets
                 'failed' "request too large" and the connection is closed
  --allow-uid UID[,UID...]
                 accept connections only from these user ids (SO_PEERCRED)
  --metrics-listen HOST:PORT
                 serve Prometheus metrics over HTTP at HOST:PORT (off by default)
  --log-json     log one JSON object per line (for journald and log shippers)

Signals: SIGTERM, SIGINT, SIGHUP, SIGQUIT stop accepting connections; the
daemon exits once connected clients have left (a second signal closes them).
"""


def usage_text() -> str:
    return USAGE % {
        "levels": DEFAULT_LOG_LEVELS,
        "pidfile": DEFAULT_PIDFILE,
        "socket": DEFAULT_SOCKET,
        "max": DEFAULT_MAX_MESSAGE,
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
    p.add_argument("--allow-uid", default=None)
    p.add_argument("--metrics-listen", default=None)
    p.add_argument("--log-json", action="store_true")
    p.add_argument("--help", dest="help", action="store_true")
    return p


def parse_levels(text: str | None) -> set[int]:
    """Log classes named in ``-l`` (unknown words ignored, as the original does)."""
    words = [w.strip() for w in (text or DEFAULT_LOG_LEVELS).split(",")]
    if "all" in words:
        return set(LOG_LEVELS.values())
    return {LOG_LEVELS[w] for w in words if w in LOG_LEVELS}


def parse_timeout(text: str) -> int:
    if not text.isdigit() or int(text) >= 4294967295:
        raise UsageError("Invalid value of timeout parameter.")
    return int(text)


class _LevelSet(logging.Filter):
    """Passes exactly the selected log classes (they are a set, not a threshold)."""

    def __init__(self, levels: set[int]) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno in self.levels


class _StderrFormatter(logging.Formatter):
    """The original's prefixes: ``I:``, ``W:``, ``E:``; none for wire and debug."""

    PREFIX = {logging.INFO: "I: ", logging.WARNING: "W: ", logging.ERROR: "E: ", logging.CRITICAL: "E: "}

    def format(self, record: logging.LogRecord) -> str:
        return self.PREFIX.get(record.levelno, "") + super().format(record)


def setup_logging(levels: set[int], foreground: bool, json_lines: bool) -> None:
    from .logjson import JsonFormatter

    root = logging.getLogger("pylvmetad")
    root.handlers.clear()
    root.setLevel(min(levels | {logging.CRITICAL}))
    root.propagate = False
    if foreground:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if json_lines else _StderrFormatter("%(message)s"))
        handler.addFilter(_LevelSet(levels))
        root.addHandler(handler)
    if os.path.exists("/dev/log"):
        with contextlib.suppress(OSError):
            syslog = logging.handlers.SysLogHandler(
                address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
            syslog.ident = f"pylvmetad[{os.getpid()}]: "
            syslog.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
            # fatal and error always reach syslog, as with the original
            syslog.addFilter(_LevelSet(levels | {logging.CRITICAL, logging.ERROR}))
            root.addHandler(syslog)


class PidFile:
    """A pid file held with an exclusive ``fcntl`` lock for the daemon's lifetime."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        for _ in range(20):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    os.close(fd)
                    raise
                time.sleep(0.001)
        else:
            os.close(fd)
            raise StartupError(f"Failed to acquire lock on {self.path}. Already running?")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


def _daemonize() -> IO[bytes] | None:
    """Fork; the parent waits until the child reports readiness and exits with its status.

    Returns the pipe the child writes its readiness byte to.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            status = ready.read(1)
        if status == b"0":
            os._exit(0)
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if code == EXIT_LOCKED:
            print("pylvmetad: failed to acquire the pid file lock. Already running?", file=sys.stderr)
        os._exit(code if code > 0 else 1)
    os.close(read_fd)
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return os.fdopen(write_fd, "wb", buffering=0)


def raise_nofile_limit() -> None:
    """Lift the soft open-files limit to the hard one: every idle client holds a descriptor."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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

    # a signal that arrives before the event loop runs is remembered, not fatal
    for signum in SHUTDOWN_SIGNALS:
        signal.signal(signum, lambda signum, frame: _early_signals.append(signum))
    socket_path = args.socket or os.environ.get("LVM_LVMETAD_SOCKET") or DEFAULT_SOCKET
    pidfile_path = args.pidfile or os.environ.get("LVM_LVMETAD_PIDFILE") or DEFAULT_PIDFILE
    os.environ["LC_ALL"] = "C"
    raise_nofile_limit()
    inherited = inherited_socket(socket_path)
    ready = None if args.foreground else _daemonize()
    setup_logging(parse_levels(args.levels), args.foreground, args.log_json)
    log = logging.getLogger("pylvmetad")

    def report(status: bytes) -> None:
        if ready is not None:
            with contextlib.suppress(OSError):
                ready.write(status)
                ready.close()

    pidfile = PidFile(pidfile_path)
    try:
        pidfile.acquire()
    except (StartupError, OSError) as exc:
        log.critical("%s", exc)
        if args.foreground:
            print(f"pylvmetad: {exc}", file=sys.stderr)
        report(b"1")
        return EXIT_LOCKED
    try:
        try:
            sock = inherited if inherited is not None else bind_unix_socket(socket_path)
        except StartupError as exc:
            log.critical("%s", exc)
            if args.foreground:
                print(f"pylvmetad: {exc}", file=sys.stderr)
            report(b"1")
            return 1
        pin_malloc_mmap_threshold()
        use_fast_event_loop()
        return asyncio.run(
            _run(
                sock,
                socket_path=None if inherited is not None else socket_path,
                max_message=args.max_message,
                idle_timeout=timeout,
                allow_uids=allow,
                metrics_listen=args.metrics_listen,
                on_ready=lambda: report(b"0"),
            )
        )
    finally:
        pidfile.release()


def pin_malloc_mmap_threshold() -> None:
    """Keep glibc from holding on to the memory of large requests.

    glibc serves allocations above a threshold (128 KiB) with mmap and
    returns them on free -- but after freeing one it raises the threshold to
    that size, so later buffers of a 300 KiB vg_update or a 1.7 MB pv_list
    reply come from the heap, which fragments and is not given back: RSS
    grows by megabytes that hold nothing.  Setting the threshold explicitly
    turns that adjustment off.  Not glibc (or no ctypes): nothing to do.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def use_fast_event_loop() -> str:
    """Run on uvloop when it is installed (a dependency on Linux); returns the loop's name.

    uvloop implements the same asyncio API in C (libuv): accepting a
    connection and a request/reply round trip cost about a third of the
    pure-Python loop's (BENCHMARKS.md).  It is optional: without it, or with
    ``PYLVMETAD_EVENT_LOOP=asyncio``, the standard loop runs unchanged.
    """
    if os.environ.get("PYLVMETAD_EVENT_LOOP") == "asyncio":
        return "asyncio"
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(
    sock: object,
    *,
    socket_path: str | None,
    max_message: int,
    idle_timeout: int,
    allow_uids: frozenset[int] | None,
    metrics_listen: str | None,
    on_ready: object,
) -> int:
    import socket as socket_mod

    from .metrics import Metrics

    assert isinstance(sock, socket_mod.socket)
    log = logging.getLogger("pylvmetad")
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    server = Server(
        handler,
        sock,
        socket_path=socket_path,
        max_message=max_message,
        idle_timeout=idle_timeout,
        allow_uids=allow_uids,
        observer=metrics.observe,
    )
    metrics.attach_server(server)
    handler.stats_provider = metrics.stats_section
    loop = asyncio.get_running_loop()
    for signum in SHUTDOWN_SIGNALS:
        loop.add_signal_handler(signum, server.request_shutdown, signal.Signals(signum).name)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await server.start()
    for early in _early_signals:
        server.request_shutdown(signal.Signals(early).name)
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


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``pylvmlockd`` command: lvmlockd's options (§8.1), pid file, logging, signals.

It takes lvmlockd's command line unchanged (``-f -D -s -p -g -o -A -S -T
--host-id --host-id-file``, and also ``-i``/``-F`` which lvmlockd's man page
documents but its parser refuses), so ``LOCKD='pylvmlockd -f -g sanlock -o
{io_timeout} -s {socket} -p {pidfile}'`` replaces the C daemon in a test
bed or a unit file.  The long options after ``--lvmetad-socket`` are
pylvmlockd's own, and so is ``--adopt-file``: the file the daemon keeps
equal to the core's adopt table, read back by a successor started with
``-A 1`` (:mod:`.adopt`, :mod:`.service`).

It imports only light modules: the pid file is locked and the socket
listens before asyncio, the core and the sanlock binding are imported (they
are :mod:`.service`'s, imported when the serving coroutine starts), so a
client that connects while the daemon starts waits in the backlog
(docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..shell.loglevels import parse_levels
from ..shell.startup import Launch, run_daemon

LVM_VERSION = "2.02.188(2) (pylvmlockd %s)" % __version__
DEFAULT_SOCKET = "/run/lvm/lvmlockd.socket"
#: where lvmlockd finds lvmetad (the same as :data:`.metadlink.DEFAULT_LVMETAD_SOCKET`)
DEFAULT_LVMETAD_SOCKET = "/run/lvm/lvmetad.socket"
DEFAULT_PIDFILE = "/run/lvmlockd.pid"
#: the same as :data:`.adopt.DEFAULT_ADOPT_FILE`
DEFAULT_ADOPT_FILE = "/run/lvm/lvmlockd.adopt"
SOCKET_ENV = "LVM_LVMLOCKD_SOCKET"
PIDFILE_ENV = "LVM_LVMLOCKD_PIDFILE"
LVMETAD_SOCKET_ENV = "LVM_LVMETAD_SOCKET"

USAGE = """\
Usage:
pylvmlockd [options]
  --help | -h
        Show this help information.
  --version | -V
        Show version of pylvmlockd.
  --test | -T
        Test mode, do not call lock manager (leases live in memory).
  --foreground | -f
        Don't fork.
  --daemon-debug | -D
        Don't fork, and print debugging to stderr.
  --pid-file | -p <path>
        Set path to the pid file. [$LVM_LVMLOCKD_PIDFILE or %(pidfile)s]
  --socket-path | -s <path>
        Set path to the socket to listen on. [$LVM_LVMLOCKD_SOCKET or %(socket)s]
  --syslog-priority | -S err|warning|debug
        Write log messages from this level up to syslog. [warning]
  --gl-type | -g sanlock
        Set global lock type to be sanlock.
  --host-id | -i <num>
        Set the local sanlock host id.
  --host-id-file | -F <path>
        A file containing the local sanlock host_id.
  --sanlock-timeout | -o <seconds>
        Set the sanlock lockspace I/O timeout (0: sanlock's default).
  --adopt | -A 0|1
        Adopt the locks of a previous instance (listed in the adopt file). [0]
  --adopt-file <path>
        Where the held lockspaces and LV locks are recorded for -A 1. [%(adopt)s]
  --lvmetad-socket <path>
        The local lvmetad to invalidate. [$LVM_LVMETAD_SOCKET or %(metad)s]
  --lease-device dm|pv
        Where the leases of a VG are: dm, lvmlockd's /dev/mapper/<vg>-lvmlock (needs
        the lvmlock LV active), or pv, the PV and offset where the lvmlock LV's
        extents lie, read from the VG metadata in lvmetad (no device-mapper). [dm]
  --killpath <path>
        Program sanlock runs (with --kill <vg>) when this host loses its lease.
  --metrics-listen HOST:PORT
        Serve Prometheus metrics over HTTP at HOST:PORT (off by default;
        docs/observability.md).
  --no-guardian
        Start no crash guardian: a killed daemon's socket and pid file stay
        behind (README, Crash clean-up).
"""


def usage_text() -> str:
    return USAGE % {
        "pidfile": DEFAULT_PIDFILE,
        "socket": DEFAULT_SOCKET,
        "metad": DEFAULT_LVMETAD_SOCKET,
        "adopt": DEFAULT_ADOPT_FILE,
    }


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pylvmlockd", add_help=False)
    p.add_argument("-h", "--help", dest="help", action="store_true")
    p.add_argument("-V", "--version", dest="version", action="store_true")
    p.add_argument("-T", "--test", dest="test", action="store_true")
    p.add_argument("-f", "--foreground", dest="foreground", action="store_true")
    p.add_argument("-D", "--daemon-debug", dest="debug", action="store_true")
    p.add_argument("-p", "--pid-file", dest="pidfile", default=None)
    p.add_argument("-s", "--socket-path", dest="socket", default=None)
    p.add_argument("-S", "--syslog-priority", dest="syslog_priority", default="warning")
    p.add_argument("-g", "--gl-type", dest="gl_type", default=None)
    p.add_argument("-i", "--host-id", dest="host_id", type=int, default=0)
    p.add_argument("-F", "--host-id-file", dest="host_id_file", default="")
    p.add_argument("-o", "--sanlock-timeout", dest="io_timeout", type=int, default=0)
    p.add_argument("-A", "--adopt", dest="adopt", type=int, default=0)
    p.add_argument("--adopt-file", default=DEFAULT_ADOPT_FILE)
    p.add_argument("--lvmetad-socket", default=None)
    p.add_argument("--lease-device", choices=("dm", "pv"), default="dm")
    p.add_argument("--killpath", default="")
    p.add_argument("--metrics-listen", default=None)
    p.add_argument("--no-guardian", dest="guardian", action="store_false")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pylvmlockd``; returns the exit status."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except (UsageError, ValueError) as exc:
        print(f"pylvmlockd: {exc}", file=sys.stderr)
        print(usage_text(), end="")
        return 1
    if args.help:
        print(usage_text(), end="")
        return 0
    if args.version:
        print(f"lvmlockd version: {LVM_VERSION}")
        return 0
    if args.gl_type not in (None, "sanlock", "dlm"):
        print("invalid gl-type option", file=sys.stderr)
        return 1
    if args.gl_type == "dlm":
        print("pylvmlockd: the dlm lock manager is not supported (sanlock only)", file=sys.stderr)
        return 1

    socket_path = args.socket or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    pidfile_path = args.pidfile or os.environ.get(PIDFILE_ENV) or DEFAULT_PIDFILE
    metad_path = args.lvmetad_socket or os.environ.get(LVMETAD_SOCKET_ENV) or DEFAULT_LVMETAD_SOCKET
    return run_daemon(
        "pylvmlockd",
        lambda launch: _serve(args, launch, metad_path=metad_path),
        socket_path=socket_path,
        pidfile_path=pidfile_path,
        foreground=args.foreground or args.debug,
        log_levels=parse_levels("all" if args.debug else "fatal,error,warn"),
        guardian=args.guardian,
    )


async def _serve(args: argparse.Namespace, launch: Launch, *, metad_path: str) -> int:
    from .service import serve  # the heavy part, once the socket listens

    return await serve(args, launch, metad_path=metad_path)


if __name__ == "__main__":
    raise SystemExit(main())

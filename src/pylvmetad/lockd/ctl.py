"""The ``pylvmlockctl`` command: lvmlockctl's options, talking to (py)lvmlockd.

``--info``/``--dump`` bind lvmlockctl's abstract datagram socket and read
the text the daemon sends after its reply (§3.19); the others send one
request and print nothing unless it failed.  ``--json`` prints the reply
fields (and the info objects) as JSON.  The socket is
``$LVM_LVMLOCKD_SOCKET`` or ``-s PATH`` (lvmlockctl only knows its
compiled-in path).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence

from ..rpc import DaemonError, Transport
from ..wire.codec import ParseError, parse, quote
from ..wire.framing import encode_request
from .cli import DEFAULT_SOCKET, SOCKET_ENV
from .daemon import DUMP_SOCKET

USAGE = """\
Usage: pylvmlockctl [options]
  --help | -h             Show this help information.
  --quit | -q             Tell lvmlockd to quit.
  --info | -i             Print lock state information from lvmlockd.
  --dump | -d             Print log buffer from lvmlockd.
  --wait | -w 0|1         Wait option for other commands.
  --force | -f 0|1        Force option for other commands.
  --kill | -k <vgname>    Kill access to the VG when sanlock cannot renew lease.
  --drop | -r <vgname>    Clear locks for the VG when it is unused after kill (-k).
  --gl-enable | -E <vg>   Tell lvmlockd to enable the global lock in a sanlock VG.
  --gl-disable | -D <vg>  Tell lvmlockd to disable the global lock in a sanlock VG.
  --stop-lockspaces | -S  Stop all lockspaces.
  --socket | -s <path>    lvmlockd's socket [$LVM_LVMLOCKD_SOCKET or %s]
  --json                  Print the reply (and info objects) as JSON.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylvmlockctl", add_help=False)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("-q", "--quit", action="store_true")
    p.add_argument("-i", "--info", action="store_true")
    p.add_argument("-d", "--dump", action="store_true")
    p.add_argument("-w", "--wait", type=int, default=0)
    p.add_argument("-f", "--force", type=int, default=0)
    p.add_argument("-k", "--kill", default=None)
    p.add_argument("-r", "--drop", default=None)
    p.add_argument("-E", "--gl-enable", default=None)
    p.add_argument("-D", "--gl-disable", default=None)
    p.add_argument("-S", "--stop-lockspaces", action="store_true")
    p.add_argument("-s", "--socket", default=None)
    p.add_argument("--json", action="store_true")
    return p


def request_body(name: str, *fields: tuple[str, str | int]) -> str:
    lines = [f"request={quote(name)}"]
    lines += [f"{k} ={quote(v) if isinstance(v, str) else v}" for k, v in fields]
    return "\n".join(lines) + "\n"


def info_objects(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if fields:
            out.append(fields)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit:
        print(USAGE % DEFAULT_SOCKET, end="")
        return 1
    if args.help:
        print(USAGE % DEFAULT_SOCKET, end="")
        return 0
    path = args.socket or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    pid = os.getpid()
    dump = args.info or args.dump
    if args.quit:
        body = 'request = "quit"\n'
    elif dump:
        body = f'request = "{"info" if args.info else "dump"}"\n'
    elif args.kill or args.drop:
        body = request_body(
            "kill_vg" if args.kill else "drop_vg",
            ("cmd", "lvmlockctl"),
            ("pid", pid),
            ("vg_name", args.kill or args.drop),
        )
    elif args.gl_enable or args.gl_disable:
        name = "enable_gl" if args.gl_enable else "disable_gl"
        body = request_body(name, ("cmd", "lvmlockctl"), ("pid", pid), ("vg_name", args.gl_enable or args.gl_disable))
    elif args.stop_lockspaces:
        opts = ("wait " if args.wait else "") + ("force " if args.force else "")
        body = request_body("stop_all", ("cmd", "lvmlockctl"), ("pid", pid), ("opts", opts or "none"))
    else:
        print(USAGE % DEFAULT_SOCKET, end="")
        return 1
    listener: socket.socket | None = None
    if dump:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(DUMP_SOCKET)
        except OSError as exc:
            print(f"pylvmlockctl: cannot bind the dump socket: {exc}", file=sys.stderr)
            return 1
    transport = Transport(path, daemon="lvmlockd")
    try:
        transport.open(5.0)
        transport.exchange(encode_request('request = "hello"\n'), 10.0)
        reply = parse(transport.exchange(encode_request(body), None))
    except (DaemonError, ParseError) as exc:
        print(f"pylvmlockctl: {exc}", file=sys.stderr)
        return 1
    finally:
        transport.close()
    fields = {k: v for k, v in reply.to_python().items() if isinstance(v, (str, int))}
    text = ""
    if listener is not None:
        want = int(fields.get("dump_len", 0) or 0)
        chunks: list[bytes] = []
        got = 0
        listener.settimeout(5.0)
        try:
            while got < want:
                data = listener.recv(65536)
                chunks.append(data)
                got += len(data)
        except TimeoutError:
            pass
        finally:
            listener.close()
        text = b"".join(chunks).decode(errors="replace")
    if args.json:
        out: dict[str, object] = {"reply": fields}
        if args.info:
            out["info"] = info_objects(text)
        elif args.dump:
            out["dump"] = text
        print(json.dumps(out, indent=1))
    elif text:
        print(text, end="")
    result = fields.get("op_result", fields.get("result", 0))
    if isinstance(result, int) and result < 0 and not args.stop_lockspaces:
        print(f"pylvmlockctl: result {result}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

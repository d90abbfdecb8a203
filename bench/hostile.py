"""Hostile message shapes against a daemon: ``python -m bench.hostile [--compare CMD] [--mb N]`` (from a checkout).

A reliability benchmark (printed figures, no pass/fail): for each shape of
issue 17, a fresh daemon gets one message of about N MB from one client
while another client sends ``hello`` after ``hello`` (one in flight) until
the big message is answered.  Printed per shape: the daemon's peak RSS
(VmHWM) and its RSS once the message is answered (VmRSS), the worst and the
median latency of the other client's ``hello`` meanwhile, and how long the
big message took.  ``--compare CMD`` runs the same against CMD (the C
lvmetad) first.  It speaks only the wire protocol, like ``bench.daemon``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable

from bench.daemon import Connection, Identity, daemon_memory, reply_tree, simple_request, spawned_daemon
from pylvmetad.wire.framing import TERMINATOR

HELLO = b'request="hello"\n' + TERMINATOR


def shapes(size: int) -> dict[str, Callable[[], list[bytes]]]:
    """name -> the messages of that shape (built when run, so only one lives at a time)."""
    head = b'request="hello"\n'
    return {
        "list of small ints": lambda: [head + b"x=[" + b",".join([b"1"] * (size // 2)) + b"]\n" + TERMINATOR],
        "string after a comment": lambda: [b"# c\n" + head + b'x="' + b"a" * size + b'"\n' + TERMINATOR],
        "escapes after a comment": lambda: [b"# c\n" + head + b'x="' + b"\\a" * (size // 2) + b'"\n' + TERMINATOR],
        "many keys": lambda: [head + b"".join(b"k%d=1\n" % i for i in range(size // 10)) + TERMINATOR],
        "list after a comment": lambda: [
            b"# c\n" + head + b"x=[" + b",".join([b"1"] * (size // 2)) + b"]\n" + TERMINATOR
        ],
        "10 distinct long strings": lambda: [
            head + b'x="' + bytes([65 + n]) * (size // 10) + b'"\n' + TERMINATOR for n in range(10)
        ],
    }


def send_all(path: str, messages: list[bytes], done: threading.Event, out: list[float]) -> None:
    start = time.perf_counter()
    for message in messages:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(message)
            buf = b""
            while not buf.endswith(TERMINATOR):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
    out.append(time.perf_counter() - start)
    done.set()


def run_shape(command: str | None, name: str, build: Callable[[], list[bytes]]) -> str:
    with spawned_daemon(command) as path:
        who = Identity("skip", 1, "bench")
        with Connection(path) as c:
            pid = reply_tree(c.call("get_global_info", simple_request("get_global_info", who))).get_int64("daemon_pid")
        before = daemon_memory(pid)
        messages = build()
        size = sum(map(len, messages))
        done, took = threading.Event(), list[float]()
        sender = threading.Thread(target=send_all, args=(path, messages, done, took))
        del messages
        latencies: list[float] = []
        with Connection(path) as c:
            sender.start()
            while not done.is_set():
                t0 = time.perf_counter()
                c.exchange(HELLO)
                latencies.append(time.perf_counter() - t0)
            sender.join()
            c.exchange(HELLO)
        after = daemon_memory(pid)
        worst = max(latencies) * 1e3 if latencies else 0.0
        median = statistics.median(latencies) * 1e3 if latencies else 0.0
        return (
            f"| {name} | {size / 1e6:.0f} | {(after.hwm_kb or 0) / 1024:.0f} | {(after.rss_kb or 0) / 1024:.0f} "
            f"| {(before.rss_kb or 0) / 1024:.0f} | {worst:.1f} | {median:.2f} | {len(latencies)} | {took[0]:.2f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=20.0, help="size of each shape in MB (default 20)")
    p.add_argument("--compare", metavar="CMD", help="also run CMD ({socket} and {pidfile} filled in), first")
    p.add_argument("--only", action="append", help="run only this shape (repeatable)")
    p.add_argument(
        "--trace",
        metavar="DIR",
        help="run pylvmetad under bench.hostile_trace: its longest steps per shape go to DIR/<shape>.txt",
    )
    args = p.parse_args()
    size = int(args.mb * 1e6)
    sides: list[tuple[str, str | None]] = [("pylvmetad", None)]
    if args.compare:
        sides.insert(0, ("C lvmetad", args.compare))
    for label, command in sides:
        print(f"\n{label}:")
        print(
            "| shape | MB | peak RSS MB | RSS after MB | RSS at start MB | worst hello ms | median hello ms | hellos | seconds |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, build in shapes(size).items():
            if args.only and name not in args.only:
                continue
            if command is None and args.trace:
                out = os.path.join(args.trace, name.replace(" ", "_") + ".txt")
                traced = f"{shlex.quote(sys.executable)} -m bench.hostile_trace {shlex.quote(out)} --"
                print(run_shape(f"{traced} -f -s {{socket}} -p {{pidfile}} -l fatal,error", name, build), flush=True)
                continue
            print(run_shape(command, name, build), flush=True)


if __name__ == "__main__":
    main()

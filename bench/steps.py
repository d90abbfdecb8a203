"""Where a ping-pong request's time goes inside pylvmetad: ``python -m bench.steps`` (from a checkout).

Rules of this module:

* In-process, no socket: the same request texts as ``bench.daemon``'s rows
  (its builders, its seed), sent to a :class:`RequestHandler` whose cache was
  filled as the harness fills it (the token taken, ``--pvs`` PVs found).
* Per row, three figures in µs per request, each the best of ``--repeat``
  runs of ``--ops`` requests in process time: ``parse``
  (:meth:`Request.from_text`), ``handle`` (:meth:`RequestHandler.handle` of
  a parsed request: the token gate, the cache operation, the reply body) and
  ``shell`` (the whole of the server's ``Connection.data_received`` with a
  transport that keeps nothing: framing, decode, parse, handle, metrics,
  encode, the buffer budget).  What the socket, the event loop and the
  client add is ``bench.floor``'s figure.
* ``--only ROW --ops N`` runs one row's requests N times and prints nothing
  else, for instruction counts: ``valgrind --tool=callgrind python -m
  bench.steps --only ROW --ops N`` for two values of N, the difference of
  the totals divided by the difference of N is the row's instructions per
  request (stable on a shared machine, where times move by ±30%).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import time
from collections.abc import Callable

from bench.daemon import (
    FINAL_TOKEN,
    PV,
    BenchError,
    Identity,
    VGUpdate,
    lvm_uuid,
    pv_found_request,
    simple_request,
)
from pylvmetad.metad.handlers import Request, RequestHandler
from pylvmetad.metad.metrics import Metrics
from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS
from pylvmetad.shell.server import Connection, Server
from pylvmetad.wire.framing import TERMINATOR, decode

ROWS = ("pv_found new", "vg_update 10", "vg_update 10 changed", "vg_lookup 10", "lvcreate", "pv_found known")


class _Sink:
    """A transport that takes replies and keeps the last one."""

    def __init__(self) -> None:
        self.last = b""

    def write(self, data: bytes) -> None:
        self.last = data

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class Steps:
    """A filled cache, its server connection and the rows' request makers."""

    def __init__(self, n_pvs: int) -> None:
        self.handler = RequestHandler()
        metrics = Metrics(self.handler.state)
        self.server = Server(self.handler, socket.socket(socket.AF_UNIX), observer=metrics.observer)
        metrics.attach_server(self.server)
        self.sink = _Sink()
        self.connection = Connection(self.server)
        self.connection.connection_made(self.sink)  # type: ignore[arg-type]
        rng = random.Random(2_02_187)  # bench.daemon's seed: the same uuids
        pid = os.getpid()
        who = Identity(FINAL_TOKEN, pid, "pvscan")
        begin = Identity(UPDATE_IN_PROGRESS, pid, "pvscan")
        self.pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(n_pvs)]
        for name in ("hello", "token_update", "pv_clear_all"):
            self.send(simple_request(name, begin))
        self.send(simple_request("token_update", who))
        self.new_pvs = [pv_found_request(pv, who) for pv in self.pvs]
        self.small = VGUpdate.build("vg_bench_small", self.pvs[:2], 10, who, rng)
        self.lookup = simple_request("vg_lookup", who, ("uuid", self.small.vgid), ("name", self.small.name))
        self.known = [pv_found_request(pv, who) for pv in self.pvs[10:]]
        self.seqno = 0
        self.found = 0

    def send(self, data: bytes) -> bytes:
        self.connection.data_received(data)
        reply = self.sink.last
        if not reply.startswith((b'response = "OK"', b'response="OK"')):
            raise BenchError(f"not OK:\n{reply[:500].decode(errors='replace')}")
        return reply

    def makers(self, row: str) -> list[Callable[[], bytes]]:
        """The request(s) of one operation of ``row``, each a fresh text (seqnos increase)."""

        def update(touch: bool) -> bytes:
            self.seqno += 1
            return self.small.request(self.seqno, touch)

        def new_pv() -> bytes:
            self.found += 1
            return self.new_pvs[self.found - 1]

        known = iter(range(1 << 62))
        table: dict[str, list[Callable[[], bytes]]] = {
            "pv_found new": [new_pv],
            "vg_update 10": [lambda: update(False)],
            "vg_update 10 changed": [lambda: update(True)],
            "vg_lookup 10": [lambda: self.lookup],
            "lvcreate": [lambda: update(True), lambda: self.lookup],
            "pv_found known": [lambda: self.known[next(known) % len(self.known)]],
        }
        return table[row]


def best(runs: int, one_run: Callable[[], float]) -> float:
    return min(one_run() for _ in range(runs))


def measure(steps: Steps, row: str, ops: int, repeat: int) -> tuple[float, float, float]:
    """(parse, handle, shell) µs per request of ``row``."""
    makers = steps.makers(row)
    handler = steps.handler
    per = ops * len(makers)

    def texts() -> list[str]:
        return [decode(make()[: -len(TERMINATOR)]) for _ in range(ops) for make in makers]

    def parse_run() -> float:
        batch = texts()  # unseen texts, as the daemon gets them (a changed LV is checked again)
        t0 = time.process_time()
        for text in batch:
            Request.from_text(text)
        return time.process_time() - t0

    def handle_run() -> float:
        requests = [Request.from_text(text) for text in texts()]
        t0 = time.process_time()
        for request in requests:
            reply = handler.handle(request)
        elapsed = time.process_time() - t0
        if reply.response != "OK":
            raise BenchError(f"{row}: {reply.body[:300]}")
        return elapsed

    def shell_run() -> float:
        data = [make() for _ in range(ops) for make in makers]
        send = steps.send
        t0 = time.process_time()
        for message in data:
            send(message)
        return time.process_time() - t0

    if row == "pv_found new":  # each PV is new once: one run of the shell path only
        shell = shell_run() / per * 1e6
        return float("nan"), float("nan"), shell
    return (
        best(repeat, parse_run) / per * 1e6,
        best(repeat, handle_run) / per * 1e6,
        best(repeat, shell_run) / per * 1e6,
    )


async def run(args: argparse.Namespace) -> None:
    steps = Steps(args.pvs)
    if args.only:
        makers = steps.makers(args.only)
        if args.only != "pv_found new":
            new_pv = steps.makers("pv_found new")[0]
            for _ in range(args.pvs):  # the harness's order: every PV found first
                steps.send(new_pv())
            if args.only == "vg_lookup 10":  # the VG it looks up must be stored
                steps.send(steps.makers("vg_update 10")[0]())
        for _ in range(args.ops):
            for make in makers:
                steps.send(make())
        return
    print("| row | parse µs | handle µs | whole request in the server shell µs |")
    print("|---|---:|---:|---:|")
    for row in ROWS:
        ops = args.pvs if row == "pv_found new" else args.ops  # every PV found first, as the harness does
        parse, handle, shell = measure(steps, row, ops, args.repeat)
        cells = " | ".join("-" if v != v else f"{v:.1f}" for v in (parse, handle, shell))
        print(f"| {row} | {cells} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pvs", type=int, default=5000, help="PVs found before the rows (default 5000, as bench.daemon)")
    p.add_argument("--ops", type=int, default=3000, help="requests per run (default 3000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per figure, the best is kept (default 3)")
    p.add_argument("--only", choices=ROWS, help="run this row --ops times, print nothing (for callgrind)")
    args = p.parse_args()
    try:
        import uvloop

        uvloop.run(run(args))
    except ImportError:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

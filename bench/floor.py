"""The floor of the ping-pong rows: ``python -m bench.floor`` (from a checkout).

The same client and request texts as ``bench.daemon``'s rows, against a
server that answers every message with a canned ``response = "OK"`` at
once: pylvmetad's own server shell (asyncio or uvloop, the framer, the
transport) with a handler that does nothing.  What a row costs above this
figure is the daemon's work (parse, cache, reply); below it no Python
daemon on this shell can go.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from bench.daemon import PV, Connection, Identity, Row, VGUpdate, lvm_uuid, pv_found_request, timed
from pylvmetad.shell.server import Peer, Server
from pylvmetad.shell.sockets import bind_unix_socket
from pylvmetad.wire.replies import Reply, ok

CANNED = ok("canned", ("changed", 1))


class Canned:
    def handle_message(self, text: str, peer: Peer) -> Reply:
        return CANNED

    def peer_gone(self, peer: Peer) -> None:
        pass


async def serve(path: str) -> None:
    server = Server(Canned(), bind_unix_socket(path), socket_path=path)
    await server.start()
    await server.serve_until_stopped()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--serve", metavar="SOCKET", help=argparse.SUPPRESS)  # the canned server's own process
    args = p.parse_args()
    if args.serve:
        try:
            import uvloop

            uvloop.run(serve(args.serve))
        except ImportError:
            asyncio.run(serve(args.serve))
        return
    rng = random.Random(1)
    who = Identity("skip", os.getpid(), "bench")
    pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(10)]
    small = VGUpdate.build("vg_s", pvs[:2], 10, who, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s")
        proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "--serve", path])
        while not os.path.exists(path):
            time.sleep(0.02)
        rows = {
            "vg_update, 10 LVs (4 KiB)": lambda i: small.request(i + 1),
            "pv_found, known PVs": lambda i: pv_found_request(pvs[i % 10], who),
        }
        print("| workload | canned-reply server ops/s | µs per op |")
        print("|---|---:|---:|")
        with Connection(path) as c:
            for title, make in rows.items():

                def one(i: int, m: Callable[[int], bytes] = make) -> None:
                    c.call("canned", m(i))

                row = timed(Row(title, title), args.duration, 20, one)
                print(f"| {title} | {row.rate:,.0f} | {1e6 / row.rate:.1f} |")
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()

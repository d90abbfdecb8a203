"""The floor of the ping-pong rows: ``python -m bench.floor`` (from a checkout).

The same client and request texts as ``bench.daemon``'s rows, against a
server that answers every message with a canned ``response = "OK"`` at
once: pylvmetad's own server shell (asyncio or uvloop, the framer, the
transport) with a handler that does nothing.  What a row costs above this
figure is the daemon's work (parse, cache, reply); below it no Python
daemon on this shell can go.

A second column runs the same client against a bare event-loop server (one
``asyncio.Protocol`` on the same loop that writes the same canned bytes when
a chunk ends with the terminator, no framer, no handler, no metrics): the
difference of the two columns is what pylvmetad's server shell itself costs
per request, the bare figure is what the loop, the kernel and the client
cost.
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
from typing import cast

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


CANNED_BYTES = b'response = "OK"\nchanged = 1\n\n##\n'


class Bare(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\n##\n"):
            self.transport.write(CANNED_BYTES)


async def serve_bare(path: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(Bare, path)
    async with server:
        await server.serve_forever()


async def serve(path: str) -> None:
    server = Server(Canned(), bind_unix_socket(path), socket_path=path)
    await server.start()
    await server.serve_until_stopped()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--serve", metavar="SOCKET", help=argparse.SUPPRESS)  # the canned server's own process
    p.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # ... a bare protocol instead
    args = p.parse_args()
    if args.serve:
        job = serve_bare(args.serve) if args.bare else serve(args.serve)
        try:
            import uvloop

            uvloop.run(job)
        except ImportError:
            asyncio.run(job)
        return
    rng = random.Random(1)
    who = Identity("skip", os.getpid(), "bench")
    pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(10)]
    small = VGUpdate.build("vg_s", pvs[:2], 10, who, rng)
    rows = {
        "vg_update, 10 LVs (4 KiB)": lambda i: small.request(i + 1),
        "pv_found, known PVs": lambda i: pv_found_request(pvs[i % 10], who),
    }
    rates: dict[tuple[str, bool], float] = {}
    for bare in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s")
            argv = [sys.executable, "-m", "bench.floor", "--serve", path] + (["--bare"] if bare else [])
            proc = subprocess.Popen(argv)
            try:
                while not os.path.exists(path):
                    time.sleep(0.02)
                with Connection(path) as c:
                    for title, make in rows.items():

                        def one(i: int, m: Callable[[int], bytes] = make) -> None:
                            c.call("canned", m(i))

                        rates[title, bare] = timed(Row(title, title), args.duration, 20, one).rate
            finally:
                proc.terminate()
                proc.wait()
    print("| workload | canned-reply server ops/s | µs per op | bare loop server ops/s | µs per op | the shell's µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for title in rows:
        shell, bare_rate = rates[title, False], rates[title, True]
        print(
            f"| {title} | {shell:,.0f} | {1e6 / shell:.1f} | {bare_rate:,.0f} | {1e6 / bare_rate:.1f}"
            f" | {1e6 / shell - 1e6 / bare_rate:.1f} |"
        )


if __name__ == "__main__":
    main()

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

Rows: the small writes (``vg_update`` of 10 LVs, ``pv_found`` of a known
PV) answered with the short canned reply; ``vg_lookup`` of 10 LVs answered
with the very bytes pylvmetad answers it with (made in process by
``bench.steps``'s filled cache, handed to the server in a file), so the
reply's size is the real one; and the command session (connect, hello,
get_global_info, vg_list, close) with canned replies, whose floor includes
the accept and the teardown of a connection.

The canned-reply server polls for the next request as pylvmetad does, for
its default window (``--poll-window``; ``PYLVMETAD_BENCH_POLL_WINDOW`` in µs
sets another, 0 none); the bare loop server never polls, as the original's
threads do not.
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

from bench.daemon import PV, Connection, Identity, Row, VGUpdate, lvm_uuid, pv_found_request, simple_request, timed
from bench.steps import Steps
from pylvmetad.shell.pollwindow import DEFAULT_POLL_WINDOW
from pylvmetad.shell.server import Peer, Server
from pylvmetad.shell.sockets import bind_unix_socket
from pylvmetad.wire.framing import TERMINATOR
from pylvmetad.wire.replies import Reply, ok

CANNED = ok("canned", ("changed", 1))
#: the canned-reply server's poll window, in seconds
POLL_WINDOW = float(os.environ.get("PYLVMETAD_BENCH_POLL_WINDOW", DEFAULT_POLL_WINDOW * 1e6)) / 1e6


LOOKUP_PREFIX = 'request = "vg_lookup"'


class Canned:
    def __init__(self, lookup: Reply) -> None:
        self.lookup = lookup

    def handle_message(self, text: str, peer: Peer) -> Reply:
        return self.lookup if text.startswith(LOOKUP_PREFIX) else CANNED

    def peer_gone(self, peer: Peer) -> None:
        pass


CANNED_BYTES = b'response = "OK"\nchanged = 1\n\n##\n'


class Bare(asyncio.Protocol):
    transport: asyncio.Transport
    lookup_bytes = CANNED_BYTES

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if data.endswith(b"\n##\n"):
            lookup = data.startswith(LOOKUP_PREFIX.encode())
            self.transport.write(self.lookup_bytes if lookup else CANNED_BYTES)


async def serve_bare(path: str, lookup: str) -> None:
    Bare.lookup_bytes = lookup.encode() + TERMINATOR
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(Bare, path)
    async with server:
        await server.serve_forever()


async def serve(path: str, lookup: str) -> None:
    server = Server(
        Canned(Reply(lookup, "vg_lookup", "OK")),
        bind_unix_socket(path),
        socket_path=path,
        poll_window=POLL_WINDOW,
    )
    await server.start()
    await server.serve_until_stopped()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--serve", metavar="SOCKET", help=argparse.SUPPRESS)  # the canned server's own process
    p.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # ... a bare protocol instead
    p.add_argument("--lookup-reply", metavar="FILE", help=argparse.SUPPRESS)  # ... the vg_lookup reply's body
    args = p.parse_args()
    if args.serve:
        with open(args.lookup_reply, encoding="utf-8") as file:
            lookup = file.read()
        job = serve_bare(args.serve, lookup) if args.bare else serve(args.serve, lookup)
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
    # the real vg_lookup reply of bench.daemon's 10-LV VG, from a cache filled in process
    steps = Steps(10)
    steps.send(steps.small.request(1))
    lookup_reply = steps.send(steps.lookup)[: -len(TERMINATOR)].decode()
    rows = {
        "vg_update, 10 LVs (4 KiB)": lambda i: small.request(i + 1),
        "pv_found, known PVs": lambda i: pv_found_request(pvs[i % 10], who),
        f"vg_lookup, 10 LVs ({len(lookup_reply) / 1024:.1f} KiB reply)": lambda i: steps.lookup,
    }
    session = [simple_request(name, who) for name in ("hello", "get_global_info", "vg_list")]
    session_title = "command session (connect + 3 requests)"
    rates: dict[tuple[str, bool], float] = {}
    for bare in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s")
            reply_file = os.path.join(tmp, "lookup")
            with open(reply_file, "w", encoding="utf-8") as file:
                file.write(lookup_reply)
            argv = [sys.executable, "-m", "bench.floor", "--serve", path, "--lookup-reply", reply_file]
            proc = subprocess.Popen(argv + (["--bare"] if bare else []))
            try:
                while not os.path.exists(path):
                    time.sleep(0.02)
                with Connection(path) as c:
                    for title, make in rows.items():

                        def one(i: int, m: Callable[[int], bytes] = make) -> None:
                            c.call("canned", m(i))

                        rates[title, bare] = timed(Row(title, title), args.duration, 20, one).rate

                def one_session(_: int, path: str = path) -> None:
                    with Connection(path) as c:
                        for data in session:
                            c.call("canned", data)

                rates[session_title, bare] = timed(Row("session", session_title), args.duration, 20, one_session).rate
            finally:
                proc.terminate()
                proc.wait()
    rows[session_title] = rows[next(iter(rows))]  # (only its title is used below)
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

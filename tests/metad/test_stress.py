"""200 concurrent clients against a real daemon, every reply checked against a serial model.

Each client owns one VG and one PV (its own uuid, name and device), so the
model of what *its* look-ups must return is exact whatever the interleaving:
a vg_lookup returns the seqno of its last answered vg_update (or "unknown"
after its vg_remove), a pv_lookup its own device.  Shared reads (vg_list,
pv_list) may only name VGs and PVs of the pool, with their owners' names.
Every client runs a fixed number of steps (no deadline: the work, not the
machine's speed, is fixed); the throughput and the daemon's peak RSS (VmHWM)
are printed for information, never asserted.
"""

from __future__ import annotations

import asyncio
import socket
import time
import traceback
from pathlib import Path

from pylvmetad.wire.codec import Section, parse
from support.daemon import DaemonProcess

CLIENTS = 200
#: steps per client (1 to 4 requests each)
STEPS = 40
SKIP = 'token="skip"\n'


def vgid(i: int) -> str:
    return f"VGs{i:04d}-aaaa-bbbb"


def pvid(i: int) -> str:
    return f"PVs{i:04d}-aaaa-bbbb"


def vg_update(i: int, seqno: int) -> str:
    return (
        f'request="vg_update"\n{SKIP}vgname="vgs{i}"\nmetadata {{\n\tid="{vgid(i)}"\n\tseqno={seqno}\n'
        f'\tstatus=["RESIZEABLE","READ","WRITE"]\n\tphysical_volumes {{\n\t\tpv0 {{\n\t\t\tid="{pvid(i)}"\n'
        f'\t\t\tstatus="ALLOCATABLE"\n\t\t}}\n\t}}\n}}\n'
    )


def pv_found(i: int) -> str:
    return f'request="pv_found"\n{SKIP}pvmeta {{\n\tdevice={10000 + i}\n\tid="{pvid(i)}"\n\tformat="lvm2"\n}}\n'


class Client:
    def __init__(self, i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.i, self.reader, self.writer = i, reader, writer
        self.seqno = 0  # 0: the VG is not in the cache
        self.ops = 0
        self.finished = False  # ran all STEPS

    async def call(self, body: str) -> Section:
        self.writer.write(body.encode() + b"\n##\n")
        raw = await self.reader.readuntil(b"\n##\n")
        self.ops += 1
        return parse(raw[:-4].decode())

    async def run(self, errors: list[str]) -> None:
        i = self.i
        try:
            reply = await self.call(pv_found(i))
            assert reply.get_str("response") == "OK", reply
            for step in range(1, STEPS + 1):
                if step % 29 == 0 and self.seqno:
                    assert (await self.call(f'request="vg_remove"\n{SKIP}uuid="{vgid(i)}"')).get_str("response") == "OK"
                    self.seqno = 0
                elif step % 3 != 2:
                    self.seqno += 1
                    reply = await self.call(vg_update(i, self.seqno))
                    assert reply.get_str("response") == "OK", reply
                reply = await self.call(f'request="vg_lookup"\n{SKIP}uuid="{vgid(i)}"')
                if self.seqno:
                    assert reply.get_str("response") == "OK", reply
                    assert reply.get_str("name") == f"vgs{i}"
                    assert reply.get_int64("metadata/seqno") == self.seqno, (reply, self.seqno)
                else:
                    assert reply.get_str("response") == "unknown", reply
                if step % 7 == 0:
                    reply = await self.call(f'request="vg_list"\n{SKIP}')
                    vgs = reply.section("volume_groups")
                    assert vgs is not None
                    for key, vg in vgs.sections():
                        assert (
                            key.startswith("VGs") and key[3:7].isdigit() and vg.get_str("name") == f"vgs{int(key[3:7])}"
                        )
                    assert (vgs.child(vgid(i)) is not None) == bool(self.seqno)
                if step % 11 == 0:
                    reply = await self.call(f'request="pv_lookup"\n{SKIP}uuid="{pvid(i)}"')
                    assert reply.get_int64("physical_volume/device") == 10000 + i, reply
                    assert (reply.get_str("physical_volume/vgid") == vgid(i)) == bool(self.seqno), reply
            self.finished = True
        except Exception as exc:  # collected: one failure should not hide the others
            errors.append(f"client {i}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"[:3000])
        finally:
            self.writer.close()


async def load(path: str) -> tuple[int, list[str]]:
    conns = []
    for _ in range(CLIENTS):
        # a blocking connect waits while the listen backlog is full, as LVM's clients do;
        # asyncio's non-blocking one takes EAGAIN for "in progress" and ends up unconnected
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        conns.append(await asyncio.open_unix_connection(sock=sock))
    clients = [Client(i, r, w) for i, (r, w) in enumerate(conns)]
    errors: list[str] = []
    await asyncio.gather(*(c.run(errors) for c in clients))
    errors += [f"client {c.i} stopped early" for c in clients if not c.finished and not errors]
    return sum(c.ops for c in clients), errors


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_200_concurrent_clients_stay_consistent(daemon: DaemonProcess) -> None:
    began = time.monotonic()
    ops, errors = asyncio.run(load(daemon.socket_path))
    elapsed = time.monotonic() - began
    peak = vm_hwm(daemon.proc.pid)
    print(
        f"\nstress: {CLIENTS} clients, {ops} requests in {elapsed:.1f}s ({ops / elapsed:.0f}/s), "
        f"daemon VmHWM {peak / (1 << 20):.1f} MiB"
    )
    assert not errors, "\n".join(errors[:10])
    assert ops >= CLIENTS * (1 + STEPS)  # pv_found, then at least one request a step
    assert daemon.proc.poll() is None

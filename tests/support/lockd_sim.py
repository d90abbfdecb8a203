"""A simulated cluster for pylvmlockd's core: hosts sharing one in-memory disk.

Each :class:`SimHost` is one pylvmlockd core (``pylvmetad.lockd.core.Lockd``)
on a :class:`~pylvmetad.lockd.memory.MemoryLockManager`, with a model of its
local lvmetad that records the invalidations it receives.  Requests are
written as lvm writes them (``key =value`` lines) and parsed by the real
codec, so the tests exercise the request reader too.  A :class:`Cluster` is
hosts on one disk and the one event loop a test runs them on (the
``cluster`` fixture of tests/lockd/test_lockd_core.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.core import Lockd
from pylvmetad.lockd.figures import LockdFigures
from pylvmetad.lockd.memory import SharedDisk
from pylvmetad.lockd.protocol import parse_request
from pylvmetad.wire.codec import parse


@dataclass
class MetadModel:
    """The local lvmetad as lvmlockd sees it: it only records what it is told."""

    messages: list[tuple[str, int]] = field(default_factory=list)
    vg_invalid: dict[str, int] = field(default_factory=dict)
    global_invalid: bool = False

    async def set_vg_info(self, uuid: str, name: str, version: int) -> None:
        self.messages.append((f"vg:{name}", version))
        self.vg_invalid[name] = version

    async def set_global_invalid(self) -> None:
        self.messages.append(("global", 1))
        self.global_invalid = True


def request_text(name: str, **fields: str | int) -> str:
    lines = [f'request="{name}"']
    for key, value in fields.items():
        lines.append(f'{key} ="{value}"' if isinstance(value, str) else f"{key} ={value}")
    return "\n".join(lines) + "\n"


def fields_of(reply: str) -> dict[str, str | int]:
    tree = parse(reply)
    return {k: v for k, v in tree.to_python().items() if isinstance(v, (str, int))}


class SimHost:
    def __init__(
        self, disk: SharedDisk, host_id: int, *, gl_type: int | None = None, figures: LockdFigures | None = None
    ) -> None:
        self.host_id = host_id
        self.metad = MetadModel()
        self.lockd = Lockd(disk.host(host_id), self.metad, gl_type=gl_type, retry_delay=0, figures=figures)
        self._next_client = 0

    def client(self) -> int:
        self._next_client += 1
        return self._next_client

    def send(self, client_id: int, name: str, **fields: str | int) -> asyncio.Future[str]:
        req = parse_request(parse(request_text(name, **fields)))
        assert req is not None, name
        return self.lockd.submit(req, client_id)

    async def call(self, client_id: int, name: str, **fields: str | int) -> dict[str, str | int]:
        """Send one request and wait for its reply, which must come without outside help."""
        fut = self.send(client_id, name, **fields)
        await self.lockd.quiesce()
        assert fut.done(), f"{name} got no reply"
        return fields_of(fut.result())

    async def result(self, client_id: int, name: str, **fields: str | int) -> int:
        value = (await self.call(client_id, name, **fields))["op_result"]
        assert isinstance(value, int)
        return value

    async def start_vg(self, vg: str, vg_uuid: str = "UUID-1") -> None:
        c = self.client()
        assert (
            await self.result(
                c, "start_vg", vg_name=vg, vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock",
                vg_uuid=vg_uuid, version=1, host_id=self.host_id, opts="none",
            )
            == 0
        )  # fmt: skip
        assert await self.result(c, "start_wait") == 0

    def gone(self, client_id: int) -> None:
        self.lockd.client_gone(client_id)


def lock(vg: str, mode: str, **extra: str | int) -> dict[str, str | int]:
    return {"cmd": "test", "pid": 1, "mode": mode, "opts": "none", "vg_name": vg, "vg_lock_type": "none", **extra}


async def create_vg(host: SimHost, vg: str) -> None:
    """What vgcreate --shared sends on the first host (§3.22)."""
    c = host.client()
    await host.result(c, "running_lm", pid=1)
    await host.result(c, "lock_gl", cmd="vgcreate", pid=1, mode="ex", opts="none", vg_lock_type="sanlock")
    await host.result(c, "init_vg", pid=1, vg_name=vg, vg_lock_type="sanlock", vg_lock_args="lvmlock", opts="none")
    await host.result(c, "vg_update", pid=1, vg_name=vg, version=1)
    host.gone(c)
    await host.start_vg(vg)


def lock_gl(mode: str, cmd: str = "test") -> dict[str, str | int]:
    """A ``lock_gl`` request's fields as a command of the VG-less kind sends them."""
    return {"cmd": cmd, "pid": 1, "mode": mode, "opts": "none", "vg_lock_type": "none"}


class Cluster:
    """Simulated hosts on one :class:`SharedDisk`, and the event loop their test runs on.

    Host ids count from 1 in the order :meth:`host` made them; :meth:`close`
    closes every host's core (the test's teardown).
    """

    def __init__(self, runner: asyncio.Runner) -> None:
        self.disk = SharedDisk()
        self.hosts: list[SimHost] = []
        self._runner = runner

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a test's coroutine on the cluster's loop (set-up and teardown share it)."""
        self._runner.run(coro)

    def host(self, *, gl_type: int | None = P.LM_SANLOCK) -> SimHost:
        h = SimHost(self.disk, len(self.hosts) + 1, gl_type=gl_type)
        self.hosts.append(h)
        return h

    def shared_vg(self, hosts: int, vg: str = "vgs1") -> list[SimHost]:
        """``hosts`` new hosts: ``vg`` created on the first as vgcreate --shared does, started on the others."""
        made = [self.host() for _ in range(hosts)]

        async def setup() -> None:
            await create_vg(made[0], vg)
            for h in made[1:]:
                await h.start_vg(vg)

        self.run(setup())
        return made

    def close(self) -> None:
        async def close_all() -> None:
            for h in self.hosts:
                await h.lockd.close()

        self.run(close_all())

"""Safety of pylvmlockd's core as properties, on three simulated hosts sharing one disk.

Hypothesis drives random interleavings of lock requests (sh, ex, un,
conversions, persistent LV locks), disconnects, VG reads and VG writes by
clients on three hosts, and checks after every step:

* never two holders of a resource where one is ex -- across hosts and
  between the clients of one host -- counting only locks a client was told
  it holds (reply 0);
* never stale metadata served as valid: a client that holds the VG lock and
  reads the VG from its host's lvmetad gets either the on-disk seqno or a
  copy flagged invalid (which lvm re-reads), never an older seqno unflagged.

About 3 s with the default 60 examples.
"""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.memory import SharedDisk
from support.lockd_sim import SimHost, create_vg, fields_of, lock

HOSTS = 3
CLIENTS = 3
LV = dict(
    lv_name="lv1", lv_uuid="LV-1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", lv_lock_args="1.0.0:70254592"
)


class CachingMetad:
    """lvmetad's part in the invariant: a cached VG seqno and its invalid flag (§5.4)."""

    def __init__(self) -> None:
        self.cached = 0
        self.invalid = False

    async def set_vg_info(self, uuid: str, name: str, version: int) -> None:
        if version == 0 or self.cached < version:
            self.invalid = True

    async def set_global_invalid(self) -> None:
        return None


class Cluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.disk = SharedDisk()
        self.hosts = [SimHost(self.disk, h + 1, gl_type=P.LM_SANLOCK) for h in range(HOSTS)]
        self.metads = [CachingMetad() for _ in self.hosts]
        for host, metad in zip(self.hosts, self.metads, strict=True):
            host.lockd.metad = metad
        self.disk_seqno = 1
        self.loop.run_until_complete(self._setup())
        # per (host, slot): current client id, its pending request, what it was told it holds
        self.client = [[h.client() for _ in range(CLIENTS)] for h in self.hosts]
        self.pending: dict[tuple[int, int], tuple[str, str, asyncio.Future[str]]] = {}
        self.holds: dict[tuple[int, int], dict[str, str]] = {}
        self.persistent: dict[int, str] = {}  # host -> mode of its persistent LV lock

    async def _setup(self) -> None:
        await create_vg(self.hosts[0], "vgs1")
        for h in self.hosts[1:]:
            await h.start_vg("vgs1")
        # the lease of the LV the machine locks
        c = self.hosts[0].client()
        init = {k: v for k, v in LV.items() if k != "lv_lock_args"}
        await self.hosts[0].call(c, "init_lv", pid=1, vg_name="vgs1", **init)

    def teardown(self) -> None:
        async def close() -> None:
            for h in self.hosts:
                await h.lockd.close()

        self.loop.run_until_complete(close())
        self.loop.close()

    def settle(self) -> None:
        async def wait() -> None:
            for h in self.hosts:
                await h.lockd.quiesce()
            for h in self.hosts:  # a release on one host can let a retry on another through
                await h.lockd.quiesce()

        self.loop.run_until_complete(wait())
        for key, (res, mode, fut) in list(self.pending.items()):
            if not fut.done():
                continue
            del self.pending[key]
            result = fields_of(fut.result())["op_result"]
            held = self.holds.setdefault(key, {})
            if res == "lv":
                if mode == "un" and result in (0, P.ENOENT):
                    self.persistent.pop(key[0], None)
                elif result == 0:
                    self.persistent[key[0]] = mode
            elif mode == "un":
                held.pop(res, None)
            elif result == 0:
                held[res] = mode

    def send(self, h: int, slot: int, res: str, mode: str) -> None:
        host = self.hosts[h]
        cid = self.client[h][slot]

        async def submit() -> asyncio.Future[str]:
            if res == "gl":
                return host.send(cid, "lock_gl", cmd="t", pid=1, mode=mode, opts="none", vg_lock_type="none")
            if res == "vg":
                return host.send(cid, "lock_vg", **lock("vgs1", mode))
            return host.send(cid, "lock_lv", **lock("vgs1", mode, **LV) | {"opts": "persistent"})

        self.pending[h, slot] = (res, mode, self.loop.run_until_complete(submit()))
        self.settle()

    @rule(h=st.integers(0, HOSTS - 1), slot=st.integers(0, CLIENTS - 1), res=st.sampled_from(["gl", "vg", "lv"]),
          mode=st.sampled_from(["sh", "ex", "un"]))  # fmt: skip
    def request(self, h: int, slot: int, res: str, mode: str) -> None:
        if (h, slot) in self.pending:
            return  # one request at a time per connection, as every real client does
        self.send(h, slot, res, mode)

    @rule(h=st.integers(0, HOSTS - 1), slot=st.integers(0, CLIENTS - 1))
    def disconnect(self, h: int, slot: int) -> None:
        self.loop.call_soon(self.hosts[h].gone, self.client[h][slot])
        self.pending.pop((h, slot), None)
        self.holds.pop((h, slot), None)
        self.client[h][slot] = self.hosts[h].client()
        self.settle()

    def vg_holders(self, mode: str | None = None) -> list[tuple[int, int]]:
        return [k for k, held in self.holds.items() if "vg" in held and (mode is None or held["vg"] == mode)]

    @precondition(lambda self: bool(self.vg_holders()))
    @rule(data=st.data())
    def read_vg(self, data: st.DataObject) -> None:
        h, _slot = data.draw(st.sampled_from(self.vg_holders()))
        metad = self.metads[h]
        if metad.invalid:
            metad.cached, metad.invalid = self.disk_seqno, False  # lvm re-reads the PVs
        assert metad.cached == self.disk_seqno, "stale VG metadata served as valid"

    @precondition(lambda self: bool(self.vg_holders("ex")))
    @rule(data=st.data())
    def write_vg(self, data: st.DataObject) -> None:
        h, slot = data.draw(st.sampled_from(self.vg_holders("ex")))
        self.read_vg_on(h)
        self.disk_seqno += 1
        self.metads[h].cached = self.disk_seqno  # lvm's own vg_update to its lvmetad
        host = self.hosts[h]
        reply = self.loop.run_until_complete(
            host.call(self.client[h][slot], "vg_update", pid=1, vg_name="vgs1", version=self.disk_seqno)
        )
        assert reply["op_result"] == 0

    @rule(h=st.integers(0, HOSTS - 1), write=st.booleans())
    def vg_command(self, h: int, write: bool) -> None:
        """One whole lvm command on a new connection: lock the VG, read it (write it), unlock."""
        host = self.hosts[h]
        cid = host.client()

        async def command() -> int:
            reply = await host.send(cid, "lock_vg", **lock("vgs1", "ex" if write else "sh"))
            result = fields_of(reply)["op_result"]
            if result != 0:
                return 0  # held elsewhere: lvm reads "without a lock" from disk
            self.read_vg_on(h)
            if write:
                self.disk_seqno += 1
                self.metads[h].cached = self.disk_seqno
                assert await host.result(cid, "vg_update", pid=1, vg_name="vgs1", version=self.disk_seqno) == 0
            await host.result(cid, "lock_vg", **lock("vgs1", "un"))
            return 0

        fut = asyncio.ensure_future(command(), loop=self.loop)
        self.settle()
        if fut.done():
            fut.result()
        else:  # waiting behind a local holder: the command gives up (its connection closes)
            fut.cancel()
            self.loop.call_soon(host.gone, cid)
            self.settle()

    def read_vg_on(self, h: int) -> None:
        metad = self.metads[h]
        if metad.invalid:
            metad.cached, metad.invalid = self.disk_seqno, False
        assert metad.cached == self.disk_seqno, "stale VG metadata served as valid"

    @invariant()
    def never_two_holders_where_one_is_ex(self) -> None:
        for res in ("gl", "vg"):
            holders = [(k, held[res]) for k, held in self.holds.items() if res in held]
            if any(mode == "ex" for _, mode in holders):
                assert len(holders) == 1, f"{res}: {holders}"
        lv = list(self.persistent.items())
        if any(mode == "ex" for _, mode in lv):
            assert len(lv) == 1, f"lv: {lv}"

    @invariant()
    def the_disk_agrees(self) -> None:
        for name in ("GLLK", "VGLK", "LV-1"):
            modes = list(self.disk.holders("vgs1", name).values())
            if P.Mode.EX in modes:
                assert len(modes) == 1


TestCluster = Cluster.TestCase
TestCluster.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)

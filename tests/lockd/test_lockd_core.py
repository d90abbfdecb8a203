"""pylvmlockd's core on simulated hosts: replies, local arbitration, LVB invalidation.

The recorded exchanges of PROTOCOL-LOCKD.md Appendix A are checked byte for
byte; the rest checks behaviour (§3-§5) through the replies and through
what each host's lvmetad was told.  Runs in well under a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.protocol import Mode
from support.lockd_sim import Cluster, SimHost, lock, lock_gl


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """An empty simulated cluster on its own event loop; every host's core is closed after the test."""
    with asyncio.Runner() as runner:
        c = Cluster(runner)
        yield c
        c.close()


@pytest.fixture
def one_host(cluster: Cluster) -> SimHost:
    """Host 1, with the shared VG vgs1 created and started."""
    (h,) = cluster.shared_vg(1)
    return h


@pytest.fixture
def two_hosts(cluster: Cluster) -> tuple[SimHost, SimHost]:
    """Hosts 1 and 2 on one disk: vgs1 created on host 1, started on both."""
    h1, h2 = cluster.shared_vg(2)
    return h1, h2


def test_vgcreate_bootstrap_replies_are_the_recorded_bytes(cluster: Cluster) -> None:
    h = cluster.host()

    async def main() -> None:
        c = h.client()
        fut = h.send(c, "running_lm", pid=9568)
        await h.lockd.quiesce()
        assert fut.result() == (
            'response = "OK"\nop = 18\nlock_type = "none"\nop_result = 3\nlm_result = 0\nresult_flags = "none"\n'
        )
        fut = h.send(c, "lock_gl", cmd="vgcreate", pid=9568, mode="ex", opts="none", vg_lock_type="sanlock")
        await h.lockd.quiesce()
        assert fut.result() == (
            'response = "OK"\nop = 7\nlock_type = "sanlock"\nop_result = -210\nlm_result = 0\n'
            'result_flags = "NO_LOCKSPACES,NO_GL_LS,"\n'
        )
        fut = h.send(
            c, "init_vg", pid=9568, vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="lvmlock", opts="none"
        )
        await h.lockd.quiesce()
        assert fut.result() == (
            'response = "OK"\nop = 3\nop_result = 0\nlm_result = 0\nvg_lock_args = "1.0.0:lvmlock"\n'
            'lv_lock_args = "none"\nresult_flags = "none"\n'
        )
        fut = h.send(c, "vg_update", pid=9568, vg_name="vgs1", version=3)
        await h.lockd.quiesce()
        assert fut.result() == (
            'response = "OK"\nop = 8\nlock_type = "none"\nop_result = -210\nlm_result = 0\n'
            'result_flags = "NO_LOCKSPACES,"\n'
        )
        start: dict[str, str | int] = dict(
            vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", vg_uuid="U", version=3
        )
        assert await h.result(c, "start_vg", pid=1, host_id=1, opts="start_init", **start) == 0
        assert await h.result(c, "start_wait", pid=1) == 0
        assert await h.result(c, "start_vg", pid=1, host_id=1, opts="none", **start) == P.EEXIST
        # the first GL reader of a never-written LVB invalidates once, with zero-valid after
        r = h.client()
        assert await h.result(r, "lock_gl", cmd="pvs", pid=2, mode="sh", opts="none", vg_lock_type="none") == 0
        assert h.metad.messages == [("global", 1)]

    cluster.run(main())


def test_another_hosts_vg_change_invalidates_with_its_seqno_and_own_changes_do_not(
    cluster: Cluster, two_hosts: tuple[SimHost, SimHost]
) -> None:
    h1, h2 = two_hosts

    async def main() -> None:
        # host1: lvcreate-like: lock_vg ex, vg_update 4, un
        c = h1.client()
        assert await h1.result(c, "lock_vg", **lock("vgs1", "ex")) == 0
        assert h1.metad.messages == [("vg:vgs1", 0)]  # first sight of an all-zero LVB
        assert await h1.result(c, "vg_update", pid=1, vg_name="vgs1", version=4) == 0
        assert await h1.result(c, "lock_vg", **lock("vgs1", "un")) == 0
        # host2's first reader is told version 4; its second reader nothing more
        for _ in range(2):
            r = h2.client()
            assert await h2.result(r, "lock_vg", **lock("vgs1", "sh")) == 0
            assert await h2.result(r, "lock_vg", **lock("vgs1", "un")) == 0
        assert h2.metad.messages == [("vg:vgs1", 4)]
        # host1 reading again after its own change: nothing
        r = h1.client()
        assert await h1.result(r, "lock_vg", **lock("vgs1", "sh")) == 0
        assert h1.metad.messages == [("vg:vgs1", 0)]

    cluster.run(main())


def test_gl_ex_release_at_disconnect_bumps_the_counter_seen_by_other_hosts(
    cluster: Cluster, two_hosts: tuple[SimHost, SimHost]
) -> None:
    h1, h2 = two_hosts

    async def main() -> None:
        r = h2.client()
        assert await h2.result(r, "lock_gl", **lock_gl("sh", "pvs")) == 0
        h2.gone(r)
        assert h2.metad.messages == [("global", 1)]  # the all-zero first sight
        c = h1.client()
        assert await h1.result(c, "lock_gl", **lock_gl("ex", "pvs")) == 0  # pvcreate: never unlocks explicitly
        h1.gone(c)
        await h1.lockd.quiesce()
        r = h2.client()
        assert await h2.result(r, "lock_gl", **lock_gl("sh", "pvs")) == 0
        assert h2.metad.messages == [("global", 1), ("global", 1)]

    cluster.run(main())


def test_persistent_lv_lock_outlives_its_connection_and_blocks_other_hosts(
    cluster: Cluster, two_hosts: tuple[SimHost, SimHost]
) -> None:
    h1, h2 = two_hosts

    async def main() -> None:
        c = h1.client()
        init: dict[str, str | int] = dict(
            pid=1, vg_name="vgs1", lv_name="lv1", lv_uuid="LV-1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock"
        )
        reply = await h1.call(c, "init_lv", **init)
        assert reply["lv_lock_args"] == "1.0.0:70254592"
        lv: dict[str, str | int] = dict(
            lv_name="lv1",
            lv_uuid="LV-1",
            vg_lock_type="sanlock",
            vg_lock_args="1.0.0:lvmlock",
            lv_lock_args="1.0.0:70254592",
        )
        assert await h1.result(c, "lock_lv", **lock("vgs1", "ex", **lv) | {"opts": "persistent"}) == 0
        h1.gone(c)
        r = h2.client()
        reply = await h2.call(r, "lock_lv", **lock("vgs1", "ex", **lv) | {"vg_lock_type": "sanlock"})
        assert (reply["op_result"], reply["lm_result"]) == (P.EAGAIN, P.EAGAIN)  # LV ex: never retried
        # stop_vg refuses while an LV lock is held
        assert await h1.result(h1.client(), "stop_vg", pid=1, vg_name="vgs1") == P.EBUSY
        # any connection may release the persistent lock; then host2 gets it
        d = h1.client()
        assert await h1.result(d, "lock_lv", **lock("vgs1", "un", **lv) | {"opts": "persistent"}) == 0
        assert await h1.result(d, "lock_lv", **lock("vgs1", "un", **lv) | {"opts": "persistent"}) == P.ENOENT
        assert await h2.result(r, "lock_lv", **lock("vgs1", "ex", **lv)) == 0
        assert cluster.disk.holders("vgs1", "LV-1") == {2: Mode.EX}

    cluster.run(main())


def test_local_clients_share_sh_and_queue_behind_ex(cluster: Cluster, one_host: SimHost) -> None:
    h = one_host

    async def main() -> None:
        a, b, c = h.client(), h.client(), h.client()
        assert await h.result(a, "lock_vg", **lock("vgs1", "sh")) == 0
        assert await h.result(b, "lock_vg", **lock("vgs1", "sh")) == 0
        assert await h.result(b, "lock_vg", **lock("vgs1", "sh")) == P.EALREADY
        assert await h.result(b, "lock_vg", **lock("vgs1", "ex")) == P.EAGAIN  # sh->ex with another sh holder
        waiting = h.send(c, "lock_vg", **lock("vgs1", "ex"))
        await h.lockd.quiesce()
        assert not waiting.done()  # waits behind the local sh holders, no error, no timeout
        late_sh = h.send(h.client(), "lock_vg", **lock("vgs1", "sh"))
        await h.lockd.quiesce()
        assert not late_sh.done()  # FIFO: sh requests queue behind a queued ex
        assert await h.result(a, "lock_vg", **lock("vgs1", "un")) == 0
        assert not waiting.done()
        h.gone(b)  # a disconnect releases b's transient lock
        await h.lockd.quiesce()
        assert waiting.done() and "op_result = 0\n" in waiting.result()
        assert not late_sh.done()
        assert await h.result(c, "vg_update", pid=1, vg_name="vgs1", version=7) == 0
        assert await h.result(c, "lock_vg", **lock("vgs1", "un")) == 0
        await h.lockd.quiesce()
        assert "op_result = 0\n" in late_sh.result()
        assert await h.result(c, "vg_update", pid=1, vg_name="vgs1", version=8) == P.ENOENT  # holds no lock
        assert await h.result(c, "lock_vg", **lock("vgs1", "un")) == P.ENOENT
        assert await h.result(c, "lock_vg", **lock("vgs1", "nl")) == P.EINVAL

    cluster.run(main())


def test_free_vg_waits_for_other_hosts_then_renames_the_leases(
    cluster: Cluster, two_hosts: tuple[SimHost, SimHost]
) -> None:
    h1, h2 = two_hosts

    async def main() -> None:
        c = h1.client()
        assert await h1.result(c, "lock_gl", **lock_gl("ex", "vgremove")) == 0
        assert await h1.result(c, "lock_vg", **lock("vgs1", "ex")) == 0
        free: dict[str, str | int] = dict(pid=1, vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock")
        assert await h1.result(c, "free_vg", **free) == P.EBUSY
        assert await h2.result(h2.client(), "stop_vg", pid=1, vg_name="vgs1") == 0
        assert await h1.result(c, "free_vg", **free) == P.EBUSY  # host1's sanlock still sees host2 live
        cluster.disk.notice_departures()
        reply = await h1.call(c, "free_vg", **free)
        assert (reply["op_result"], reply["lock_type"]) == (0, "sanlock")
        assert await h1.result(c, "vg_update", pid=1, vg_name="vgs1", version=9) == P.ENOLS
        assert cluster.disk.vgs["vgs1"].areas[66 << 20].name == "invalid_removed"
        assert cluster.disk.vgs["vgs1"].ls_name == "#unused"
        reply = await h1.call(h1.client(), "lock_gl", **lock_gl("sh", "vgremove"))
        assert (reply["op_result"], reply["result_flags"]) == (P.ENOLS, "NO_LOCKSPACES,NO_GL_LS,")

    cluster.run(main())


def test_kill_vg_refuses_new_locks_but_allows_unlock_and_drop(cluster: Cluster, one_host: SimHost) -> None:
    h = one_host

    async def main() -> None:
        c = h.client()
        assert await h.result(c, "lock_vg", **lock("vgs1", "sh")) == 0
        ctl = h.client()
        assert await h.result(ctl, "kill_vg", cmd="lvmlockctl", pid=1, vg_name="vgs1") == 0
        assert await h.result(h.client(), "lock_vg", **lock("vgs1", "sh")) == P.EVGKILLED
        assert await h.result(c, "lock_vg", **lock("vgs1", "un")) == 0
        assert await h.result(ctl, "drop_vg", cmd="lvmlockctl", pid=1, vg_name="vgs1") == 0
        assert await h.result(c, "lock_vg", **lock("vgs1", "sh")) == P.ENOLS

    cluster.run(main())


def test_unknown_lock_type_and_bad_args(cluster: Cluster) -> None:
    h = cluster.host(gl_type=None)

    async def main() -> None:
        c = h.client()
        reply = await h.call(
            c, "start_vg", vg_name="v", vg_lock_type="sanlock", vg_lock_args="2.0.0:lvmlock", host_id=1
        )
        assert reply["op_result"] == P.EARGS
        reply = await h.call(
            c, "start_vg", vg_name="v", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", host_id=0
        )
        assert reply["op_result"] == P.EHOSTID
        reply = await h.call(c, "lock_vg", **lock("v", "sh") | {"vg_lock_type": "bogus"})
        assert reply["lock_type"] == "lm_unknown"
        assert (await h.call(c, "lock_vg", **lock("v", "sh") | {"vg_lock_type": "dlm"}))[
            "op_result"
        ] == P.EPROTONOSUPPORT

    cluster.run(main())

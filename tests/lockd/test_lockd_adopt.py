"""Adoption (-A 1, §8.6) on simulated hosts, and the adopt file's text.

A pylvmlockd instance that dies leaves its leases as orphans in the lock
manager (the memory manager keeps them under the host id, as sanlock keeps
them under the dead registration).  A successor given the dead instance's
adopt table takes over the recorded persistent LV locks in their modes, so
other hosts still cannot take them; a successor started without it drops
them at its first join.  Runs in well under a second.
"""

from __future__ import annotations

import asyncio

from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.adopt import AdoptLv, AdoptTable, AdoptVg, parse, render
from pylvmetad.lockd.memory import SharedDisk
from pylvmetad.lockd.protocol import Mode
from pylvmetad.lockd.rules import Ls
from support.lockd_sim import SimHost, create_vg, lock

LV: dict[str, str | int] = dict(
    lv_name="lv1", lv_uuid="LV-1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", lv_lock_args="1.0.0:70254592"
)
LV2: dict[str, str | int] = dict(LV, lv_name="lv2", lv_uuid="LV-2", lv_lock_args="1.0.0:71303168")


def test_the_adopt_file_round_trips_and_skips_what_it_cannot_read() -> None:
    table = AdoptTable(
        (
            AdoptVg("U1", "vgs1", "sanlock", "1.0.0:lvmlock", 1, (AdoptLv("LV-1", "1.0.0:70254592", Mode.EX),)),
            AdoptVg("", "vgs2", "sanlock", "1.0.0:lvmlock", 7, (AdoptLv("LV-9", "", Mode.SH),)),
        )
    )
    text = render(table, 42)
    assert text == (
        "pylvmlockd adopt_version 1.0 pid 42\n"
        "VG: U1 vgs1 sanlock 1.0.0:lvmlock 1\n"
        "LV: U1 LV-1 1.0.0:70254592 ex\n"
        "VG: . vgs2 sanlock 1.0.0:lvmlock 7\n"
        "LV: . LV-9 . sh\n"
    )
    assert parse(text) == table
    assert parse(text.replace("pylvmlockd adopt_version", "someone else")) == AdoptTable()
    assert parse("") == AdoptTable()
    # an LV line naming another VG than the line before, a bad mode, a cut line: skipped
    garbled = text + "LV: U1 LV-2 1.0.0:1 ex\nLV: . LV-3 . nl\nVG: U3 vgs3 sanl"
    assert parse(garbled) == table


async def _held_then_dead(disk: SharedDisk) -> tuple[SimHost, AdoptTable]:
    """Host 1 activates lv1 (persistent ex) and lv2 (persistent sh) in vgs1, then its daemon dies."""
    h1, h2 = SimHost(disk, 1, gl_type=P.LM_SANLOCK), SimHost(disk, 2, gl_type=P.LM_SANLOCK)
    await create_vg(h1, "vgs1")
    await h2.start_vg("vgs1")
    c = h1.client()
    for lv in (LV, LV2):
        init = {k: v for k, v in lv.items() if k != "lv_lock_args"}
        await h1.call(c, "init_lv", pid=1, vg_name="vgs1", **init)
    assert await h1.result(c, "lock_lv", **lock("vgs1", "ex", **LV) | {"opts": "persistent"}) == 0
    assert await h1.result(c, "lock_lv", **lock("vgs1", "sh", **LV2) | {"opts": "persistent"}) == 0
    h1.gone(c)
    table = h1.lockd.adopt_table()
    assert [(v.ls_name, v.host_id, v.vg_uuid) for v in table.vgs] == [("lvm_vgs1", 1, "UUID-1")]
    assert table.vgs[0].lvs == (
        AdoptLv("LV-1", "1.0.0:70254592", Mode.EX),
        AdoptLv("LV-2", "1.0.0:71303168", Mode.SH),
    )
    # the daemon dies: nothing is released, the lock manager keeps the leases
    return h2, parse(render(table, 1))


def test_a_successor_with_the_adopt_table_still_holds_the_lv_locks() -> None:
    async def main() -> None:
        disk = SharedDisk()
        h2, table = await _held_then_dead(disk)
        new = SimHost(disk, 1)  # no -g: the adopted sanlock lockspace decides the GL type
        changes: list[int] = []
        new.lockd.on_change = lambda: changes.append(1)
        assert await new.lockd.adopt(table) == 2
        assert changes  # the adopt file is rewritten after adoption
        ls = new.lockd.lockspaces["lvm_vgs1"]
        assert ls.state is Ls.STARTED and ls.host_id == 1
        assert new.lockd.gl_type == P.LM_SANLOCK and new.lockd.gl_ls_name == "lvm_vgs1"
        assert new.lockd.adopt_table() == table
        assert disk.holders("vgs1", "LV-1") == {1: Mode.EX}
        assert disk.holders("vgs1", "LV-2") == {1: Mode.SH}
        assert disk.holders("vgs1", "VGLK") == {}
        r = h2.client()
        assert await h2.result(r, "lock_lv", **lock("vgs1", "ex", **LV)) == P.EAGAIN
        # it is a lock of the new instance: a repeat is "already held", lvchange -an releases it
        c = new.client()
        assert await new.result(c, "lock_lv", **lock("vgs1", "ex", **LV) | {"opts": "persistent"}) == P.EALREADY
        assert await new.result(c, "stop_vg", pid=1, vg_name="vgs1") == P.EBUSY
        assert await new.result(c, "lock_lv", **lock("vgs1", "un", **LV) | {"opts": "persistent"}) == 0
        assert await h2.result(r, "lock_lv", **lock("vgs1", "ex", **LV)) == 0
        await new.lockd.close()
        await h2.lockd.close()

    asyncio.run(main())


def test_a_recorded_mode_that_differs_is_adopted_in_the_other_and_stale_entries_are_skipped() -> None:
    async def main() -> None:
        disk = SharedDisk()
        h2, table = await _held_then_dead(disk)
        vg = table.vgs[0]
        swapped = AdoptVg(
            vg.vg_uuid,
            vg.vg_name,
            vg.lock_type,
            vg.vg_lock_args,
            vg.host_id,
            (
                AdoptLv("LV-1", "1.0.0:70254592", Mode.SH),  # held ex: adopted ex
                AdoptLv("LV-GONE", "1.0.0:72351744", Mode.EX),  # no such orphan: nothing
            ),
        )
        stale = AdoptVg("U9", "vgold", "sanlock", "1.0.0:lvmlock", 1)  # not in the lock manager
        new = SimHost(disk, 1, gl_type=P.LM_SANLOCK)
        assert await new.lockd.adopt(AdoptTable((stale, swapped))) == 1
        assert list(new.lockd.lockspaces) == ["lvm_vgs1"]
        assert [(x.lv_uuid, x.mode) for x in new.lockd.adopt_table().vgs[0].lvs] == [("LV-1", Mode.EX)]
        assert disk.holders("vgs1", "LV-2") == {1: Mode.SH}  # not listed: left as an orphan
        await new.lockd.close()
        await h2.lockd.close()

    asyncio.run(main())


def test_a_successor_without_adoption_drops_the_orphans_at_its_join() -> None:
    async def main() -> None:
        disk = SharedDisk()
        h2, _ = await _held_then_dead(disk)
        new = SimHost(disk, 1, gl_type=P.LM_SANLOCK)
        await new.start_vg("vgs1")
        assert disk.holders("vgs1", "LV-1") == {} and disk.holders("vgs1", "LV-2") == {}
        assert new.lockd.adopt_table().vgs[0].lvs == ()
        assert await h2.result(h2.client(), "lock_lv", **lock("vgs1", "ex", **LV)) == 0
        await new.lockd.close()
        await h2.lockd.close()

    asyncio.run(main())

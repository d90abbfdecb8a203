"""The sanlock backend against a real sanlock daemon on a loop device.

A private sanlock (support.sanlockd) and a 300 MiB loop device holding a
"lease LV" at offset 1 MiB (as the lvmlock LV lies on its PV): init_vg,
prepare, join, ex/sh acquires with the LVB written and read back in
lvmlockd's layout, conversion, LV lease allocation at lvmlockd's offsets,
a disabled GL, leaving, and a restart that finds its lockspace still held by sanlock with an
orphan lease (dropped, then free again).  The bytes on disk are checked where lvmlockd
puts them (lockspace name at 0, GLLK at 65 MiB, VGLK at 66 MiB, the first
LV lease at 67 MiB).  Root only; about 8 s (sanlock's join at io_timeout 1).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.lvb import ValueBlock
from pylvmetad.lockd.manager import LmResource
from pylvmetad.lockd.protocol import Mode, Rt
from pylvmetad.lockd.sanlock import LeaseArea, SanlockManager
from support.lvm202 import LoopDevices
from support.sanlockd import Sanlock, available
from support.skips import require

MiB = 1 << 20
BASE = MiB


def read_at(device: str, offset: int, length: int = 512) -> bytes:
    with open(device, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sanlock]:
    """One sanlock for the module: libsanlock reads SANLOCK_RUN_DIR once per process."""
    require(available(), "needs sanlock and libsanlock1 (apt-get install sanlock)")
    with Sanlock(tmp_path_factory.mktemp("sanlock"), "host1") as d, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SANLOCK_RUN_DIR", str(d.run_dir))
        yield d


def test_leases_lvb_and_offsets_on_a_real_sanlock(tmp_path: Path, daemon: Sanlock) -> None:
    with LoopDevices(tmp_path / "disks", 1, size=300 * MiB) as loops:
        device = loops.devices[0]

        async def locate(vg: str, lv: str) -> LeaseArea:
            return LeaseArea(device, BASE, 256 * MiB)

        async def main() -> None:
            m = SanlockManager(io_timeout=1, locator=locate)
            assert await m.running()
            assert await m.init_vg("lvm_vgs1", "vgs1", "lvmlock", True) == 0
            ls = m.lockspace("lvm_vgs1", "vgs1", "lvmlock", 1)
            assert await ls.prepare() == 0 and ls.gl_enabled and ls.align == MiB
            assert await ls.join() == 0
            assert "lvm_vgs1" in daemon.client_status()
            vg = LmResource("VGLK", Rt.VG)
            first = await ls.acquire(vg, Mode.EX)
            assert first.result == 0 and ValueBlock.unpack(first.lvb) == ValueBlock()
            assert await ls.release(vg, ValueBlock(0x0101, 0, 7).pack()) == 0
            again = await ls.acquire(vg, Mode.SH)
            assert ValueBlock.unpack(again.lvb) == ValueBlock(0x0101, 0, 7)
            assert await ls.convert(vg, Mode.EX, None) == 0
            assert await ls.convert(vg, Mode.SH, ValueBlock(0x0101, 0, 8).pack()) == 0
            assert await ls.release(vg, None) == 0
            assert ValueBlock.unpack((await ls.acquire(vg, Mode.SH)).lvb).r_version == 8
            assert await ls.release(vg, None) == 0
            assert await ls.other_hosts() == 0
            assert await ls.init_lv("LV-UUID-1", 0) == (0, "1.0.0:70254592")
            assert await ls.init_lv("LV-UUID-1", 0) == (P.EEXIST, "")
            assert await ls.find_free_lock(0) == (0, 71303168)
            lv = LmResource("LV-UUID-1", Rt.LV, "1.0.0:70254592")
            assert (await ls.acquire(lv, Mode.EX)).result == 0
            assert await ls.release(lv, None) == 0
            assert await ls.free_lv(lv) == 0
            gl = LmResource("GLLK", Rt.GL)
            assert (await ls.acquire(gl, Mode.SH)).result == 0
            assert await ls.release(gl, None) == 0
            assert await ls.write_gl(False) == 0
            assert not await ls.read_gl_enabled()
            assert (await ls.acquire(gl, Mode.SH)).result == P.EUNATCH
            # the daemon dies holding an LV lease: sanlock keeps it as an orphan and keeps the
            # lockspace; a new instance joins and drops the orphans, then the lease is free
            assert await ls.init_lv("LV-UUID-3", 0) == (0, "1.0.0:70254592")  # the freed area again
            lv = LmResource("LV-UUID-3", Rt.LV, "1.0.0:70254592")
            assert (await ls.acquire(lv, Mode.EX)).result == 0
            os.close(ls.sock)
            ls.sock = -1
            restarted = m.lockspace("lvm_vgs1", "vgs1", "lvmlock", 1)
            assert await restarted.prepare() == 0
            assert await restarted.join() == 0
            for _ in range(100):  # sanlock releases orphans asynchronously
                got = await restarted.acquire(lv, Mode.EX)
                if got.result == 0:
                    break
                await asyncio.sleep(0.05)
            assert got.result == 0
            assert await restarted.release(lv, None) == 0
            assert await restarted.leave(free=False) == 0
            assert "lvm_vgs1" not in daemon.client_status()

        asyncio.run(main())
        # lvmlockd's layout, relative to the start of the lease LV
        assert b"lvm_vgs1" in read_at(device, BASE)
        assert b"_GLLK_disabled" in read_at(device, BASE + 65 * MiB)
        assert b"VGLK" in read_at(device, BASE + 66 * MiB)
        assert b"LV-UUID-3" in read_at(device, BASE + 67 * MiB)
        assert b"#unused" in read_at(device, BASE + 68 * MiB)
        assert b"#unused" in read_at(device, BASE + 255 * MiB)
        assert read_at(device, BASE + 256 * MiB, 4096) == bytes(4096)  # nothing past the LV's end


def test_rename_vg_rewrites_every_lease_with_the_new_lockspace_name(tmp_path: Path, daemon: Sanlock) -> None:
    """rename_vg_final (§6.4.8): lockspace, GLLK, VGLK, LV leases and #unused areas all renamed;
    the old lockspace can no longer be started, the new one can, with the LV lease where it was."""
    with LoopDevices(tmp_path / "disks", 1, size=300 * MiB) as loops:
        device = loops.devices[0]

        async def locate(vg: str, lv: str) -> LeaseArea:
            return LeaseArea(device, BASE, 256 * MiB)

        async def main() -> None:
            m = SanlockManager(io_timeout=1, locator=locate)
            assert await m.init_vg("lvm_old", "old", "lvmlock", True) == 0
            ls = m.lockspace("lvm_old", "old", "lvmlock", 1)
            assert await ls.prepare() == 0 and await ls.join() == 0
            assert await ls.init_lv("LV-UUID-1", 0) == (0, "1.0.0:70254592")
            assert await ls.leave(free=False) == 0
            assert await m.rename_vg("lvm_new", "new", "lvmlock") == 0
            renamed = m.lockspace("lvm_new", "new", "lvmlock", 1)
            assert await renamed.prepare() == 0 and renamed.gl_enabled
            assert await renamed.join() == 0
            assert "lvm_new" in daemon.client_status()
            lv = LmResource("LV-UUID-1", Rt.LV, "1.0.0:70254592")
            assert (await renamed.acquire(lv, Mode.EX)).result == 0
            assert (await renamed.acquire(LmResource("VGLK", Rt.VG), Mode.SH)).result == 0
            assert await renamed.release(lv, None) == 0
            assert await renamed.release(LmResource("VGLK", Rt.VG), None) == 0
            assert await renamed.leave(free=False) == 0
            stale = m.lockspace("lvm_old", "old", "lvmlock", 1)
            assert await stale.prepare() == P.EARGS  # the GL lease now belongs to lvm_new
            stale._close()

        asyncio.run(main())
        for offset in (0, 65 * MiB, 66 * MiB, 67 * MiB, 68 * MiB, 255 * MiB):
            head = read_at(device, BASE + offset)
            assert b"lvm_new" in head and b"lvm_old" not in head, offset
        assert b"LV-UUID-1" in read_at(device, BASE + 67 * MiB)
        assert b"GLLK" in read_at(device, BASE + 65 * MiB)
        assert read_at(device, BASE + 256 * MiB, 4096) == bytes(4096)

"""Real LVM 2.02 commands on a shared sanlock VG served by pylvmlockd, and a mixed cluster.

Three simulated hosts on one machine share two loop-device PVs: the
multi-host bed of support.multihost (own sanlock, pylvmetad, lvm.conf with
``use_lvmlockd = 1`` and ``local/host_id = N`` per host), with a per-host
lock daemon.  Hosts 1 and 2
run **pylvmlockd** with ``--lease-device pv``: no device-mapper, no
``/dev/mapper/<vg>-lvmlock``; sanlock is pointed at the PV at the lvmlock
LV's offset, found in the VG metadata.  Host 3 runs the **real C
lvmlockd** on the same VG, which needs the lvmlock LV "active": a loop
device over exactly those extents, linked as ``/dev/mapper/<vg>-lvmlock``
(the emulation of ../shared/multihost/NOTES.md), and a private mount
namespace so its compiled-in lvmetad socket is host 3's.

Checked, command by command, with the outcomes the recorded lvmlockd run
had (../shared/multihost/logs/timeline.log): the sanlock bootstrap by
vgcreate --shared, lock-start, a new LV visible at once on the other hosts
(VG LVB → set_vg_info), "LV locked by other host" across implementations
(pylvmlockd holder, lvmlockd requester and the reverse), a global change
visible at once (GL LVB → global_invalid), concurrent lvcreates, lock-stop,
vgremove refused while others are in the lockspace and then done.

Root only; sanlock io_timeout 1 s; about 60 s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.lvm202 import Lvm202
from support.multihost import LOCK_LV_SIZE, Bed, Host, LockDaemon

IO_TIMEOUT = 1
VG = f"vglk{__import__('os').getpid() % 100000:05d}"
PYLVMLOCKD = LockDaemon(
    (sys.executable, "-m", "pylvmetad.lockd.cli", "-f", "-g", "sanlock", "-o", "{io_timeout}", "-s", "{socket}",
     "-p", "{pidfile}", "--lvmetad-socket", "{lvmetad_socket}", "--lease-device", "pv"),
    name="pylvmlockd",
)  # fmt: skip


def ok(host: Host, *args: str) -> str:
    t = host.lvm(*args)
    assert t.rc == 0, (
        f"host{host.n} lvm {' '.join(args)}: rc={t.rc}\n{t.out}\n{t.result.stderr}\n{host.lockd_log_text()[-3000:]}"
    )
    return t.out + t.result.stderr


def refused(host: Host, *args: str) -> str:
    t = host.lvm(*args)
    assert t.rc == 5, f"host{host.n} lvm {' '.join(args)}: rc={t.rc}, expected 5\n{t.out}\n{t.result.stderr}"
    return t.result.stderr


def until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def bed(lvm2_02: Lvm202, tmp_path: Path) -> Iterator[Bed]:
    # hosts 1 and 2: pylvmlockd; host 3: the real lvmlockd (the bed's default)
    with Bed(
        tmp_path / "bed",
        lvm2_02,
        io_timeout=IO_TIMEOUT,
        pv_count=2,
        pv_size=512 << 20,
        lockd={1: PYLVMLOCKD, 2: PYLVMLOCKD},
    ) as b:
        yield b


def test_pylvmlockd_hosts_and_a_real_lvmlockd_share_one_vg(bed: Bed) -> None:
    pv1, pv2 = bed.pvs
    h1, h2, h3 = bed.host(1), bed.host(2), bed.host(3)

    # pvcreate before any sanlock VG: no global lock anywhere (recorded: rc 5)
    assert "Global lock failed" in refused(h1, "pvcreate", pv2)
    assert "Enabling sanlock global lock" in ok(
        h1, "vgcreate", "--shared", "-s", "4m", "--dataalignment", "1m", VG, pv1
    )
    seg = ok(h1, "lvs", "-a", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,seg_pe_ranges", VG)
    assert f"[lvmlock] {LOCK_LV_SIZE} {pv1}:0-63" in " ".join(seg.split())
    assert not Path(f"/dev/mapper/{VG}-lvmlock").exists()  # pylvmlockd needs no device-mapper
    ok(h2, "vgchange", "--lock-start", VG)

    # a new LV is visible at once on the other host (VG lock value → set_vg_info)
    ok(h1, "lvcreate", "-n", "lv1", "-L", "8m", VG)
    assert "lv1" in ok(h2, "lvs", VG)
    # lv1 is active on host1 (persistent LV lock ex): host2 may not change it
    assert "LV locked by other host" in refused(h2, "lvextend", "-L", "+4m", f"{VG}/lv1")
    ok(h1, "lvchange", "-an", f"{VG}/lv1")
    ok(h2, "lvextend", "-L", "+4m", f"{VG}/lv1")
    assert "12.00m" in ok(h1, "lvs", "--units", "m", "-o", "lv_name,lv_size", VG)

    # a global change is visible at once (GL counter → global_invalid)
    ok(h1, "pvcreate", pv2)
    assert pv2 in ok(h2, "pvs")

    # host 3: the real lvmlockd, its leases through the emulated /dev/mapper/<vg>-lvmlock
    bed.emulate_lvmlock(VG, pv1)
    ok(h3, "vgchange", "--lock-start", VG)
    assert "12.00m" in ok(h3, "lvs", "--units", "m", "-o", "lv_name,lv_size", VG)
    assert pv2 in ok(h3, "pvs")

    # exclusion across implementations, both ways
    ok(h3, "lvchange", "-aey", f"{VG}/lv1")
    assert "LV locked by other host" in refused(h1, "lvchange", "-aey", f"{VG}/lv1")
    ok(h3, "lvchange", "-an", f"{VG}/lv1")
    ok(h2, "lvchange", "-aey", f"{VG}/lv1")
    assert "LV locked by other host" in refused(h3, "lvchange", "-aey", f"{VG}/lv1")
    ok(h2, "lvchange", "-an", f"{VG}/lv1")

    # changes made under the real lvmlockd are seen at once by pylvmlockd hosts, and back
    ok(h3, "vgextend", VG, pv2)
    assert "2" in ok(h1, "vgs", "--noheadings", "-o", "pv_count", VG).split()
    running = [
        h2.popen_lvm("lvcreate", "-an", "-n", "lv2", "-L", "4m", VG),
        h3.popen_lvm("lvcreate", "-an", "-n", "lv3", "-L", "4m", VG),
    ]
    for r in running:
        t = r.wait(120)
        assert t.rc == 0, t.result.stderr
    listing = ok(h1, "lvs", "-o", "lv_name", VG)
    assert "lv2" in listing and "lv3" in listing
    assert "lv2" in ok(h3, "lvs", "-o", "lv_name", VG)

    # clean stop: the others leave; vgremove is refused until host1's sanlock sees them gone
    ok(h2, "vgchange", "--lock-stop", VG)
    ok(h3, "vgchange", "--lock-stop", VG)
    assert until(lambda: h1.lvm("vgremove", "-y", VG).rc == 0, 60), h1.lockd_log_text()[-3000:]
    assert VG not in ok(h1, "vgs")

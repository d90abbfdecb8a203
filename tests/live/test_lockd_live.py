"""Real LVM 2.02 commands on a shared sanlock VG served by pylvmlockd, and a mixed cluster.

Three simulated hosts on one machine share two loop-device PVs.  Each host
has its own sanlock daemon (support.sanlockd), its own pylvmetad and its
own lvm.conf (``use_lvmlockd = 1``, ``local/host_id = N``).  Hosts 1 and 2
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

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.lvm202 import Daemon, LoopDevices, Lvm, Lvm202, pylvmetad_argv, write_lvm_conf
from support.sanlockd import Sanlock, available
from support.skips import require

MiB = 1 << 20
IO_TIMEOUT = 1
VG = f"vglk{os.getpid()}"
LOCKLV_SIZE = 256 * MiB
PE_START = MiB


def compiled_path(binary: Path, suffix: str) -> Path:
    out = subprocess.run(["strings", str(binary)], capture_output=True, text=True, timeout=60).stdout
    return Path(next(line for line in out.splitlines() if line.endswith(suffix)))


@dataclass
class Host:
    n: int
    root: Path
    lvm: Lvm
    sanlock: Sanlock
    metad: Daemon
    lockd: Daemon

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = self.lvm(*args)
        return subprocess.CompletedProcess(list(r.argv), r.rc, r.stdout, r.stderr)

    def ok(self, *args: str) -> str:
        r = self.lvm(*args)
        assert r.rc == 0, (
            f"host{self.n} lvm {' '.join(args)}: rc={r.rc}\n{r.stdout}\n{r.stderr}\n--- lockd log:\n{self.lockd.log()[-3000:]}"
        )
        return r.stdout + r.stderr


class Bed:
    def __init__(self, root: Path, lvm202: Lvm202, devices: list[str]) -> None:
        self.root = root
        self.lvm202 = lvm202
        self.devices = devices
        self.hosts: list[Host] = []
        self.cleanups: list[object] = []

    def start_host(self, n: int, *, real_lvmlockd: bool = False) -> Host:
        d = self.root / f"h{n}"
        (d / "run").mkdir(parents=True, exist_ok=True)
        (d / "lkrun").mkdir(parents=True, exist_ok=True)
        conf = d / "conf"
        write_lvm_conf(conf, self.devices, extra=f"global {{\n  use_lvmlockd = 1\n}}\nlocal {{\n  host_id = {n}\n}}\n")
        metad_sock = d / "lkrun" / "lvmetad.socket"  # where the C lvmlockd looks, inside its namespace
        sanlock = Sanlock(d / "sanlock", f"host{n}").start()
        self.cleanups.append(sanlock.stop)
        metad = Daemon(
            "pylvmetad",
            pylvmetad_argv(metad_sock, d / "run" / "metad.pid"),
            metad_sock,
            d / "run" / "metad.pid",
            d / "metad.log",
        )
        metad.start()
        self.cleanups.append(metad.stop)
        lk_sock, lk_pid = d / "run" / "lk.sock", d / "run" / "lk.pid"
        env = dict(sanlock.env, **self.lvm202.env(), LVM_LVMETAD_SOCKET=str(metad_sock))
        if real_lvmlockd:
            run_dir = compiled_path(self.lvm202.lvmlockd, "/lvmetad.socket").parent
            script = f'mount --bind "{d / "lkrun"}" "{run_dir}" && exec "{self.lvm202.lvmlockd}" -f -g sanlock -o {IO_TIMEOUT} -s "{lk_sock}" -p "{lk_pid}"'
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        else:
            argv = [
                sys.executable,
                "-m",
                "pylvmetad.lockd.cli",
                "-f",
                "-g",
                "sanlock",
                "-o",
                str(IO_TIMEOUT),
                "-s",
                str(lk_sock),
                "-p",
                str(lk_pid),
                "--lease-device",
                "pv",
            ]
        lockd = Daemon("lvmlockd" if real_lvmlockd else "pylvmlockd", argv, lk_sock, lk_pid, d / "lockd.log", env=env)
        lockd.start()
        self.cleanups.append(lockd.stop)
        lvm = Lvm(
            self.lvm202,
            conf,
            metad_sock,
            d / "run" / "metad.pid",
            extra_env={"LVM_LVMLOCKD_SOCKET": str(lk_sock), "LVM_LVMLOCKD_PIDFILE": str(lk_pid)},
        )
        host = Host(n, d, lvm, sanlock, metad, lockd)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()  # type: ignore[operator]
            except Exception as exc:  # keep cleaning
                print(f"cleanup failed: {exc}", file=sys.stderr)
        self.cleanups.clear()


@pytest.fixture
def bed(lvm2_02: Lvm202, tmp_path: Path) -> Iterator[Bed]:
    require(available(), "needs sanlock and libsanlock1 (apt-get install sanlock)")
    require(shutil.which("unshare") and shutil.which("strings"), "needs unshare (util-linux) and strings (binutils)")
    marker = compiled_path(lvm2_02.lvm, "/lvmlockd.pid")  # lvm connects only if this file exists
    made_marker = not marker.exists()
    if made_marker:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{os.getpid()}\n")
    with LoopDevices(tmp_path / "disks", 2, size=512 * MiB, name="pv") as loops:
        b = Bed(tmp_path, lvm2_02, loops.devices)
        try:
            yield b
        finally:
            b.close()
            if made_marker:
                marker.unlink(missing_ok=True)


def until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.5)
    return False


def test_pylvmlockd_hosts_and_a_real_lvmlockd_share_one_vg(bed: Bed) -> None:
    pv1, pv2 = bed.devices
    h1, h2 = bed.start_host(1), bed.start_host(2)

    # pvcreate before any sanlock VG: no global lock anywhere (recorded: rc 5)
    r = h1("pvcreate", pv2)
    assert r.returncode == 5 and "Global lock failed" in r.stderr
    out = h1.ok("vgcreate", "--shared", "-s", "4m", "--dataalignment", "1m", VG, pv1)
    assert "Enabling sanlock global lock" in out
    seg = h1.ok("lvs", "-a", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,seg_pe_ranges", VG)
    assert f"[lvmlock] {LOCKLV_SIZE} {pv1}:0-63" in " ".join(seg.split())
    assert "/dev/mapper" not in h1.lockd.log()
    h2.ok("vgchange", "--lock-start", VG)

    # a new LV is visible at once on the other host (VG lock value → set_vg_info)
    h1.ok("lvcreate", "-n", "lv1", "-L", "8m", VG)
    assert "lv1" in h2.ok("lvs", VG)
    # lv1 is active on host1 (persistent LV lock ex): host2 may not change it
    r = h2("lvextend", "-L", "+4m", f"{VG}/lv1")
    assert r.returncode == 5 and "LV locked by other host" in r.stderr
    h1.ok("lvchange", "-an", f"{VG}/lv1")
    h2.ok("lvextend", "-L", "+4m", f"{VG}/lv1")
    assert "12.00m" in h1.ok("lvs", "--units", "m", "-o", "lv_name,lv_size", VG)

    # a global change is visible at once (GL counter → global_invalid)
    h1.ok("pvcreate", pv2)
    assert pv2 in h2.ok("pvs")

    # host 3: the real lvmlockd, leases through the emulated /dev/mapper/<vg>-lvmlock
    mapping = subprocess.run(
        ["losetup", "-f", "--show", "-o", str(PE_START), "--sizelimit", str(LOCKLV_SIZE), pv1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mapping.returncode == 0, mapping.stderr
    lkdev = mapping.stdout.strip()
    bed.cleanups.append(lambda: subprocess.run(["losetup", "-d", lkdev], timeout=60))
    Path("/dev/mapper").mkdir(exist_ok=True)
    link = Path(f"/dev/mapper/{VG}-lvmlock")
    link.symlink_to(lkdev)
    bed.cleanups.append(lambda: link.unlink(missing_ok=True))
    h3 = bed.start_host(3, real_lvmlockd=True)
    h3.ok("vgchange", "--lock-start", VG)
    assert "12.00m" in h3.ok("lvs", "--units", "m", "-o", "lv_name,lv_size", VG)
    assert pv2 in h3.ok("pvs")

    # exclusion across implementations, both ways
    h3.ok("lvchange", "-aey", f"{VG}/lv1")
    r = h1("lvchange", "-aey", f"{VG}/lv1")
    assert r.returncode == 5 and "LV locked by other host" in r.stderr
    h3.ok("lvchange", "-an", f"{VG}/lv1")
    h2.ok("lvchange", "-aey", f"{VG}/lv1")
    r = h3("lvchange", "-aey", f"{VG}/lv1")
    assert r.returncode == 5 and "LV locked by other host" in r.stderr
    h2.ok("lvchange", "-an", f"{VG}/lv1")

    # changes made under the real lvmlockd are seen at once by pylvmlockd hosts, and back
    h3.ok("vgextend", VG, pv2)
    assert "2" in h1.ok("vgs", "--noheadings", "-o", "pv_count", VG).split()
    procs = [
        subprocess.Popen(
            [str(bed.lvm202.lvm), "lvcreate", "-an", "-n", name, "-L", "4m", VG],
            env=h.lvm.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for h, name in ((h2, "lv2"), (h3, "lv3"))
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    listing = h1.ok("lvs", "-o", "lv_name", VG)
    assert "lv2" in listing and "lv3" in listing
    assert "lv2" in h3.ok("lvs", "-o", "lv_name", VG)

    # clean stop: the others leave; vgremove is refused until host1's sanlock sees them gone
    h2.ok("vgchange", "--lock-stop", VG)
    h3.ok("vgchange", "--lock-stop", VG)
    assert until(lambda: h1("vgremove", "-y", VG).returncode == 0, 60), h1.lockd.log()[-3000:]
    assert VG not in h1.ok("vgs")

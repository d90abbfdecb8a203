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

``test_vgrename_*``: lvm's ``vgrename`` of a sanlock VG (``rename_vg_before``,
``rename_vg_final``, §3.16) on a two-host bed, once with pylvmlockd on both hosts and once
with the real lvmlockd on both: refused while the other host is in the lockspace, done
once it left, the VG then usable under its new name on both hosts (lock-start, lvcreate,
LV exclusion) -- the same command results, and the same lockspace/resource names in the
lease areas, in both beds; then renamed by a pylvmlockd host and used by an lvmlockd one.

``test_a_pylvmlockd_restarted_with_adopt_*``: an LV lock taken by ``lvchange -aey``,
pylvmlockd SIGKILLed (sanlock keeps the lease as an orphan), restarted with ``-A 1``: the
lock is held again (``pylvmlockctl --info``, ``sanlock client status``), the other host is
still refused, ``lvchange -an`` releases it; restarted without ``-A`` the orphans go at the
VG's next lock-start.

Root only; sanlock io_timeout 1 s; about 60 s, 3 x 40 s for vgrename, 20 s for adoption.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.lvm202 import Lvm202, Masker
from support.multihost import LOCK_LV_SIZE, PE_START, Bed, Host, LockDaemon

IO_TIMEOUT = 1
VG = f"vglk{os.getpid() % 100000:05d}"
PYLVMLOCKD = LockDaemon(
    (sys.executable, "-m", "pylvmetad.lockd.cli", "-f", "-g", "sanlock", "-o", "{io_timeout}", "-s", "{socket}",
     "-p", "{pidfile}", "--lvmetad-socket", "{lvmetad_socket}", "--lease-device", "pv",
     "--adopt-file", "{dir}/lvmlockd.adopt"),
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


# -- vgrename of a shared VG, under pylvmlockd and under the real lvmlockd ------------------

MiB = 1 << 20


def lease_names(pv: str) -> list[tuple[str, str]]:
    """(lockspace name, resource name) of the sanlock leader records at the lvmlock LV's
    delta-lease area and at 65, 66, 67, 68 MiB (GL, VG, first two LV areas)."""
    names = []
    with open(pv, "rb") as f:
        for k in (0, 65, 66, 67, 68):
            f.seek(PE_START + k * MiB)
            head = f.read(512)
            space, resource = head[56:104], head[104:152]
            names.append((space.split(b"\0")[0].decode(), resource.split(b"\0")[0].decode()))
    return names


def sees_live(host: Host, ls_name: str, host_id: int) -> bool:
    """``host``'s sanlock has read ``host_id``'s delta lease in ``ls_name`` (so lm_hosts counts it)."""
    r = host.sanlock_client("host_status", "-s", ls_name)
    return any(line.split()[:1] == [str(host_id)] and "timestamp 0" not in line for line in r.stdout.splitlines())


Step = tuple[str, int, int, str]


def rename_scenario(bed: Bed, old: str, new: str, *, emulate: bool) -> tuple[list[Step], list[tuple[str, str]]]:
    """The vgrename sequence on hosts 1 and 2; returns every step's masked result and the lease names."""
    h1, h2 = bed.host(1), bed.host(2)
    pv1 = bed.pvs[0]
    mask = Masker(replace={pv1: "<pv1>", bed.pvs[1]: "<pv2>", new: "<new>", old: "<old>"})
    steps: list[Step] = []

    def run(label: str, host: Host, *args: str, rc: int | None = 0) -> str:
        t = host.lvm(*args)
        text = " ".join(mask(t.out + "\n--stderr--\n" + t.result.stderr).split())
        steps.append((label, host.n, t.rc, text))
        if rc is not None:
            assert t.rc == rc, (
                f"{label}: host{host.n} lvm {' '.join(args)}: rc={t.rc}\n{t.out}\n{t.result.stderr}\n"
                f"{host.lockd_log_text()[-3000:]}"
            )
        return t.out + t.result.stderr

    if emulate:  # the real lvmlockd reaches the leases through /dev/mapper/<vg>-lvmlock only
        bed.emulate_lvmlock(old, pv1)
        bed.emulate_lvmlock(new, pv1)
    run("vgcreate", h1, "vgcreate", "--shared", "-s", "4m", "--dataalignment", "1m", old, pv1)
    run("lvcreate lv1", h1, "lvcreate", "-an", "-n", "lv1", "-L", "8m", old)
    run("lock-start h2", h2, "vgchange", "--lock-start", old)
    assert until(lambda: sees_live(h1, f"lvm_{old}", 2), 30), h1.sanlock_client("host_status").stdout
    # refused -- with rc 0: vgrename of 2.02.188 ignores the failure of lockd_rename_vg_before
    out = run("vgrename while h2 is in the lockspace", h1, "vgrename", old, new, rc=0)
    assert f'Lockspace for "{old}" not stopped on other hosts' in out
    run("vgs after the refused vgrename", h1, "vgs", "--noheadings", "-o", "vg_name", old)
    run("lock-stop h2", h2, "vgchange", "--lock-stop", old)

    def renamed() -> bool:
        t = h1.lvm("vgrename", old, new)
        return t.rc == 0 and "not stopped" not in t.result.stderr

    # host1's sanlock notices host2's departure only at its next read of the delta leases
    assert until(renamed, 60), h1.lockd_log_text()[-3000:]

    def started() -> bool:  # vgrename sends start_vg for the new name and does not wait for the join
        t = h1.lvm("vgs", new)
        return t.rc == 0 and "in progress" not in t.result.stderr

    assert until(started, 60), h1.lockd_log_text()[-3000:]
    run("vgs old name", h1, "vgs", old, rc=5)
    run("vgs new name", h1, "vgs", "--noheadings", "-o", "vg_name,lv_count,vg_lock_type", new)
    run("lvcreate lv2 under the new name", h1, "lvcreate", "-an", "-n", "lv2", "-L", "4m", new)
    run("lock-start h2 new name", h2, "vgchange", "--lock-start", new)
    listing = run("lvs h2", h2, "lvs", "--noheadings", "-o", "lv_name", new)
    assert "lv1" in listing and "lv2" in listing
    run("activate lv1 on h2", h2, "lvchange", "-aey", f"{new}/lv1")
    out = run("activate lv1 on h1", h1, "lvchange", "-aey", f"{new}/lv1", rc=5)
    assert "LV locked by other host" in out
    run("deactivate lv1 on h2", h2, "lvchange", "-an", f"{new}/lv1")
    run("lock-stop h2 new name", h2, "vgchange", "--lock-stop", new)
    run("lock-stop h1 new name", h1, "vgchange", "--lock-stop", new)
    names = lease_names(pv1)
    run("lock-start h1 again", h1, "vgchange", "--lock-start", new)
    assert until(lambda: h1.lvm("vgremove", "-y", new).rc == 0, 60), h1.lockd_log_text()[-3000:]
    return steps, names


def rename_bed(lvm2_02: Lvm202, root: Path, lockd: dict[int, LockDaemon]) -> Bed:
    return Bed(root, lvm2_02, hosts_count=2, io_timeout=IO_TIMEOUT, pv_count=2, pv_size=512 << 20, lockd=lockd)


def test_vgrename_of_a_shared_vg_under_pylvmlockd_as_under_lvmlockd(lvm2_02: Lvm202, tmp_path: Path) -> None:
    tag = f"{os.getpid() % 100000:05d}"
    with rename_bed(lvm2_02, tmp_path / "py", {1: PYLVMLOCKD, 2: PYLVMLOCKD}) as bed:
        py, py_names = rename_scenario(bed, f"vgro{tag}", f"vgrn{tag}", emulate=False)
    with rename_bed(lvm2_02, tmp_path / "c", {}) as bed:
        c, c_names = rename_scenario(bed, f"vgco{tag}", f"vgcn{tag}", emulate=True)
    # the leases carry the new lockspace name in both beds, GL/VG/LV resources unchanged
    assert py_names[0][0] == f"lvm_vgrn{tag}" and c_names[0][0] == f"lvm_vgcn{tag}"
    py_mask, c_mask = Masker(replace={f"vgrn{tag}": "<new>"}), Masker(replace={f"vgcn{tag}": "<new>"})
    strip = [(py_mask(space), py_mask(res)) for space, res in py_names]
    assert strip == [(c_mask(space), c_mask(res)) for space, res in c_names]
    assert [res for _, res in strip[1:]] == ["GLLK", "VGLK", "<uuid:1>", "<uuid:2>"]  # lv1, lv2
    assert [s[:3] for s in py] == [s[:3] for s in c]
    for a, b in zip(py, c, strict=True):
        assert a == b, f"{a[0]}:\npylvmlockd: {a[3]}\nlvmlockd:   {b[3]}"


def test_vgrename_by_pylvmlockd_in_a_mixed_cluster(lvm2_02: Lvm202, tmp_path: Path) -> None:
    """Host 1 (pylvmlockd) renames; host 2 (the real lvmlockd) starts and uses the renamed VG."""
    tag = f"{os.getpid() % 100000:05d}"
    with rename_bed(lvm2_02, tmp_path / "mixed", {1: PYLVMLOCKD}) as bed:
        steps, names = rename_scenario(bed, f"vgmo{tag}", f"vgmn{tag}", emulate=True)
    assert names[0][0] == f"lvm_vgmn{tag}"
    assert ("activate lv1 on h2", 2, 0) in [s[:3] for s in steps]  # lvmlockd took the renamed LV lease


# -- -A 1: a restarted pylvmlockd adopts the LV locks its dead predecessor held -------------


def lockctl_info(host: Host) -> str:
    env = dict(os.environ, LVM_LVMLOCKD_SOCKET=str(host.lockd_socket))
    r = subprocess.run(
        [sys.executable, "-m", "pylvmetad.lockd.ctl", "--info"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def sanlock_resources(host: Host, ls_name: str) -> list[str]:
    """``sanlock client status`` lines of the resources (held or orphaned) in ``ls_name``."""
    r = host.sanlock_client("status")
    return [line for line in r.stdout.splitlines() if line.startswith("r ") and f" {ls_name}:" in line]


def kill_lockd(host: Host) -> None:
    assert host.lockd is not None
    host.lockd.kill(signal.SIGKILL)
    assert host.lockd.wait(10)


def test_a_pylvmlockd_restarted_with_adopt_still_holds_the_lv_lock(lvm2_02: Lvm202, tmp_path: Path) -> None:
    vg = f"vgad{os.getpid() % 100000:05d}"
    ls_name = f"lvm_{vg}"
    bed = Bed(
        tmp_path / "bed",
        lvm2_02,
        hosts_count=2,
        io_timeout=IO_TIMEOUT,
        pv_count=1,
        pv_size=512 << 20,
        lockd={1: PYLVMLOCKD, 2: PYLVMLOCKD},
    )
    with bed:
        h1, h2 = bed.host(1), bed.host(2)
        ok(h1, "vgcreate", "--shared", "-s", "4m", "--dataalignment", "1m", vg, bed.pvs[0])
        ok(h1, "lvcreate", "-an", "-n", "lv1", "-L", "8m", vg)
        ok(h2, "vgchange", "--lock-start", vg)
        lv_uuid = ok(h1, "lvs", "--noheadings", "-o", "lv_uuid", f"{vg}/lv1").split()[0]
        ok(h1, "lvchange", "-aey", f"{vg}/lv1")  # the LV lock, persistent ex
        adopt_file = h1.dir / "lvmlockd.adopt"
        assert "LV: " in adopt_file.read_text() and f" {lv_uuid} " in adopt_file.read_text()

        # the daemon dies (SIGKILL): sanlock keeps its lockspace and the LV lease, as an orphan
        kill_lockd(h1)
        assert any(lv_uuid in line for line in sanlock_resources(h1, ls_name)), h1.sanlock_client("status").stdout
        assert "LV locked by other host" in refused(h2, "lvchange", "-aey", f"{vg}/lv1")

        # restarted with -A 1: the lockspace is started again and the LV lock is ours again
        h1.start_lockd("-A", "1")
        info = lockctl_info(h1)
        assert f"ls_name={ls_name}" in info, info
        assert f"info=r name={lv_uuid} type=lv mode=ex" in info, info
        assert "info=lk mode=ex version=0 flags=0x1 client_id=0" in info, info
        assert any(lv_uuid in line for line in sanlock_resources(h1, ls_name))
        assert "LV locked by other host" in refused(h2, "lvchange", "-aey", f"{vg}/lv1")
        # and it is an ordinary lock of the new instance: lvchange -an releases it
        ok(h1, "lvchange", "-an", f"{vg}/lv1")
        assert f" {lv_uuid} " not in adopt_file.read_text()
        ok(h2, "lvchange", "-aey", f"{vg}/lv1")

        # without -A the restart drops the dead instance's locks (at the VG's next lock-start)
        kill_lockd(h2)
        assert "LV locked by other host" in refused(h1, "lvchange", "-aey", f"{vg}/lv1")
        h2.start_lockd()
        assert f"ls_name={ls_name}" not in lockctl_info(h2)
        ok(h2, "vgchange", "--lock-start", vg)
        assert f"name={lv_uuid}" not in lockctl_info(h2)
        assert not any(lv_uuid in line for line in sanlock_resources(h2, ls_name)), h2.sanlock_client("status").stdout
        ok(h1, "lvchange", "-aey", f"{vg}/lv1")
        ok(h1, "lvchange", "-an", f"{vg}/lv1")

        ok(h2, "vgchange", "--lock-stop", vg)
        assert until(lambda: h1.lvm("vgremove", "-y", vg).rc == 0, 60), h1.lockd_log_text()[-3000:]

"""pylvmetad-scan --watch-disks: changes written behind the cache's back reach the next LVM 2.02 command.

A VG is made through the daemon (LVM 2.02 with ``use_lvmetad=1``: the cache is LVM's own,
with LVM's token).  The watcher runs beside it, polling every 0.1 s.  Then LVM 2.02 with
``use_lvmetad=0`` — as a CSI driver's or a container's own ``lvm`` would — makes each change
of the issue's list: lvcreate, lvextend, lvremove, vgcfgrestore (back to an older backup),
vgextend, pvcreate, vgremove.  After each one:

* the watcher reports, by itself, that it told the daemon something (a ``sent`` line);
* ``SIGUSR1`` makes it poll once more and say so (the test's synchronisation: nothing is
  slept on);
* ``pvs``, ``vgs`` and ``lvs`` through the daemon print what the same commands print reading
  the disks (``use_lvmetad=0``) — with ``--refresh`` without LVM's "Reading VG ... from disk
  because lvmetad metadata is invalid" warning, since the cache was corrected, not only
  invalidated.

Without ``--refresh`` the VG changes are seen through ``vg_invalid`` (LVM rereads the VG and
warns), and the PV set changes leave ``global_invalid`` set (LVM 2.02 without lvmlockd does
not act on it: docs/protocol.md §7; that is what ``--refresh`` is for).

Throughout, the cache's token stays LVM's, and on pylvmetad (its ``stats``) no command and
not the watcher ran a full population (no ``pv_clear_all``).  Against the C lvmetad and
pylvmetad; about 15 s for the four runs.  Then the same with Debian's lvm2 2.03 as the
writer, and a disk that goes away and comes back (the device set, from uevents).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvmetad.scanner.lvmconf import read_lvm_config
from pylvmetad.wire.codec import Section, parse
from support import lvm202
from support.differential import Bed, raw_request
from support.lvm202 import LoopDevices, Lvm, Lvm202
from support.watcher import WatcherProcess

REPORTS = (
    ("pvs", "-o", "pv_name,vg_name,pv_size,pv_free,pv_uuid"),
    ("vgs", "-o", "vg_name,vg_uuid,vg_seqno,pv_count,lv_count,vg_size,vg_free"),
    ("lvs", "-a", "-o", "lv_name,vg_name,lv_size,lv_uuid"),
)
INVALID_WARNING = "because lvmetad metadata is invalid"


class Outside:
    """LVM 2.02 with use_lvmetad=0 on the bed's devices: the disks' truth."""

    def __init__(self, bed: Bed) -> None:
        conf = bed.root / "etc-outside"
        lvm202.write_lvm_conf(conf, bed.devices, locking_dir=bed.root / "lock", use_lvmetad=False)
        self.run = Lvm(bed.lvm2_02, conf, bed.daemon.socket_path, bed.daemon.pidfile)

    def __call__(self, *args: str) -> str:
        return self.run(*args).check().stdout


def reports(run: Lvm) -> tuple[dict[str, str], str]:
    out, err = {}, ""
    for argv in REPORTS:
        r = run(*argv, "--noheadings").check()
        out[argv[0]] = lvm202.sorted_lines(r.stdout)
        err += r.stderr
    return out, err


def request_counts(bed: Bed) -> dict[str, int]:
    requests = parse(raw_request(bed.daemon.socket_path, 'request="stats"')).section("requests") or Section()
    return {name: entry.get_int64("count") or 0 for name, entry in requests.sections()}


def global_info(bed: Bed) -> Section:
    return parse(raw_request(bed.daemon.socket_path, 'request="get_global_info"'))


@pytest.mark.parametrize("mode", ["refresh", "invalidate"])
@pytest.mark.parametrize("kind", lvm202.DAEMON_KINDS)
def test_changes_behind_the_caches_back_reach_the_next_command(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path, kind: str, mode: str
) -> None:
    loops.wipe()
    bed = Bed(kind, lvm2_02, loops, tmp_path)
    d0, d1, d2, d3 = bed.devices
    refresh = mode == "refresh"
    with bed.daemon:
        bed.ok("pvcreate", d0, d1, d2)
        bed.ok("vgcreate", "vg1", d0, d1)
        bed.ok("lvcreate", "-n", "lv1", "-L", "8M", "vg1")
        token = global_info(bed).get_str("token")
        assert token == read_lvm_config(bed.conf_dir).token
        before = request_counts(bed) if kind == "pylvmetad" else {}
        outside = Outside(bed)
        backup = tmp_path / "vg1.backup"

        args = ["--interval", "0.1", *(["--refresh"] if refresh else [])]
        with WatcherProcess(bed.daemon.socket_path, bed.conf_dir, *args) as watcher:
            assert "3 PV(s), 1 VG(s)" in watcher.lines[-1], watcher.lines

            def change(*argv: str, label: bool = False) -> None:
                watcher.drain()
                outside(*argv)
                watcher.wait_for(r"^watch-disks: sent ")  # found by its own polling
                watcher.sync()
                if not refresh and label:
                    assert global_info(bed).get_int64("global_invalid") == 1, argv
                    return
                truth, _ = reports(outside.run)
                seen, warnings = reports(bed.run)
                assert seen == truth, f"after {argv}: the cache serves\n{seen}\nthe disks hold\n{truth}"
                if refresh:
                    assert INVALID_WARNING not in warnings, warnings
                else:
                    assert INVALID_WARNING in warnings, warnings

            change("lvcreate", "-n", "lv2", "-L", "4M", "vg1")
            change("lvextend", "-L", "+4M", "vg1/lv1")
            outside("vgcfgbackup", "-f", str(backup), "vg1")
            change("lvremove", "-f", "vg1/lv2")
            change("vgcfgrestore", "-f", str(backup), "vg1")  # lv2 is back, at a seqno not above the cache's
            if refresh or kind == "pylvmetad":
                change("vgextend", "vg1", d2, label=True)
                change("pvcreate", d3, label=True)
                change("vgremove", "-f", "vg1", label=True)
            assert watcher.stop() == 0
        assert watcher.lines[-1] == "watch-disks: stopped", watcher.lines

        assert global_info(bed).get_str("token") == token
        if kind == "pylvmetad":
            after = request_counts(bed)
            assert after.get("pv_clear_all", 0) == before.get("pv_clear_all", 0), (before, after)
            assert after.get("token_update", 0) == before.get("token_update", 0), (before, after)


def lvm_2_03(bed: Bed) -> Lvm:
    """Debian's lvm2 2.03 on the bed's devices: no lvmetad at all, so it always writes behind the cache."""
    conf = bed.root / "etc-2.03"
    conf.mkdir()
    flist = ", ".join(f'"{f}"' for f in lvm202.filter_list(bed.devices))
    (conf / "lvm.conf").write_text(
        f'devices {{\n  scan = [ "/dev" ]\n  filter = [ {flist} ]\n  global_filter = [ {flist} ]\n'
        '  obtain_device_list_from_udev = 0\n  use_devicesfile = 0\n  hints = "none"\n}\n'
        "activation {\n  udev_sync = 0\n  udev_rules = 0\n  monitoring = 0\n}\n"
        f'global {{\n  activation = 0\n  event_activation = 0\n  locking_dir = "{bed.root / "lock"}"\n}}\n'
        "backup {\n  backup = 0\n  archive = 0\n}\n"
    )
    system = Lvm202(Path("/usr"))  # Debian's: /usr/sbin/lvm, its own libraries
    return Lvm(system, conf, bed.daemon.socket_path, bed.daemon.pidfile)


@pytest.mark.parametrize("kind", lvm202.DAEMON_KINDS)
def test_lvm_2_03_writing_behind_the_cache_is_seen(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path, kind: str
) -> None:
    """The same with Debian's lvm2 2.03 as the writer (``--refresh``; about 4 s per daemon)."""
    loops.wipe()
    bed = Bed(kind, lvm2_02, loops, tmp_path)
    d0, d1, d2, _ = bed.devices
    with bed.daemon:
        bed.ok("pvcreate", d0, d1, d2)
        bed.ok("vgcreate", "vg1", d0, d1)
        other = lvm_2_03(bed)
        truth_of = Outside(bed).run
        with WatcherProcess(bed.daemon.socket_path, bed.conf_dir, "--interval", "0.1", "--refresh") as watcher:
            for argv in (
                ("lvcreate", "-an", "-Zn", "-n", "lv1", "-L", "8M", "vg1"),
                ("lvextend", "-L", "+4M", "vg1/lv1"),
                ("vgextend", "vg1", d2),
                ("lvremove", "-f", "vg1/lv1"),
            ):
                watcher.drain()
                other(*argv).check()
                watcher.wait_for(r"^watch-disks: sent ")
                watcher.sync()
                truth, _ = reports(truth_of)
                seen, warnings = reports(bed.run)
                assert seen == truth, f"after lvm 2.03 {argv}: the cache serves\n{seen}\nthe disks hold\n{truth}"
                assert INVALID_WARNING not in warnings, warnings


def test_a_device_that_goes_away_and_comes_back(lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path) -> None:
    """The system's device set (no DEVICE argument: uevents, global_filter): an orphan PV's disk
    goes to size 0 and back; the cache follows (``--refresh``; about 3 s)."""
    loops.wipe()
    bed = Bed("pylvmetad", lvm2_02, loops, tmp_path)
    d0, _, _, d3 = bed.devices
    with bed.daemon:
        bed.ok("pvcreate", d0, d3)
        bed.ok("vgcreate", "vg1", d0)
        outside = Outside(bed)
        with WatcherProcess(bed.daemon.socket_path, bed.conf_dir, "--interval", "0.1", "--refresh") as watcher:
            assert "watching 4 device(s), 2 PV(s), 1 VG(s)" in watcher.lines[-1], watcher.lines
            for step in (loops.hide, loops.restore):
                watcher.drain()
                step(d3)
                watcher.wait_for(r"^watch-disks: sent rescan ")
                watcher.sync()
                truth, _ = reports(outside.run)
                seen, _ = reports(bed.run)
                assert (d3 in seen["pvs"]) == (step == loops.restore), seen
                assert seen == truth, f"after {step.__name__}: the cache serves\n{seen}\nthe disks hold\n{truth}"


def requests_but_stats(bed: Bed) -> dict[str, int]:
    return {name: n for name, n in request_counts(bed).items() if name != "stats"}


@pytest.mark.parametrize("mode", ["refresh", "invalidate"])
def test_steady_state_and_after_a_change_nothing_is_sent(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path, mode: str
) -> None:
    """No echo: once a change has been told, further polls send no request at all (pylvmetad's
    ``stats`` counts every request by name; about 2 s per mode)."""
    loops.wipe()
    bed = Bed("pylvmetad", lvm2_02, loops, tmp_path)
    d0, d1, _, _ = bed.devices
    with bed.daemon:
        bed.ok("pvcreate", d0, d1)
        bed.ok("vgcreate", "vg1", d0, d1)
        args = ["--interval", "0.05", *(["--refresh"] if mode == "refresh" else [])]
        with WatcherProcess(bed.daemon.socket_path, bed.conf_dir, *args) as watcher:
            watcher.sync()
            quiet = requests_but_stats(bed)
            for _ in range(3):
                assert watcher.sync().groups() == ("0", "0", "0")
            assert requests_but_stats(bed) == quiet
            Outside(bed)("lvcreate", "-n", "lv1", "-L", "4M", "vg1")
            watcher.wait_for(r"^watch-disks: sent ")
            watcher.sync()
            told = requests_but_stats(bed)
            assert told != quiet  # the change was told
            for _ in range(3):
                assert watcher.sync().groups() == ("0", "0", "0")
            assert requests_but_stats(bed) == told

"""Real LVM 2.02.188 commands against pylvmetad and against the C lvmetad, side by side.

Every scenario below is run by :func:`conftest.run_differential` twice on the same loop
devices: once with the original C lvmetad, once with pylvmetad.  LVM's exit statuses and
(masked) output must be the same command for command, and so must the daemons' final
caches.  The scenarios are what an administrator (or udev, or a lock manager) does to
a host; each also asserts the few facts that make it meaningful, so a scenario that
silently stops exercising its case fails instead of passing on two equal no-ops.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.differential import Bed, run_differential
from support.lvm202 import LoopDevices, Lvm202


def test_create_extend_rename_remove_with_reports_after_each(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        d0, d1, d2, _ = bed.devices
        steps: list[tuple[str, ...]] = [
            ("pvcreate", d0, d1, d2),
            ("vgcreate", "vg1", d0, d1),
            ("lvcreate", "-n", "lv1", "-L", "8M", "vg1"),
            ("lvextend", "-L", "+4M", "vg1/lv1"),
            ("lvrename", "vg1", "lv1", "lv2"),
            ("vgextend", "vg1", d2),
            ("lvcreate", "-n", "lv3", "-L", "4M", "vg1", d2),
            ("lvremove", "-f", "vg1/lv3"),
            ("vgreduce", "vg1", d2),
            ("vgrename", "vg1", "vg2"),
            ("lvremove", "-f", "vg2/lv2"),
            ("vgremove", "vg2"),
            ("pvremove", d0, d1, d2),
        ]
        bed.report()
        for step in steps:
            bed.ok(*step)
            bed.report()
        assert bed.run("pvs", "--noheadings").stdout.strip() == ""

    run_differential(scenario, lvm2_02, loops, tmp_path)


def minor(device: str) -> str:
    return str(os.minor(os.stat(device).st_rdev))


def major(device: str) -> str:
    return str(os.major(os.stat(device).st_rdev))


def three_pvs_one_vg(bed: Bed) -> None:
    d0, d1, d2, _ = bed.devices
    bed.ok("pvcreate", d0, d1, d2)
    bed.ok("vgcreate", "vg1", d0, d1)
    bed.ok("lvcreate", "-n", "lv1", "-L", "4M", "vg1", d0)


def test_pvscan_cache_all_one_device_autoactivate_and_vgscan(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        d0, d1, _, _ = bed.devices
        three_pvs_one_vg(bed)
        bed.restart()
        bed.ok("pvscan", "--cache", unordered=True)
        bed.report()
        bed.restart()
        bed.ok("pvscan", "--cache", d0)
        bed.ctl("vg_list")
        bed.ok("vgs")
        bed.restart()
        bed.ok("pvscan", "--cache", "--major", major(d1), "--minor", minor(d1))
        bed.ctl("pv_list")
        bed.ok("pvscan", "--cache", "-aay", unordered=True)
        bed.ok("pvscan", "--cache", "-aay", d0, unordered=True)
        bed.ok("vgscan", "--cache", unordered=True)
        bed.ok("pvscan", unordered=True)
        bed.ok("vgscan", unordered=True)
        bed.ok("lvscan", unordered=True)
        bed.report()
        assert "vg1" in bed.run("vgs", "--noheadings", "-o", "vg_name").stdout

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_pv_wiped_and_metadata_changed_behind_the_caches_back_then_rescanned(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        _d0, d1, d2, _ = bed.devices
        three_pvs_one_vg(bed)
        bed.wipe(d2)
        bed.lvm("pvs")  # the cache still lists the orphan
        bed.ok("pvscan", "--cache", d2)
        bed.lvm("pvs")
        bed.outside("lvcreate", "-n", "lv2", "-L", "4M", "vg1", d1)
        stale = bed.ok("lvs", "--noheadings", "-o", "lv_name").stdout.split()
        bed.ok("pvscan", "--cache")
        fresh = bed.ok("lvs", "--noheadings", "-o", "lv_name").stdout.split()
        assert (stale, fresh) == (["lv1"], ["lv1", "lv2"])
        bed.wipe(d1)
        bed.lvm("vgs")
        bed.lvm("pvscan", "--cache", d1)
        bed.lvm("vgs", "-o", "+vg_missing_pv_count")
        bed.lvm("lvs", "-a", "-o", "+devices")
        bed.report_lenient()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_missing_pv_then_vgreduce_removemissing_then_it_comes_back(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        d0, d1, _, _ = bed.devices
        bed.ok("pvcreate", d0, d1)
        bed.ok("vgcreate", "vg1", d0, d1)
        bed.ok("lvcreate", "-n", "lv1", "-L", "4M", "vg1", d0)
        bed.ok("lvcreate", "-n", "lv2", "-L", "4M", "vg1", d1)
        bed.hide(d1)
        bed.lvm("pvscan", "--cache", "--major", major(d1), "--minor", minor(d1))
        partial = bed.lvm("vgs", "--noheadings", "-o", "vg_attr,vg_missing_pv_count", "vg1").stdout.split()
        assert partial == ["wz-pn-", "1"], partial
        bed.lvm("lvs", "-a", "-o", "+devices")
        bed.lvm("pvs")
        bed.lvm("vgreduce", "--removemissing", "vg1")
        bed.lvm("vgreduce", "--removemissing", "--force", "vg1")
        bed.report_lenient()
        bed.restore(d1)
        bed.lvm("pvscan", "--cache", d1)
        bed.report_lenient()
        bed.lvm("vgck", "vg1")

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_cloned_pv_gives_duplicates_and_global_disable_until_the_clone_is_wiped(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        d0, _, _, d3 = bed.devices
        bed.ok("pvcreate", d0)
        bed.ok("vgcreate", "vg1", d0)
        bed.ok("lvcreate", "-n", "lv1", "-L", "4M", "vg1")
        bed.clone(d0, d3)
        bed.lvm("pvscan", "--cache", unordered=True)
        bed.ctl("get_global_info")
        assert "DUPLICATES" in bed.run.ctl("get_global_info").stdout
        bed.report_lenient()
        bed.lvm("vgs", "-o", "+vg_uuid,pv_name")
        bed.wipe(d3)
        bed.lvm("pvscan", "--cache", unordered=True)
        bed.ctl("get_global_info")
        assert "global_disable = 0" in bed.run.ctl("get_global_info").stdout
        bed.report()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_daemon_restart_mid_scenario_and_commands_repopulate(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        three_pvs_one_vg(bed)
        bed.restart()
        bed.ok("vgs")  # an empty daemon: the command rescans and fills it
        bed.ctl("vg_list")
        bed.ok("lvcreate", "-n", "lv2", "-L", "4M", "vg1")
        bed.restart()
        bed.ok("lvcreate", "-n", "lv3", "-L", "4M", "vg1")
        bed.report()
        assert bed.run("lvs", "--noheadings", "-o", "lv_name").stdout.split() == ["lv1", "lv2", "lv3"]

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_daemon_stopped_commands_fall_back_to_scanning_with_lvms_warning(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        _d0, _d1, d2, _ = bed.devices
        three_pvs_one_vg(bed)
        bed.stop()
        fallback = bed.lvm("vgs")
        assert "Failed to connect to lvmetad. Falling back to device scanning." in fallback.stderr
        bed.lvm("lvcreate", "-n", "lv2", "-L", "4M", "vg1")
        bed.lvm("vgextend", "vg1", d2)
        bed.start()
        bed.report()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_invalidation_by_lvmetactl_global_and_per_vg(lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path) -> None:
    def scenario(bed: Bed) -> None:
        three_pvs_one_vg(bed)
        bed.ctl("set_global_invalid", "1")
        bed.ctl("get_global_info")
        bed.ok("vgs")
        bed.ok("pvs")
        bed.ctl("get_global_info")
        bed.ok("lvcreate", "-n", "lv2", "-L", "4M", "vg1")
        bed.ctl("get_global_info")
        bed.ok("pvscan", "--cache")
        # LVM 2.02.188 commands act on global_invalid only under lvmlockd: the flag
        # stays until someone clears it, with either daemon.
        assert "global_invalid = 1" in bed.ctl("get_global_info").stdout
        bed.ctl("set_global_invalid", "0")
        bed.ctl("get_global_info")
        vgid = bed.vgid("vg1")
        seqno = int(bed.run("vgs", "--noheadings", "-o", "vg_seqno", "vg1").check().stdout)
        bed.ctl("set_vg_version", vgid, "vg1", str(seqno + 1))
        invalid = bed.ctl("vg_lookup_name", "vg1").stdout
        assert "vg_invalid" in invalid
        reread = bed.ok("lvs")
        assert "Reading VG vg1 from disk because lvmetad metadata is invalid." in reread.stderr
        bed.ctl("vg_lookup_name", "vg1")
        bed.ok("lvcreate", "-n", "lv3", "-L", "4M", "vg1")
        cleared = bed.ctl("vg_lookup_name", "vg1").stdout
        assert "vg_invalid" not in cleared
        bed.ctl("set_vg_version", vgid, "vg1", "0")
        bed.ok("vgs")
        bed.ctl("vg_lookup_uuid", vgid)
        bed.ok("vgchange", "--addtag", "seen", "vg1")
        bed.ctl("vg_lookup_uuid", vgid)
        bed.report()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_pylvmetad_scan_in_place_of_pvscan_cache_gives_the_same_reports(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    def scenario(bed: Bed) -> None:
        _d0, d1, d2, d3 = bed.devices
        three_pvs_one_vg(bed)
        bed.ok("pvcreate", "--metadatacopies", "0", d3)
        bed.ok("vgextend", "vg1", d3)
        bed.ok("vgcreate", "vg2", d2)
        bed.ok("lvcreate", "-n", "lv2", "-L", "8M", "vg1", d1)
        bed.restart()
        if bed.kind == "lvmetad":
            bed.populate(bed.run("pvscan", "--cache"))
        else:
            bed.populate(bed.scan())
        bed.ctl("get_global_info")  # the same token: vgs below trusts the cache
        bed.report()
        bed.ok("lvcreate", "-n", "lv3", "-L", "4M", "vg2")
        bed.restart()
        if bed.kind == "lvmetad":
            bed.populate(bed.run("pvscan", "--cache", d2))
        else:
            bed.populate(bed.scan(d2))
        bed.ctl("pv_list")
        bed.report()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_what_else_an_admin_runs(lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path) -> None:
    def scenario(bed: Bed) -> None:
        d0, d1, d2, _ = bed.devices
        three_pvs_one_vg(bed)
        bed.lvm("vgchange", "-ay", "vg1")
        bed.lvm("lvchange", "-an", "vg1/lv1")
        bed.ok("lvchange", "--addtag", "lt", "vg1/lv1")
        bed.ok("vgchange", "--addtag", "vt", "vg1")
        bed.ok("pvchange", "--addtag", "pt", d0)
        bed.ok("lvs", "-o", "+lv_tags")
        bed.ok("vgs", "-o", "+vg_tags")
        bed.ok("pvs", "-o", "+pv_tags")
        bed.ok("vgck", "vg1")
        bed.lvm("pvck", d0)
        bed.ok("pvchange", "-u", d2)
        bed.ok("vgchange", "-u", "vg1")
        bed.ok("vgcfgbackup", "-f", str(bed.root / "vg1.backup"), "vg1")
        bed.ok("lvresize", "-L", "12M", "vg1/lv1")
        bed.ok("lvreduce", "-f", "-L", "8M", "vg1/lv1")
        bed.lvm("vgcfgrestore", "-f", str(bed.root / "vg1.backup"), "vg1")
        bed.ok("lvs", "-o", "+lv_size")
        bed.ok("vgsplit", "vg1", "vg2", d1)
        bed.report()
        bed.ok("vgmerge", "vg1", "vg2")
        bed.ok("vgchange", "-an", "vg1")
        bed.ok("vgexport", "vg1")
        bed.lvm("vgs", "-o", "+vg_exported")
        bed.ok("vgimport", "vg1")
        bed.ok("pvresize", d0)
        bed.ok("vgchange", "-x", "n", "vg1")
        bed.lvm("lvcreate", "-n", "refused", "-L", "4M", "vg1")
        bed.ok("vgchange", "-x", "y", "vg1")
        bed.ok("vgdisplay", "vg1")
        bed.ok("pvdisplay", d0)
        bed.ok("lvdisplay", "vg1/lv1")
        bed.ok("vgs", "-o", "all", "--reportformat", "json")
        bed.ok("pvs", "-a")
        bed.ok("lvmdiskscan")
        bed.ok("vgremove", "-f", "vg1")
        bed.report()

    run_differential(scenario, lvm2_02, loops, tmp_path)


def test_a_difference_between_the_daemons_fails_the_comparison(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path
) -> None:
    """The comparison itself can fail: a scenario that behaves differently per daemon."""

    def scenario(bed: Bed) -> None:
        bed.ok("pvcreate", bed.devices[0])
        if bed.kind == "pylvmetad":
            bed.ok("vgcreate", "vg1", bed.devices[0])
        bed.ok("pvs")

    with pytest.raises(AssertionError, match=r"LVM 2\.02 saw different behaviour"):
        run_differential(scenario, lvm2_02, loops, tmp_path)

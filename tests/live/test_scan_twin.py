"""pylvmetad-scan's cache equals the C lvmetad's after LVM's own ``pvscan --cache``.

The same disks (loop devices made by LVM 2.02: VGs with several PVs, a PV without
metadata area, a PV with two, an orphan, LVs over several segments, tags) are scanned
twice: by the real ``pvscan --cache`` into the C lvmetad, and by ``pylvmetad-scan
--cache`` into pylvmetad.  Both daemons are then asked the same questions — pv_list,
vg_list, get_global_info (the token), vg_lookup of every VG by uuid and by name,
pv_lookup of every PV by uuid and by device, the dump — and must answer alike, as
order-free trees.  Nothing is masked but the daemon's pid and the update clock: the
disks, hence every UUID and device number, are the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pylvmetad.wire.codec import parse
from support import lvm202
from support.differential import Bed, canonical, pretty, raw_request
from support.lvm202 import LoopDevices, Lvm202


def split_pair(line: str) -> tuple[str, str]:
    """A two-column report line (name, uuid)."""
    name, uuid = line.split()
    return name, uuid


def unmasked(text: str) -> str:
    return text


def answers(bed: Bed, vgs: list[tuple[str, str]], pvs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The daemon's replies to every read-only question, keyed by the question."""
    questions = ['request="pv_list"', 'request="vg_list"', 'request="get_global_info"', 'request="dump"']
    for name, uuid in vgs:
        questions += [f'request="vg_lookup"\nuuid="{uuid}"', f'request="vg_lookup"\nname="{name}"']
    for device, uuid in pvs:
        questions += [f'request="pv_lookup"\nuuid="{uuid}"', f'request="pv_lookup"\ndevice={os.stat(device).st_rdev}']
    return {q: pretty(canonical(parse(raw_request(bed.daemon.socket_path, q)), unmasked)) for q in questions}


def pairs(report: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in (line.split() for line in report.splitlines())]


def make_disks(bed: Bed) -> None:
    d0, d1, d2, d3 = bed.devices
    bed.ok("pvcreate", d0, d2)
    bed.ok("pvcreate", "--metadatacopies", "0", d1)
    bed.ok("pvcreate", "--pvmetadatacopies", "2", d3)
    bed.ok("vgcreate", "vg1", d0, d1)
    bed.ok("vgcreate", "vg2", d2)
    bed.ok("lvcreate", "-n", "lv1", "-L", "8M", "vg1", d0)
    bed.ok("lvcreate", "-n", "lv2", "-L", "36M", "vg1")
    bed.ok("lvextend", "-L", "+4M", "vg1/lv1")
    bed.ok("lvchange", "--addtag", "twin", "vg1/lv2")
    bed.ok("vgchange", "--addtag", "twin", "vg2")
    bed.ok("lvcreate", "-n", "only", "-L", "4M", "vg2")


@pytest.mark.parametrize("scope", ["all devices", "one device"])
def test_pylvmetad_scan_fills_pylvmetad_as_pvscan_cache_fills_the_c_daemon(
    lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path, scope: str
) -> None:
    loops.wipe()
    maker = Bed("lvmetad", lvm2_02, loops, tmp_path / "make")
    with maker.daemon:
        make_disks(maker)
        vgs = [
            split_pair(line) for line in maker.run("vgs", "--noheadings", "-o", "vg_name,vg_uuid").stdout.splitlines()
        ]
        pvs = [
            split_pair(line) for line in maker.run("pvs", "--noheadings", "-o", "pv_name,pv_uuid").stdout.splitlines()
        ]
    assert len(vgs) == 2 and len(pvs) == 4, (vgs, pvs)
    only = [] if scope == "all devices" else [loops.devices[0]]

    c = Bed("lvmetad", lvm2_02, loops, tmp_path / "c")
    with c.daemon:
        c.ok("pvscan", "--cache", *only)
        expected = answers(c, vgs, pvs)
    py = Bed("pylvmetad", lvm2_02, loops, tmp_path / "py")
    with py.daemon:
        scanned = py.scan(*only)
        assert scanned.rc == 0, scanned
        actual = answers(py, vgs, pvs)

    # the comparison is about a full cache, not two empty ones
    listed = "\n".join(expected['request="pv_list"'])
    assert all(uuid in listed for _, uuid in pvs), listed
    for question, want in expected.items():
        assert actual[question] == want, f"{question!r}:\n" + "\n".join(lvm202.difflib_lines(want, actual[question]))

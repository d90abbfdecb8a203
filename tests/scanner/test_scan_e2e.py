"""pylvmetad-scan end to end: real LVM PVs on loop devices, a real pylvmetad, and LVM's own reports.

Every test builds its PVs with lvm2 (pvcreate/vgcreate/``lvcreate -an -Zn``)
on loop devices it attaches itself (detached by the fixture, also on failure),
under a lvm.conf that only sees those devices.  The scanner's view, as the
daemon then serves it (pv_list/vg_list/vg_lookup), must match ``pvs``/``vgs``/
``lvs --reportformat json``.  LVM 2.03 does not talk to lvmetad at all, so
every LVM command here changes the disks "behind the cache's back".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.client import Client
from pylvmetad.scanner.ondisk import read_pv
from pylvmetad.scanner.scan import DeviceFilter, Scanner, filter_token, main, system_block_devices
from pylvmetad.wire.codec import Section
from support.daemon import DaemonProcess
from support.lvm_sandbox import LvmSandbox, unique_name


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[LvmSandbox]:
    box = LvmSandbox(tmp_path / "lvm")
    try:
        yield box
    finally:
        box.detach_all()


def scan(daemon: DaemonProcess, filters: list[str], *args: str) -> None:
    argv = ["--cache", "--socket", daemon.socket_path]
    for f in filters:
        argv += ["--filter", f]
    assert main([*argv, *args]) == 0


def client(daemon: DaemonProcess) -> Client:
    return Client(daemon.socket_path, cmd="test")


def cached_pvs(c: Client) -> dict[str, Section]:
    return dict((c.pv_list().section("physical_volumes") or Section()).sections())


def cached_vg(c: Client, vgid: str) -> Section:
    reply = c.vg_lookup(uuid=vgid)
    metadata = reply.section("metadata")
    assert metadata is not None
    return reply


def lv_names(vg_reply: Section) -> dict[str, str]:
    lvs = vg_reply.section("metadata/logical_volumes") or Section()
    return {name: sec.get_str("id") or "" for name, sec in lvs.sections()}


def assert_cache_matches_lvm(c: Client, box: LvmSandbox, vgnames: list[str]) -> None:
    """pv_list/vg_list/vg_lookup against pvs/vgs/lvs of the sandbox."""
    pvs = box.report("pvs", "pv_name,pv_uuid,vg_name,vg_uuid,dev_size")
    cached = cached_pvs(c)
    assert set(cached) == {row["pv_uuid"] for row in pvs}
    for row in pvs:
        meta = cached[row["pv_uuid"]]
        assert meta.get_int64("device") == os.stat(row["pv_name"]).st_rdev
        assert meta.get_int64("dev_size") == int(row["dev_size"])
        if row["vg_name"]:
            assert (meta.get_str("vgname"), meta.get_str("vgid")) == (row["vg_name"], row["vg_uuid"])
        else:
            assert meta.get_str("vgname") in (None, "#orphan")
    vgs = box.report("vgs", "vg_name,vg_uuid,vg_seqno", *vgnames)
    listed = {vgid: sec.get_str("name") for vgid, sec in (c.vg_list().section("volume_groups") or Section()).sections()}
    assert listed == {row["vg_uuid"]: row["vg_name"] for row in vgs}
    for row in vgs:
        reply = cached_vg(c, row["vg_uuid"])
        assert reply.get_str("name") == row["vg_name"]
        assert reply.get_int64("metadata/seqno") == int(row["vg_seqno"])
        assert reply.find("vg_invalid") is None
        lvs = box.report("lvs", "lv_name,lv_uuid", row["vg_name"])
        assert lv_names(reply) == {lv["lv_name"]: lv["lv_uuid"] for lv in lvs}
        members = {r["pv_uuid"] for r in pvs if r["vg_uuid"] == row["vg_uuid"]}
        in_vg = {sec.get_str("id") for _, sec in (reply.section("metadata/physical_volumes") or Section()).sections()}
        assert in_vg == members
        for _, sec in (reply.section("metadata/physical_volumes") or Section()).sections():
            assert "MISSING" not in str(sec.find("status"))


def test_full_scan_matches_lvm_reports(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0, d1, d2 = (sandbox.new_device(n) for n in ("p0", "p1", "p2"))
    vg1, vg2 = unique_name("e2ea"), unique_name("e2eb")
    sandbox.lvm("pvcreate", "-q", d0, d1, d2)
    sandbox.lvm("vgcreate", "-q", vg1, d0, d1)
    sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "lv1", vg1)
    sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "40M", "-n", "lv2", vg1)  # spans both PVs
    sandbox.lvm("vgcreate", "-q", vg2, d2)

    scan(daemon, sandbox.filters)  # every block device of the system, through the filter

    with client(daemon) as c:
        info = c.get_global_info()
        assert info.get_str("token") == filter_token(sandbox.filters)
        assert (info.get_int64("global_disable"), info.get_int64("global_invalid")) == (0, 0)
        assert_cache_matches_lvm(c, sandbox, [vg1, vg2])


def test_rescan_of_one_device_sees_changes_made_behind_the_cache(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0, d1, d2 = (sandbox.new_device(n) for n in ("p0", "p1", "p2"))
    filters = sandbox.filters
    vg = unique_name("e2ec")
    sandbox.lvm("pvcreate", "-q", d0, d1, d2)
    sandbox.lvm("vgcreate", "-q", vg, d0, d1)
    scan(daemon, filters)
    (row,) = sandbox.report("vgs", "vg_uuid,vg_seqno", vg)
    vgid, seqno = row["vg_uuid"], int(row["vg_seqno"])

    sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "hidden", vg)  # the cache is not told
    with client(daemon) as c:
        stale = cached_vg(c, vgid)
        assert stale.get_int64("metadata/seqno") == seqno and "hidden" not in lv_names(stale)

        scan(daemon, filters, d1)  # pvscan --cache DEV
        fresh = cached_vg(c, vgid)
        assert fresh.get_int64("metadata/seqno") == seqno + 1
        assert "hidden" in lv_names(fresh)
        assert_cache_matches_lvm(c, sandbox, [vg])

        # the orphan PV is wiped: a rescan of its device sends pv_gone by device
        orphan = next(r["pv_uuid"] for r in sandbox.report("pvs", "pv_name,pv_uuid") if r["pv_name"] == d2)
        assert orphan in cached_pvs(c)
        sandbox.lvm("pvremove", "-q", "-y", d2)
        scan(daemon, filters, d2)
        assert orphan not in cached_pvs(c)
        assert_cache_matches_lvm(c, sandbox, [vg])


def test_single_device_scan_of_an_empty_cache_populates_it_first(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0, d1 = sandbox.new_device("p0"), sandbox.new_device("p1")
    vg = unique_name("e2ed")
    sandbox.lvm("pvcreate", "-q", d0, d1)
    sandbox.lvm("vgcreate", "-q", vg, d0, d1)
    scan(daemon, sandbox.filters, d0)  # token is "none": the whole (filtered) system is read
    with client(daemon) as c:
        assert c.get_global_info().get_str("token") == filter_token(sandbox.filters)
        assert_cache_matches_lvm(c, sandbox, [vg])


def test_duplicate_pvs_disable_the_cache_until_resolved(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0 = sandbox.new_device("p0")
    vg = unique_name("e2ee")
    sandbox.lvm("pvcreate", "-q", d0)
    sandbox.lvm("vgcreate", "-q", vg, d0)
    twin = sandbox.attach(sandbox.image_of[d0])  # the same image again: a second device, same PV uuid
    filters = sandbox.filters
    with open(d0, "rb") as f:
        pvid = read_pv(f).uuid

    scan(daemon, filters)
    with client(daemon) as c:
        info = c.get_global_info()
        assert info.get_int64("global_disable") == 1 and "DUPLICATES" in (info.get_str("disable_reason") or "")
        cached = cached_pvs(c)
        assert list(cached) == [pvid]
        first = min(os.stat(d0).st_rdev, os.stat(twin).st_rdev)
        assert cached[pvid].get_int64("device") == first  # the first device in order is used

        sandbox.detach(twin)
        scan(daemon, filters)  # same filter list, the twin is gone
        info = c.get_global_info()
        assert (info.get_int64("global_disable"), info.get_str("disable_reason")) == (0, "none")
        assert list(cached_pvs(c)) == [pvid]


def test_watch_clears_vg_invalid_and_global_invalid(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0, d1 = sandbox.new_device("p0"), sandbox.new_device("p1")
    vg = unique_name("e2ef")
    sandbox.lvm("pvcreate", "-q", d0, d1)
    sandbox.lvm("vgcreate", "-q", vg, d0, d1)
    dev_filter = DeviceFilter(sandbox.filters)
    with Client(daemon.socket_path) as lockd, client(daemon) as c:
        scanner = Scanner(
            Client(daemon.socket_path),
            lambda: [d for d in system_block_devices() if dev_filter.accepts(d.path)],
            dev_filter,
        )
        first = scanner.watch_once()  # empty cache, token "none": populates
        assert first.populated and not first.global_invalid_cleared
        (row,) = sandbox.report("vgs", "vg_uuid,vg_seqno", vg)
        vgid, seqno = row["vg_uuid"], int(row["vg_seqno"])
        idle = scanner.watch_once()
        assert not idle.populated and idle.refreshed_vgs == [] and idle.found == []

        # another host wrote seqno+1, the lock manager tells the daemon (lvmlockd uses token "skip")
        sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "remote", vg)
        lockd.set_vg_info(version=seqno + 1, uuid=vgid, name=vg)
        assert cached_vg(c, vgid).find("vg_invalid") is not None
        report = scanner.watch_once()
        assert report.refreshed_vgs == [vgid] and not report.populated
        assert sorted(report.found) == sorted(r["pv_uuid"] for r in sandbox.report("pvs", "pv_uuid"))
        fresh = cached_vg(c, vgid)
        assert fresh.find("vg_invalid") is None and "remote" in lv_names(fresh)
        assert_cache_matches_lvm(c, sandbox, [vg])

        # lvmlockd's unconditional invalidation (version 0) is cleared by the same metadata
        lockd.set_vg_info(version=0, uuid=vgid, name=vg)
        assert scanner.watch_once().refreshed_vgs == [vgid]
        assert cached_vg(c, vgid).find("vg_invalid") is None

        # global invalidation: everything is reread, then the flag is cleared
        sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "remote2", vg)
        lockd.set_global_info(global_invalid=1)
        assert c.vg_list().find("global_invalid") is not None
        report = scanner.watch_once()
        assert report.populated and report.global_invalid_cleared
        assert c.get_global_info().get_int64("global_invalid") == 0
        assert c.vg_list().find("global_invalid") is None
        assert_cache_matches_lvm(c, sandbox, [vg])
        scanner.client.close()

    # the command-line loop, one iteration
    argv = ["--watch", "--iterations", "1", "--interval", "0", "--socket", daemon.socket_path]
    for f in sandbox.filters:
        argv += ["--filter", f]
    assert main(argv) == 0


def test_image_files_with_given_and_fake_device_numbers(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    d0, d1 = sandbox.new_device("p0"), sandbox.new_device("p1")
    vg = unique_name("e2eg")
    sandbox.lvm("pvcreate", "-q", d0, d1)
    sandbox.lvm("vgcreate", "-q", vg, d0, d1)
    sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "lv1", vg)
    img0, img1 = sandbox.image_of[d0], sandbox.image_of[d1]
    given = os.makedev(7, 200)
    scan(daemon, [], "--full", "--device-number", f"{img0}=7:200", str(img0), str(img1))
    with client(daemon) as c:
        cached = cached_pvs(c)
        devnos = {meta.get_int64("device") for meta in cached.values()}
        assert given in devnos
        (fake,) = devnos - {given}
        assert fake is not None and os.major(fake) == 120 and fake < 2**31
        assert c.get_global_info().get_str("token") == "filter:3239235440"  # LVM's default filter
        (row,) = sandbox.report("vgs", "vg_uuid,vg_seqno", vg)
        reply = cached_vg(c, row["vg_uuid"])
        assert reply.get_int64("metadata/seqno") == int(row["vg_seqno"]) and "lv1" in lv_names(reply)
        # a rescan of one image by its given number finds the same cache entry
        scan(daemon, [], "--device-number", f"{img0}=7:200", str(img0))
        assert cached_pvs(c).keys() == cached.keys()


def test_lvm_wrapped_metadata_buffer_is_read(daemon: DaemonProcess, sandbox: LvmSandbox) -> None:
    dev = sandbox.new_device("wrap", 128 << 20)
    vg = unique_name("e2eh")
    sandbox.lvm("pvcreate", "-q", "--dataalignment", "4k", "--metadatasize", "32k", dev)
    sandbox.lvm("vgcreate", "-q", "-s", "1M", vg, dev)
    for i in range(40):
        sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-l", "1", "-n", f"lv{i}", vg)
        with open(dev, "rb") as f:
            pv = read_pv(f)
        mda = pv.metadata_areas[0]
        rl = mda.raw_locns[0]
        if rl.offset + rl.size > mda.size:
            break
    else:
        pytest.fail("LVM never wrapped the 32 KiB metadata buffer in 40 lvcreates")
    assert pv.problems == [] and pv.vg is not None
    scan(daemon, sandbox.filters, "--full", dev)
    with client(daemon) as c:
        assert_cache_matches_lvm(c, sandbox, [vg])


def test_no_daemon_is_an_error_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "x.img"
    image.write_bytes(bytes(8192))
    assert main(["--cache", "--full", "--socket", str(tmp_path / "none.socket"), str(image)]) == 1
    assert "not running" in capsys.readouterr().err
    assert main(["--cache", str(tmp_path / "missing.img")]) == 2

"""The on-disk reader against PVs written by the real LVM tools (lvm2 2.03 on loop devices).

A module fixture builds real PVs once (pvcreate/vgcreate/lvcreate/pvchange on
loop devices over image files in a temp dir), records what ``pvs``/``vgs``/
``lvs`` report, detaches the loop devices, and the tests read the image files:
the label, CRCs, uuid, areas and metadata text, then copies damaged in
controlled ways (bad CRCs, truncation, no label, a wrapped circular buffer).

:class:`LvmSandbox` (``support/lvm_sandbox.py``) is shared with ``test_scan_e2e.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pylvmetad.scanner.ondisk import (
    MDA_HEADER_SIZE,
    OnDiskError,
    PhysicalVolume,
    format_uuid,
    lvm_crc,
    read_pv,
)
from pylvmetad.scanner.scan import (
    Device,
    DeviceFilter,
    build_pvmeta,
    fake_devno,
    filter_token,
    main,
    read_device,
    resolve_device,
)
from pylvmetad.wire.codec import Section, parse
from support.lvm_sandbox import LvmSandbox, unique_name

MiB = 1 << 20


# -- real PVs, built once -----------------------------------------------------------------


@dataclass
class RealPvs:
    """Image files written by LVM, and what LVM reported about them."""

    vg_pv: Path  # in VG ``vgname``, holds its current metadata (seqno ``seqno``)
    ignored_pv: Path  # in the same VG, two metadata areas, both set to ignored
    orphan_pv: Path  # pvcreate only
    small_mda_pv: Path  # one-PV VG ``small_vgname``, 32 KiB metadata area, fresh
    vgname: str
    vgid: str
    seqno: int
    small_vgname: str
    pvs: dict[str, dict[str, str]]  # image name → pvs row
    lvs: list[dict[str, str]]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPvs]:
    sandbox = LvmSandbox(tmp_path_factory.mktemp("real-pvs"))
    try:
        a, b, c, d = (sandbox.new_device(n) for n in "abcd")
        vgname, small = unique_name("odk"), unique_name("ods")
        sandbox.lvm("pvcreate", "-q", a, c)
        sandbox.lvm("pvcreate", "-q", "--pvmetadatacopies", "2", b)
        sandbox.lvm("pvcreate", "-q", "--dataalignment", "4k", "--metadatasize", "32k", d)
        sandbox.lvm("vgcreate", "-q", vgname, a, b)
        sandbox.lvm("vgcreate", "-q", small, d)
        sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "4M", "-n", "lv1", vgname)
        sandbox.lvm("lvcreate", "-q", "-an", "-Zn", "-L", "8M", "-n", "lv2", vgname)
        sandbox.lvm("pvchange", "-q", "--metadataignore", "y", b)
        pvs = {
            Path(row["pv_name"]).name: row
            for row in sandbox.report("pvs", "pv_name,pv_uuid,vg_name,vg_uuid,dev_size,pe_start,pv_mda_count")
        }
        (vg,) = sandbox.report("vgs", "vg_name,vg_uuid,vg_seqno", vgname)
        lvs = sandbox.report("lvs", "lv_name,lv_uuid,lv_size", vgname)
        by_image = {sandbox.image_of[dev].stem: pvs[Path(dev).name] for dev in (a, b, c, d)}
        images = {sandbox.image_of[dev].stem: sandbox.image_of[dev] for dev in (a, b, c, d)}
    finally:
        sandbox.detach_all()
    yield RealPvs(
        vg_pv=images["a"],
        ignored_pv=images["b"],
        orphan_pv=images["c"],
        small_mda_pv=images["d"],
        vgname=vgname,
        vgid=vg["vg_uuid"],
        seqno=int(vg["vg_seqno"]),
        small_vgname=small,
        pvs=by_image,
        lvs=lvs,
    )


def read_file(path: Path) -> PhysicalVolume:
    with open(path, "rb") as f:
        return read_pv(f)


def damaged_copy(src: Path, dst: Path, edits: dict[int, bytes] | None = None, size: int | None = None) -> Path:
    """A copy of ``src`` with bytes overwritten at offsets and/or cut to ``size``."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        for offset, data in (edits or {}).items():
            f.seek(offset)
            f.write(data)
        if size is not None:
            f.truncate(size)
    return dst


def flip(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return bytes([f.read(1)[0] ^ 0xFF])


# -- CRC, uuid, filters ----------------------------------------------------------------------


def test_lvm_crc_reproduces_the_crcs_lvm_wrote(real: RealPvs) -> None:
    data = real.vg_pv.read_bytes()[: 2 * MiB]
    label = data[512:1024]
    assert label[:8] == b"LABELONE"
    assert struct.unpack_from("<I", label, 16)[0] == lvm_crc(label[20:])
    header = data[4096 : 4096 + MDA_HEADER_SIZE]
    assert struct.unpack_from("<I", header, 0)[0] == lvm_crc(header[4:])
    # the text CRC continues across pieces (needed for a wrapped buffer)
    assert lvm_crc(b"world", lvm_crc(b"hello ")) == lvm_crc(b"hello world")


def test_filter_token_matches_appendix_b() -> None:
    assert filter_token(["a|.*/|"]) == "filter:3239235440"
    assert filter_token(["a|.*|"]) == "filter:2175851276"
    assert filter_token(["r|/dev/sdb|", "a|.*|"]) == "filter:705910794"
    assert filter_token([]) == "filter:0"
    assert DeviceFilter().token == "filter:3239235440"


def test_device_filter_first_match_decides_and_unmatched_is_accepted() -> None:
    f = DeviceFilter(["r|/dev/loop1$|", "a|/dev/loop|", "r|.*|"])
    assert f.accepts("/dev/loop0")
    assert not f.accepts("/dev/loop1")
    assert not f.accepts("/dev/sda")
    assert DeviceFilter(["a|/dev/loop|"]).accepts("/dev/sda")  # LVM: no match → accepted
    assert DeviceFilter(["/dev/loop"]).entries == ["a|/dev/loop|"]
    with pytest.raises(ValueError):
        DeviceFilter(["a|(|"])


def test_format_uuid_groups_6_4_4_4_4_4_6() -> None:
    assert format_uuid("mAcI9Ixieg2EwoDfYl7iGMGq6SxREV6M") == "mAcI9I-xieg-2Ewo-DfYl-7iGM-Gq6S-xREV6M"


# -- a real PV -------------------------------------------------------------------------------


def test_label_and_pv_header_of_a_real_pv(real: RealPvs) -> None:
    pv = read_file(real.vg_pv)
    row = real.pvs["a"]
    assert pv.label_sector == 1
    assert pv.uuid == row["pv_uuid"]
    assert pv.device_size == int(row["dev_size"]) == 64 * MiB
    assert [(a.offset, a.size) for a in pv.data_areas] == [(int(row["pe_start"]), 0)]
    assert [(m.offset, m.size) for m in pv.metadata_area_locations] == [(4096, 1044480)]
    assert (pv.ext_version, pv.ext_flags) == (2, 1)  # flag 1: PV in use by a VG
    assert pv.bootloader_areas == []
    assert pv.problems == []


def test_metadata_text_of_a_real_pv(real: RealPvs) -> None:
    pv = read_file(real.vg_pv)
    (mda,) = pv.metadata_areas
    assert not mda.ignored and mda.error is None
    vg = pv.vg
    assert vg is not None
    assert (vg.name, vg.id, vg.seqno) == (real.vgname, real.vgid, real.seqno)
    assert vg.header.get_str("contents") == "Text Format Volume Group"
    assert vg.header.get_int64("version") == 1
    assert "lvcreate" in (vg.header.get_str("description") or "") or "pvchange" in (
        vg.header.get_str("description") or ""
    )
    assert vg.section.find("contents") is None  # header fields are not part of the VG
    lvs = vg.section.section("logical_volumes")
    assert lvs is not None
    assert {name: sec.get_str("id") for name, sec in lvs.sections()} == {r["lv_name"]: r["lv_uuid"] for r in real.lvs}
    pv_ids = {sec.get_str("id") for _, sec in (vg.section.section("physical_volumes") or Section()).sections()}
    assert pv_ids == {real.pvs["a"]["pv_uuid"], real.pvs["b"]["pv_uuid"]}


def test_orphan_pv_has_an_empty_metadata_area(real: RealPvs) -> None:
    pv = read_file(real.orphan_pv)
    assert pv.uuid == real.pvs["c"]["pv_uuid"]
    assert pv.ext_flags == 0 and pv.vg is None
    (mda,) = pv.metadata_areas
    # LVM 2.02's pvscan sent free_sectors=1019 for such orphans (conformance/pvscan.jsonl)
    assert mda.free_sectors == 1019


def test_ignored_metadata_areas(real: RealPvs) -> None:
    pv = read_file(real.ignored_pv)
    assert int(real.pvs["b"]["pv_mda_count"]) == 2
    assert len(pv.metadata_areas) == 2
    assert all(m.ignored and m.vg is None and m.free_sectors == 0 for m in pv.metadata_areas)
    assert pv.vg is None
    meta = build_pvmeta(pv, 1793)
    assert meta.find("mda0/ignore") == 1 and meta.find("mda1/ignore") == 1
    assert meta.find("mda1/start") == pv.metadata_areas[1].start > 60 * MiB  # the copy at the end


def test_free_sectors_of_a_fresh_one_pv_vg_matches_recorded_traffic(real: RealPvs) -> None:
    # A fresh one-PV VG's text fits in 2 sectors: LVM 2.02 sent free_sectors=1017 (pvscan.jsonl,
    # VG vga); with a 32 KiB area the same formula gives (32256 - 2*1024) // 2 // 512 = 29.
    pv = read_file(real.small_mda_pv)
    (mda,) = pv.metadata_areas
    assert mda.size == 32768
    assert mda.raw_locns[0].size <= 1024
    assert mda.free_sectors == 29


def recorded_pvscan_pvmeta() -> Section:
    from support.paths import conformance_dir

    for line in (conformance_dir() / "pvscan.jsonl").read_text().splitlines():
        rec = json.loads(line)
        req = rec.get("request", "")
        if 'request="pv_found"' in req and 'cmd ="pvscan"' in req and "metadata" in req:
            pvmeta = parse(req[: -len("\n##\n")]).section("pvmeta")
            assert pvmeta is not None
            return pvmeta
    raise AssertionError("no pvscan pv_found with metadata in pvscan.jsonl")


def shape(section: Section) -> list[tuple[str, object]]:
    return [(k, shape(v) if isinstance(v, Section) else type(v).__name__) for k, v in section.items]


def test_pvmeta_has_the_fields_of_real_pvscan_traffic_in_the_same_order(real: RealPvs) -> None:
    recorded = recorded_pvscan_pvmeta()
    ours = build_pvmeta(read_file(real.vg_pv), 1792)
    assert shape(ours) == shape(recorded)
    for key in ("dev_size", "format", "label_sector", "ext_version", "ext_flags", "da0", "mda0/ignore", "mda0/start"):
        assert ours.find(key) == recorded.find(key), key
    # free_sectors depends on the size of the VG text: 1016 for ours (2 PVs, 2 LVs), 1017 recorded
    assert ours.get_int64("mda0/free_sectors") in (1016, 1017)
    assert ours.get_int64("device") == 1792
    assert ours.get_str("id") == real.pvs["a"]["pv_uuid"]


# -- damage: reported, never a crash --------------------------------------------------------


def test_no_label(tmp_path: Path) -> None:
    path = tmp_path / "zero.img"
    path.write_bytes(bytes(64 * 1024))
    with pytest.raises(OnDiskError) as e:
        read_file(path)
    assert e.value.kind == "no_label"


def test_bad_label_crc(real: RealPvs, tmp_path: Path) -> None:
    path = damaged_copy(real.vg_pv, tmp_path / "x.img", {600: flip(real.vg_pv, 600)})  # inside the PV header
    with pytest.raises(OnDiskError) as e:
        read_file(path)
    assert e.value.kind == "bad_label" and "CRC" in e.value.reason


def test_label_claiming_another_sector(real: RealPvs, tmp_path: Path) -> None:
    path = damaged_copy(real.vg_pv, tmp_path / "x.img", {512 + 8: struct.pack("<Q", 3)})
    with pytest.raises(OnDiskError) as e:
        read_file(path)
    assert e.value.kind == "bad_label" and "claims sector 3" in e.value.reason


def test_label_in_another_sector(real: RealPvs, tmp_path: Path) -> None:
    label = bytearray(real.vg_pv.read_bytes()[512:1024])
    struct.pack_into("<Q", label, 8, 2)
    struct.pack_into("<I", label, 16, lvm_crc(bytes(label[20:])))
    path = damaged_copy(real.vg_pv, tmp_path / "x.img", {512: bytes(512), 1024: bytes(label)})
    pv = read_file(path)
    assert pv.label_sector == 2 and pv.uuid == real.pvs["a"]["pv_uuid"]
    assert build_pvmeta(pv, 1).get_int64("label_sector") == 2


def test_truncated_before_the_label(real: RealPvs, tmp_path: Path) -> None:
    with pytest.raises(OnDiskError) as e:
        read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", size=700))
    assert e.value.kind == "truncated"


def test_truncated_metadata_area_header(real: RealPvs, tmp_path: Path) -> None:
    pv = read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", size=4096 + 100))
    assert pv.uuid == real.pvs["a"]["pv_uuid"]
    assert pv.metadata_areas == [] and pv.vg is None
    assert any("truncated header" in p for p in pv.problems)
    assert build_pvmeta(pv, 1).find("mda0") is None  # LVM leaves an unreadable area out


def test_truncated_metadata_text(real: RealPvs, tmp_path: Path) -> None:
    rl = read_file(real.vg_pv).metadata_areas[0].raw_locns[0]
    cut = 4096 + rl.offset + rl.size // 2
    pv = read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", size=cut))
    (mda,) = pv.metadata_areas
    assert pv.vg is None and mda.error is not None and "truncated" in mda.error
    assert mda.free_sectors == 0


def test_bad_metadata_header_crc(real: RealPvs, tmp_path: Path) -> None:
    pv = read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", {4096 + 30: flip(real.vg_pv, 4096 + 30)}))
    assert pv.metadata_areas == [] and pv.vg is None
    assert any("header CRC" in p for p in pv.problems)


def test_bad_metadata_text_crc(real: RealPvs, tmp_path: Path) -> None:
    rl = read_file(real.vg_pv).metadata_areas[0].raw_locns[0]
    where = 4096 + rl.offset + 10
    pv = read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", {where: flip(real.vg_pv, where)}))
    (mda,) = pv.metadata_areas
    assert pv.vg is None and mda.error is not None and "CRC" in mda.error
    assert any("CRC" in p for p in pv.problems)


def test_metadata_offset_outside_the_area(real: RealPvs, tmp_path: Path) -> None:
    header = bytearray(real.vg_pv.read_bytes()[4096 : 4096 + MDA_HEADER_SIZE])
    struct.pack_into("<Q", header, 40, 10 * MiB)  # raw_locn[0].offset
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    pv = read_file(damaged_copy(real.vg_pv, tmp_path / "x.img", {4096: bytes(header)}))
    assert pv.vg is None and "outside the area" in (pv.metadata_areas[0].error or "")


def test_wrapped_circular_buffer(real: RealPvs, tmp_path: Path) -> None:
    """Move a real text so it runs off the end of the area and continues at start+512."""
    data = real.vg_pv.read_bytes()[: 2 * MiB]
    header = bytearray(data[4096 : 4096 + MDA_HEADER_SIZE])
    start, size = struct.unpack_from("<QQ", header, 24)
    offset, length = struct.unpack_from("<QQ", header, 40)
    text = data[start + offset : start + offset + length]
    new_offset = size - 300  # 300 bytes at the end, the rest after the header
    struct.pack_into("<Q", header, 40, new_offset)
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    path = damaged_copy(
        real.vg_pv,
        tmp_path / "wrap.img",
        {
            start: bytes(header),
            start + offset: bytes(length),  # the old copy is gone
            start + new_offset: text[:300],
            start + MDA_HEADER_SIZE: text[300:],
        },
    )
    pv = read_file(path)
    assert pv.problems == []
    assert pv.vg is not None and (pv.vg.name, pv.vg.seqno) == (real.vgname, real.seqno)
    # a text too long for the buffer's free part is refused, not read over itself
    struct.pack_into("<Q", header, 48, size)
    struct.pack_into("<I", header, 0, lvm_crc(bytes(header[4:])))
    pv = read_file(damaged_copy(path, tmp_path / "wrap2.img", {start: bytes(header)}))
    assert pv.vg is None and "does not fit" in (pv.metadata_areas[0].error or "")


def test_every_corruption_of_the_label_sector_is_caught_by_what_it_breaks(real: RealPvs) -> None:
    """Each byte of the label sector flipped in turn: the field it breaks names the error.

    ``LABELONE`` broken: no label; ``sector_xl``: a label claiming another
    sector; ``crc_xl`` or any byte it covers (20..511): a CRC mismatch whose
    stored and computed values are LVM's CRC of what is on the disk.  CRC-32
    catches every single-byte change, so a reader that skipped the check
    would return a PV here and fail.
    """
    base = bytes(real.vg_pv.read_bytes()[: 64 * 1024])
    label = 512  # LVM writes its label in sector 1
    stored_crc = struct.unpack_from("<I", base, label + 16)[0]
    assert stored_crc == lvm_crc(base[label + 20 : label + 512])
    for at in range(label, label + 512):
        data = bytearray(base)
        data[at] ^= 0x5A
        with pytest.raises(OnDiskError) as e:
            read_pv(bytes(data))
        field_at = at - label
        if field_at < 8:
            assert e.value.kind == "no_label", (field_at, e.value.reason)
        elif field_at < 16:
            assert e.value.kind == "bad_label" and "claims sector" in e.value.reason, (field_at, e.value.reason)
        else:
            stored = struct.unpack_from("<I", data, label + 16)[0]
            computed = lvm_crc(bytes(data[label + 20 : label + 512]))
            assert stored != computed
            assert e.value.kind == "bad_label", (field_at, e.value.reason)
            assert f"bad CRC (stored {stored:#010x}, computed {computed:#010x})" in e.value.reason


def test_every_cut_of_the_device_is_truncation(real: RealPvs) -> None:
    """Cut before the end of the label sector: ``truncated``; after it: the PV, with the cut noted."""
    base = bytes(real.vg_pv.read_bytes()[: 64 * 1024])
    uuid = real.pvs["a"]["pv_uuid"]
    for cut in range(0, 8192, 97):
        if cut < 1024:
            with pytest.raises(OnDiskError) as e:
                read_pv(base[:cut])
            assert e.value.kind == "truncated", (cut, e.value.reason)
        else:
            pv = read_pv(base[:cut])
            assert pv.uuid == uuid and pv.vg is None, cut
            assert any("truncated" in p for p in pv.problems), (cut, pv.problems)


# -- scanning files: every bad device reported and skipped --------------------------------


def test_read_device_reports_and_skips_bad_devices(
    real: RealPvs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = shutil.copyfile(real.vg_pv, tmp_path / "good.img")
    bad_crc = damaged_copy(real.vg_pv, tmp_path / "badcrc.img", {600: flip(real.vg_pv, 600)})
    short = damaged_copy(real.vg_pv, tmp_path / "short.img", size=100)
    empty = tmp_path / "empty.img"
    empty.write_bytes(bytes(8192))
    missing = Device(str(tmp_path / "missing.img"), 1)
    results = {
        Path(d.path).name: read_device(d)
        for d in [*(resolve_device(str(p)) for p in (good, bad_crc, short, empty)), missing]
    }
    assert results["good.img"].pv is not None and results["good.img"].error is None
    assert {n: r.error.kind for n, r in results.items() if r.error is not None} == {
        "badcrc.img": "bad_label",
        "short.img": "truncated",
        "empty.img": "no_label",
        "missing.img": "io",
    }
    # the command line in report mode prints the PV and the damaged devices, and succeeds
    assert main([str(good), str(bad_crc), str(short), str(empty)]) == 0
    out = capsys.readouterr().out
    assert real.pvs["a"]["pv_uuid"] in out and "bad_label" in out and "truncated" in out


def test_fake_device_numbers_are_stable_and_fit_32_bits(tmp_path: Path) -> None:
    paths = []
    for i in range(20):
        p = tmp_path / f"{i}.img"
        p.write_bytes(b"")
        paths.append(p)
    devnos = [resolve_device(str(p)).devno for p in paths]
    assert devnos == [resolve_device(str(p)).devno for p in paths]
    assert all(0 < d < 2**31 for d in devnos) and len(set(devnos)) == len(devnos)
    assert all(os.major(d) == 120 for d in devnos)
    assert devnos[0] == fake_devno(os.stat(paths[0]))
    assert resolve_device(str(paths[0]), {str(paths[0]): 4242}).devno == 4242

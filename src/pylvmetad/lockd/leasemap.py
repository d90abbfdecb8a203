"""Where a VG's lease LV lies on its PV, read from the VG metadata: leases without device-mapper.

Rules of this module:

* lvmlockd hands sanlock ``/dev/mapper/<vg>-lvmlock``, so the ``lvmlock``
  LV must be active (device-mapper).  The bytes of that LV are a run of
  physical extents on one PV; sanlock can be pointed at that PV at that
  byte offset instead, and every lease lands on the same disk bytes, so a
  host doing this shares the VG with hosts running the real lvmlockd.
* The VG metadata comes from the local lvmetad (``vg_lookup`` by name,
  token ``skip``); a PV's ``device`` there is its dev_t, turned into a
  ``/dev`` path through ``/sys/dev/block``.  During ``vgcreate`` lvmetad
  does not know the VG yet when ``init_vg`` arrives (lvm updates it after
  the lock args are back), so then the metadata is read from the PVs that
  lvmetad lists, at their metadata areas: the minimal reader below (mda
  header, first raw location, wrapped text) -- the full on-disk reader is
  the scanner's, a layer above this one.
* Only what lvm creates for ``lvmlock`` is accepted: one linear segment on
  one PV.  Anything else (an extended, multi-segment lvmlock; metadata not
  in lvmetad) falls back to lvmlockd's device-mapper path.

offset = pe_start·512 + first extent·extent_size·512; length = extent
count·extent_size·512 (sizes in the metadata are 512-byte sectors).
"""

from __future__ import annotations

import logging
import os
import struct

from ..wire.codec import ParseError, Section, parse
from .metadlink import LvmetadLink
from .sanlock import LeaseArea, Locator, dm_path

log = logging.getLogger("pylvmlockd")
SECTOR = 512
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MDA_HEADER = struct.Struct("<I16sIQQ")
RAW_LOCN = struct.Struct("<QQII")
MDA_HEADER_SIZE = 512


def device_path(devno: int, sys_root: str = "/sys") -> str | None:
    """The ``/dev`` node of a block device number, from sysfs' uevent DEVNAME."""
    try:
        with open(f"{sys_root}/dev/block/{os.major(devno)}:{os.minor(devno)}/uevent", encoding="ascii") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return "/dev/" + line.split("=", 1)[1].strip()
    except OSError:
        return None
    return None


def _by_devno(pv: Section) -> str | None:
    devno = pv.get_int64("device")
    return device_path(devno) if devno is not None else None


def lease_area_in(metadata: Section, lv_name: str, resolve: object = _by_devno) -> LeaseArea | None:
    """The lease LV's place on its PV according to the VG metadata; None if not one linear run."""
    lv = metadata.section(f"logical_volumes/{lv_name}")
    extent_size = metadata.get_int64("extent_size")
    if lv is None or not extent_size or lv.get_int64("segment_count") != 1:
        return None
    seg = lv.section("segment1")
    if seg is None or seg.get_str("type") != "striped" or seg.get_int64("stripe_count") != 1:
        return None
    stripes = seg.find("stripes")
    count = seg.get_int64("extent_count")
    if not isinstance(stripes, list) or len(stripes) != 2 or not count:
        return None
    pv_key, first = stripes
    if not isinstance(pv_key, str) or not isinstance(first, int):
        return None
    pv = metadata.section(f"physical_volumes/{pv_key}")
    if pv is None:
        return None
    pe_start = pv.get_int64("pe_start")
    if pe_start is None or not callable(resolve):
        return None
    path = resolve(pv)
    if not isinstance(path, str):
        return None
    return LeaseArea(path, (pe_start + first * extent_size) * SECTOR, count * extent_size * SECTOR)


def metadata_on_disk(path: str, mda_start: int) -> tuple[str, Section] | None:
    """The VG name and metadata in the metadata area at ``mda_start`` of a PV (its current copy)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        header = os.pread(fd, MDA_HEADER_SIZE, mda_start)
        if len(header) < MDA_HEADER.size + RAW_LOCN.size:
            return None
        _crc, magic, _version, start, size = MDA_HEADER.unpack_from(header)
        if magic != MDA_MAGIC or start != mda_start:
            return None
        offset, length, _crc2, _flags = RAW_LOCN.unpack_from(header, MDA_HEADER.size)
        if not offset or not length or length > size:
            return None
        first = min(length, size - offset)
        text = os.pread(fd, first, start + offset)
        if first < length:  # the text wraps to just after the header
            text += os.pread(fd, length - first, start + MDA_HEADER_SIZE)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        tree = parse(text.split(b"\0", 1)[0].decode("utf-8", "surrogateescape"))
    except ParseError:
        return None
    return next(((name, vg) for name, vg in tree.sections() if vg.get_str("id")), None)


async def _from_disk(metad: LvmetadLink, vg_name: str, lv_name: str) -> LeaseArea | None:
    reply = await metad.call("pv_list", ("token", "skip"))
    pvs = reply.section("physical_volumes") if reply is not None else None
    if pvs is None:
        return None
    paths: dict[str, str] = {}
    areas: list[tuple[str, int]] = []
    for _, pv in pvs.sections():
        devno, pvid = pv.get_int64("device"), pv.get_str("id")
        path = device_path(devno) if devno is not None else None
        if path is None or pvid is None:
            continue
        paths[pvid] = path
        for key, mda in pv.sections():
            start = mda.get_int64("start")
            if key.startswith("mda") and start is not None:
                areas.append((path, start))

    def by_id(pv: Section) -> str | None:
        pvid = pv.get_str("id")
        return paths.get(pvid) if pvid else None

    for path, start in areas:
        found = metadata_on_disk(path, start)
        if found is not None and found[0] == vg_name:
            area = lease_area_in(found[1], lv_name, resolve=by_id)
            if area is not None:
                return area
    return None


def pv_locator(metad: LvmetadLink) -> Locator:
    async def locate(vg_name: str, lv_name: str) -> LeaseArea:
        reply = await metad.call("vg_lookup", ("token", "skip"), ("name", vg_name))
        metadata = reply.section("metadata") if reply is not None else None
        area = lease_area_in(metadata, lv_name) if metadata is not None else None
        if area is None:
            area = await _from_disk(metad, vg_name, lv_name)
        if area is None:
            log.warning(
                "%s/%s: no single linear run on a PV in lvmetad's metadata; using %s",
                vg_name,
                lv_name,
                dm_path(vg_name, lv_name),
            )
            return LeaseArea(dm_path(vg_name, lv_name))
        log.info("%s/%s: leases on %s at offset %d (%d bytes)", vg_name, lv_name, area.path, area.base, area.size or 0)
        return area

    return locate

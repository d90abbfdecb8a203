"""Where a VG's lease LV lies on its PV, read from the VG metadata: leases without device-mapper.

Rules of this module:

* lvmlockd hands sanlock ``/dev/mapper/<vg>-lvmlock``, so the ``lvmlock``
  LV must be active (device-mapper).  The bytes of that LV are a run of
  physical extents on one PV; sanlock can be pointed at that PV at that
  byte offset instead, and every lease lands on the same disk bytes, so a
  host doing this shares the VG with hosts running the real lvmlockd.
* The VG metadata comes from the local lvmetad (``vg_lookup`` by name,
  token ``skip``); a PV's ``device`` there is its dev_t, turned into a
  ``/dev`` path through ``/sys/dev/block``.
* Only what lvm creates for ``lvmlock`` is accepted: one linear segment on
  one PV.  Anything else (an extended, multi-segment lvmlock; metadata not
  in lvmetad) falls back to lvmlockd's device-mapper path.

offset = pe_start·512 + first extent·extent_size·512; length = extent
count·extent_size·512 (sizes in the metadata are 512-byte sectors).
"""

from __future__ import annotations

import logging
import os

from ..wire.codec import Section
from .metadlink import LvmetadLink
from .sanlock import LeaseArea, Locator, dm_path

log = logging.getLogger("pylvmlockd")
SECTOR = 512


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


def lease_area_in(metadata: Section, lv_name: str, resolve: object = device_path) -> LeaseArea | None:
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
    devno, pe_start = pv.get_int64("device"), pv.get_int64("pe_start")
    if devno is None or pe_start is None or not callable(resolve):
        return None
    path = resolve(devno)
    if not isinstance(path, str):
        return None
    return LeaseArea(path, (pe_start + first * extent_size) * SECTOR, count * extent_size * SECTOR)


def pv_locator(metad: LvmetadLink) -> Locator:
    async def locate(vg_name: str, lv_name: str) -> LeaseArea:
        reply = await metad.call("vg_lookup", ("token", "skip"), ("name", vg_name))
        metadata = reply.section("metadata") if reply is not None else None
        area = lease_area_in(metadata, lv_name) if metadata is not None else None
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

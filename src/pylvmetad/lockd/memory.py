"""An in-memory lock manager: several simulated hosts sharing one "disk" (tests, -T).

Rules of this module:

* It behaves like sanlock as lvmlockd sees it (§6): lease areas at the same
  offsets with the same names, one lock per resource per host, conflicts
  answered at once (never queued), an 8-byte LVB per GL/VG area, delta
  leases as a membership set.  Nothing is written anywhere but here.
* :class:`SharedDisk` is the shared storage; each host gets its own
  :class:`MemoryLockManager` on it.  :meth:`SharedDisk.expire` plays a
  crashed host whose leases timed out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .manager import (
    GL_DISABLED_NAME,
    GL_NAME,
    LOCK_ARGS_VERSION,
    REMOVED_NAME,
    UNUSED_NAME,
    VG_NAME,
    Acquired,
    LmResource,
    lv_offset,
)
from .protocol import EAGAIN, EARGS, EEXIST, EMSGSIZE, ENOENT, EUCLEAN, EUNATCH, LM_SANLOCK, Mode, Rt

ALIGN = 1 << 20
GL_OFFSET = 65 * ALIGN
VG_OFFSET = 66 * ALIGN
LV_OFFSET = 67 * ALIGN


@dataclass
class Area:
    name: str
    holders: dict[int, Mode] = field(default_factory=dict)
    lvb: bytes = bytes(8)


@dataclass
class LeaseLV:
    """One VG's lvmlock LV: its lockspace name, members (host ids) and lease areas."""

    ls_name: str
    areas: dict[int, Area]
    size: int
    members: set[int] = field(default_factory=set)


class SharedDisk:
    """The storage every simulated host sees; ``lv_areas`` LV leases per VG."""

    def __init__(self, lv_areas: int = 189) -> None:
        self.lv_areas = lv_areas
        #: by VG name: its lease LV
        self.vgs: dict[str, LeaseLV] = {}
        self.running = True
        #: hosts that left a lockspace but still look live to the others: sanlock notices a
        #: released delta lease only at its next renewal read (§6.4.9); see :meth:`notice_departures`
        self.departed: dict[str, set[int]] = {}

    def host(self, host_id: int) -> MemoryLockManager:
        return MemoryLockManager(self, host_id)

    def expire(self, host_id: int) -> None:
        """The host died and its leases expired: it holds nothing and is no member."""
        for lease in self.vgs.values():
            lease.members.discard(host_id)
            for area in lease.areas.values():
                area.holders.pop(host_id, None)

    def notice_departures(self) -> None:
        """Every host now sees the others' released delta leases (after 2·io_timeout in sanlock)."""
        self.departed.clear()

    def rename(self, old_vg: str, new_vg: str) -> None:
        """lvm renamed a VG on disk (vgrename): its lease LV now belongs to the new name."""
        self.vgs[new_vg] = self.vgs.pop(old_vg)

    def holders(self, vg_name: str, name: str) -> dict[int, Mode]:
        """Which hosts hold the named lease of a VG, in which mode (for tests)."""
        lease = self.vgs.get(vg_name)
        if lease is None:
            return {}
        for area in lease.areas.values():
            if area.name == name:
                return dict(area.holders)
        return {}


class MemoryLockManager:
    lock_type = LM_SANLOCK

    def __init__(self, disk: SharedDisk, host_id: int) -> None:
        self.disk = disk
        self.host_id = host_id

    async def running(self) -> bool:
        return self.disk.running

    async def init_vg(self, ls_name: str, vg_name: str, lv_name: str, enable_gl: bool) -> int:
        areas = {GL_OFFSET: Area(GL_NAME if enable_gl else GL_DISABLED_NAME), VG_OFFSET: Area(VG_NAME)}
        for k in range(self.disk.lv_areas):
            areas[LV_OFFSET + k * ALIGN] = Area(UNUSED_NAME)
        self.disk.vgs[vg_name] = LeaseLV(ls_name, areas, LV_OFFSET + self.disk.lv_areas * ALIGN)
        return 0

    async def rename_vg(self, ls_name: str, vg_name: str, lv_name: str) -> int:
        lease = self.disk.vgs.get(vg_name)  # lvm renamed the VG (and so its lease LV) on disk
        if lease is None:
            return EARGS
        lease.ls_name = ls_name
        return 0

    def lockspace(self, ls_name: str, vg_name: str, lv_name: str, host_id: int) -> MemoryLockspace:
        return MemoryLockspace(self.disk, ls_name, vg_name, host_id)

    async def lockspaces(self) -> list[str]:
        return [x.ls_name for x in self.disk.vgs.values() if self.host_id in x.members]


class MemoryLockspace:
    def __init__(self, disk: SharedDisk, ls_name: str, vg_name: str, host_id: int) -> None:
        self.disk = disk
        self.ls_name = ls_name
        self.vg_name = vg_name
        self.host_id = host_id
        self.gl_enabled = False

    def _lease(self) -> LeaseLV | None:
        lease = self.disk.vgs.get(self.vg_name)
        return lease if lease is not None and lease.ls_name == self.ls_name else None

    def _area(self, res: LmResource) -> tuple[int, Area] | None:
        lease = self._lease()
        if lease is None:
            return None
        if res.rt is Rt.GL:
            offset: int | None = GL_OFFSET
        elif res.rt is Rt.VG:
            offset = VG_OFFSET
        else:
            offset = lv_offset(res.lv_lock_args)
        if offset is None or offset not in lease.areas:
            return None
        return offset, lease.areas[offset]

    async def prepare(self) -> int:
        lease = self._lease()
        if lease is None:
            return EARGS
        self.gl_enabled = lease.areas[GL_OFFSET].name == GL_NAME
        return 0

    async def join(self, *, adopt: bool = False) -> int:
        lease = self._lease()
        if lease is None:
            return EARGS
        if self.host_id in lease.members:
            # a previous instance of this host is still a member (it died): as sanlock.py,
            # join anyway; its leases are orphans, adopted later or dropped now
            if not adopt:
                for area in lease.areas.values():
                    area.holders.pop(self.host_id, None)
            return 0
        lease.members.add(self.host_id)
        self.disk.departed.get(self.vg_name, set()).discard(self.host_id)
        return 0

    async def leave(self, *, free: bool) -> int:
        lease = self._lease()
        if lease is None:
            return 0
        lease.members.discard(self.host_id)
        self.disk.departed.setdefault(self.vg_name, set()).add(self.host_id)
        for area in lease.areas.values():
            area.holders.pop(self.host_id, None)
        if free:
            lease.ls_name = UNUSED_NAME
        return 0

    async def acquire(self, res: LmResource, mode: Mode, *, adopt: bool = False) -> Acquired:
        found = self._area(res)
        if found is None:
            return Acquired(EMSGSIZE if res.rt is Rt.LV else EARGS)
        _, area = found
        if adopt:  # the orphan this host left behind, in the mode it had (§8.6)
            held = area.holders.get(self.host_id)
            if held is None:
                return Acquired(ENOENT)
            return Acquired(0, area.lvb if res.rt is not Rt.LV else None) if held == mode else Acquired(EUCLEAN)
        if area.name != res.name:
            if res.rt is Rt.GL and area.name == GL_DISABLED_NAME:
                return Acquired(EUNATCH)
            return Acquired(EAGAIN if area.name == REMOVED_NAME else ENOENT)
        others = [m for h, m in area.holders.items() if h != self.host_id]
        if others and (mode is Mode.EX or Mode.EX in others):
            return Acquired(EAGAIN, retry=mode is Mode.SH)
        area.holders[self.host_id] = mode
        return Acquired(0, area.lvb if res.rt is not Rt.LV else None)

    async def convert(self, res: LmResource, mode: Mode, lvb: bytes | None) -> int:
        found = self._area(res)
        if found is None:
            return ENOENT
        _, area = found
        others = [m for h, m in area.holders.items() if h != self.host_id]
        if others and (mode is Mode.EX or Mode.EX in others):
            return EAGAIN
        if lvb is not None:
            area.lvb = lvb
        area.holders[self.host_id] = mode
        return 0

    async def release(self, res: LmResource, lvb: bytes | None, *, rename_removed: bool = False) -> int:
        found = self._area(res)
        if found is None:
            return ENOENT
        _, area = found
        if lvb is not None:
            area.lvb = lvb
        area.holders.pop(self.host_id, None)
        if rename_removed:
            area.name = REMOVED_NAME
        return 0

    async def other_hosts(self) -> int:
        lease = self._lease()
        if lease is None or self.host_id not in lease.members:
            return 0
        return len((lease.members | self.disk.departed.get(self.vg_name, set())) - {self.host_id})

    async def init_lv(self, lv_uuid: str, hint: int) -> tuple[int, str]:
        lease = self._lease()
        if lease is None:
            return EARGS, ""
        offset = hint or LV_OFFSET
        while offset < lease.size:
            area = lease.areas[offset]
            if area.name == lv_uuid:
                return EEXIST, ""
            if area.name == UNUSED_NAME:
                area.name = lv_uuid
                area.lvb = bytes(8)
                return 0, f"{LOCK_ARGS_VERSION}:{offset}"
            offset += ALIGN
        return EMSGSIZE, ""

    async def find_free_lock(self, hint: int) -> tuple[int, int]:
        lease = self._lease()
        if lease is None:
            return EARGS, hint
        for offset in sorted(lease.areas):
            if offset >= LV_OFFSET and lease.areas[offset].name == UNUSED_NAME:
                return 0, offset
        return EMSGSIZE, lease.size

    async def free_lv(self, res: LmResource) -> int:
        found = self._area(res)
        if found is None:
            return ENOENT
        found[1].name = UNUSED_NAME
        return 0

    async def write_gl(self, enable: bool) -> int:
        lease = self._lease()
        if lease is None:
            return EARGS
        lease.areas[GL_OFFSET].name = GL_NAME if enable else GL_DISABLED_NAME
        return 0

    async def read_gl_enabled(self) -> bool:
        lease = self._lease()
        return lease is not None and lease.areas[GL_OFFSET].name == GL_NAME

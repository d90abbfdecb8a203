"""The sanlock lock manager: libsanlock.so.1 through ctypes, laid out exactly as lvmlockd's (§6).

Rules of this module:

* Same names, offsets, flags and LVB as lvmlockd 2.02.188 (§6.2-§6.4), so a
  host running this and a host running the C lvmlockd share one VG's
  leases: lockspace ``lvm_<vg>`` (48 bytes) with its delta leases at offset
  0 of the lease area, ``GLLK``/``_GLLK_disabled`` at 65·align, ``VGLK`` at
  66·align, LV leases from 67·align named by the LV UUID, free ones
  ``#unused``; acquires SHARED for sh, always PERSISTENT, OWNER_NOWAIT, LVB
  for GL/VG; lock args ``1.0.0:lvmlock`` and ``1.0.0:<offset>``.
* Where the lease area is comes from a :data:`Locator`: lvmlockd's
  ``/dev/mapper/<vg>-lvmlock`` by default, or (``--lease-device=pv``) the
  PV and byte offset where the ``lvmlock`` LV's extents lie, found in the VG
  metadata, so no device-mapper is needed (:mod:`.leasemap`).  Offsets
  written to lock args are always relative to the LV, as lvmlockd's are.
* Every libsanlock call blocks; each runs in a worker thread
  (``run_in_executor``), so a 20 s join blocks only its own lockspace.
* sanlock results are translated to lvmlockd's as in §6.5.
* A restarted pylvmlockd finds its lockspace still held by sanlock, with the
  leases of the dead instance kept as orphans (every lease is PERSISTENT);
  it joins anyway and releases those orphans (lvmlockd without ``--adopt``
  leaves the VG unusable on that host instead, §6.6) -- unless it adopts
  them (``-A 1``, §8.6): then the join keeps them and each lease is taken
  over with ``SANLK_ACQUIRE_ORPHAN_ONLY``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import protocol as P
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
from .protocol import Mode, Rt

log = logging.getLogger("pylvmlockd")

NAME_LEN = 48
PATH_LEN = 1024
GL_AREA, VG_AREA, LV_AREA = 65, 66, 67

RES_SHARED = 0x4
RES_PERSISTENT = 0x8
ACQUIRE_LVB = 0x1
ACQUIRE_ORPHAN_ONLY = 0x4
ACQUIRE_OWNER_NOWAIT = 0x8
CONVERT_OWNER_NOWAIT = 0x8
REL_RENAME = 0x2
REL_ORPHAN = 0x4
RESTRICT_SIGKILL = 0x2
CONFIG_USED_BY_ORPHANS = 0x4
HOST_LIVE = 3
HOST_MASK = 0xF

LEADER_MAGIC = -223
LEADER_RESOURCE = -227
ACQUIRE_IDLIVE, ACQUIRE_OWNED, ACQUIRE_OTHER, ACQUIRE_OWNED_RETRY = -243, -244, -245, -247
AIO_TIMEOUT, DBLOCK_LVER, DBLOCK_MBAL = -202, -212, -213
_CONTENDED = {ACQUIRE_IDLIVE, ACQUIRE_OWNED, ACQUIRE_OTHER}
_BUSY = {AIO_TIMEOUT, DBLOCK_LVER, DBLOCK_MBAL, ACQUIRE_OWNED_RETRY}
_END = {-errno.EMSGSIZE, -errno.ENOSPC}


class Disk(ctypes.Structure):
    _fields_ = [
        ("path", ctypes.c_char * PATH_LEN),
        ("offset", ctypes.c_uint64),
        ("pad1", ctypes.c_uint32),
        ("pad2", ctypes.c_uint32),
    ]


class Resource1(ctypes.Structure):
    """struct sanlk_resource with room for its one disk (lvmlockd uses num_disks = 1)."""

    _fields_ = [
        ("lockspace_name", ctypes.c_char * NAME_LEN),
        ("name", ctypes.c_char * NAME_LEN),
        ("lver", ctypes.c_uint64),
        ("data64", ctypes.c_uint64),
        ("data32", ctypes.c_uint32),
        ("unused", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("num_disks", ctypes.c_uint32),
        ("disks", Disk * 1),
    ]


class Lockspace(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * NAME_LEN),
        ("host_id", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("host_id_disk", Disk),
    ]


class Options(ctypes.Structure):
    _fields_ = [("owner_name", ctypes.c_char * NAME_LEN), ("flags", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class Host(ctypes.Structure):
    _fields_ = [
        ("host_id", ctypes.c_uint64),
        ("generation", ctypes.c_uint64),
        ("timestamp", ctypes.c_uint64),
        ("io_timeout", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


_lib: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libsanlock.so.1 (Debian's libsanlock1), loaded once; OSError if it is missing."""
    global _lib, _libc
    if _lib is None:
        lib = ctypes.CDLL("libsanlock.so.1", use_errno=True)
        ptr = ctypes.POINTER
        lib.sanlock_version.argtypes = [ctypes.c_uint32, ptr(ctypes.c_uint32), ptr(ctypes.c_uint32)]
        lib.sanlock_align.argtypes = [ptr(Disk)]
        lib.sanlock_write_lockspace.argtypes = [ptr(Lockspace), ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32]
        lib.sanlock_read_lockspace.argtypes = [ptr(Lockspace), ctypes.c_uint32, ptr(ctypes.c_uint32)]
        lib.sanlock_write_resource.argtypes = [ptr(Resource1), ctypes.c_int, ctypes.c_int, ctypes.c_uint32]
        lib.sanlock_read_resource.argtypes = [ptr(Resource1), ctypes.c_uint32]
        lib.sanlock_register.argtypes = []
        lib.sanlock_restrict.argtypes = [ctypes.c_int, ctypes.c_uint32]
        lib.sanlock_killpath.argtypes = [ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p]
        lib.sanlock_add_lockspace_timeout.argtypes = [ptr(Lockspace), ctypes.c_uint32, ctypes.c_uint32]
        lib.sanlock_rem_lockspace.argtypes = [ptr(Lockspace), ctypes.c_uint32]
        lib.sanlock_get_lockspaces.argtypes = [ptr(ptr(Lockspace)), ptr(ctypes.c_int), ctypes.c_uint32]
        lib.sanlock_set_config.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p]
        lib.sanlock_acquire.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint32,
            ctypes.c_int,
            ptr(ptr(Resource1)),
            ptr(Options),
        ]
        lib.sanlock_release.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_int, ptr(ptr(Resource1))]
        lib.sanlock_convert.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ptr(Resource1)]
        lib.sanlock_inquire.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint32,
            ptr(ctypes.c_int),
            ptr(ctypes.c_char_p),
        ]
        lib.sanlock_get_lvb.argtypes = [ctypes.c_uint32, ptr(Resource1), ctypes.c_char_p, ctypes.c_int]
        lib.sanlock_set_lvb.argtypes = [ctypes.c_uint32, ptr(Resource1), ctypes.c_char_p, ctypes.c_int]
        lib.sanlock_get_hosts.argtypes = [
            ctypes.c_char_p,
            ctypes.c_uint64,
            ptr(ptr(Host)),
            ptr(ctypes.c_int),
            ctypes.c_uint32,
        ]
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.free.argtypes = [ctypes.c_void_p]
        _lib, _libc = lib, libc
    return _lib


def _free(pointer: object) -> None:
    assert _libc is not None
    _libc.free(pointer)


def _b(text: str) -> bytes:
    return text.encode()[:NAME_LEN]


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace")


@dataclass(frozen=True)
class LeaseArea:
    """Where one VG's lease LV lies: a device, the LV's start on it, and its length (None: to the end)."""

    path: str
    base: int = 0
    size: int | None = None


#: (vg_name, lease LV name) -> where its lease area is
Locator = Callable[[str, str], Awaitable[LeaseArea]]


def dm_path(vg_name: str, lv_name: str) -> str:
    """lvmlockd's lease path: ``$DM_DEV_DIR/mapper/<vg>-<lv>`` with every ``-`` doubled (§6.1)."""
    dev = os.environ.get("DM_DEV_DIR", "/dev")
    return f"{dev}/mapper/{vg_name.replace('-', '--')}-{lv_name.replace('-', '--')}"


async def dm_locator(vg_name: str, lv_name: str) -> LeaseArea:
    return LeaseArea(dm_path(vg_name, lv_name))


T = TypeVar("T")


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def translate_acquire(rv: int, mode: Mode) -> tuple[int, bool]:
    """§6.5: a sanlock acquire result as lvmlockd's, and whether the core should retry."""
    if rv == 0:
        return 0, False
    if rv in (-errno.EAGAIN, -errno.EMSGSIZE, -errno.EUCLEAN, -errno.ENOENT):
        return rv, False
    if rv in _CONTENDED:
        return P.EAGAIN, mode is Mode.SH
    if rv in _BUSY:
        return P.EAGAIN, False
    return P.ELMERR, False


def translate_convert(rv: int) -> int:
    if rv == 0:
        return 0
    if rv in _CONTENDED or rv in _BUSY or rv == -errno.EAGAIN:
        return P.EAGAIN
    return P.ELMERR


class SanlockManager:
    """The sanlock lock manager of one host."""

    lock_type = P.LM_SANLOCK

    def __init__(self, *, io_timeout: int = 0, locator: Locator = dm_locator, killpath: str = "") -> None:
        self.io_timeout = io_timeout
        self.locator = locator
        self.killpath = killpath

    async def running(self) -> bool:
        try:
            lib = library()
        except OSError:
            return False
        version, proto = ctypes.c_uint32(), ctypes.c_uint32()
        rv: int = await _blocking(lib.sanlock_version, 0, ctypes.byref(version), ctypes.byref(proto))
        return rv == 0

    async def init_vg(self, ls_name: str, vg_name: str, lv_name: str, enable_gl: bool) -> int:
        """§6.4.1: the lockspace, the GL and VG leases, and ``#unused`` LV areas to the end."""
        area = await self.locator(vg_name, lv_name)
        if not await self.running():
            return P.EMANAGER
        return await _blocking(self._init_vg, area, ls_name, enable_gl)

    def _init_vg(self, area: LeaseArea, ls_name: str, enable_gl: bool) -> int:
        lib = library()
        align = _align(area)
        if align == -errno.EACCES:
            return P.EDEVOPEN
        if align <= 0:
            return P.EARGS
        ls = _lockspace(ls_name, 0, area)
        rv: int = lib.sanlock_write_lockspace(ctypes.byref(ls), 0, 0, self.io_timeout)
        if rv:
            return rv
        for index, name in ((GL_AREA, GL_NAME if enable_gl else GL_DISABLED_NAME), (VG_AREA, VG_NAME)):
            rv = lib.sanlock_write_resource(ctypes.byref(_resource(ls_name, name, area, index * align)), 0, 0, 0)
            if rv:
                return rv
        offset = LV_AREA * align
        while area.size is None or offset + align <= area.size:
            rv = lib.sanlock_write_resource(ctypes.byref(_resource(ls_name, UNUSED_NAME, area, offset)), 0, 0, 0)
            if rv:
                if rv not in _END:
                    log.error("init_vg %s: clearing LV lease at %d failed: %d", ls_name, offset, rv)
                break
            offset += align
        return 0

    async def rename_vg(self, ls_name: str, vg_name: str, lv_name: str) -> int:
        """§6.4.8: every lease structure of the (renamed) lease LV gets the new lockspace name.

        lvm renamed the VG on disk and made the lease LV reachable under the new
        name; the old lockspace was left by ``rename_vg_before`` here and stopped
        by hand on every other host.  The delta-lease area is rewritten (so every
        host joins afresh), then the GL and VG leases and the LV areas from
        67·align on, each read back and written with only the lockspace name
        changed, until the first area that does not read (the end of the LV).
        As lvmlockd, a failure on an LV area ends the walk but not the request.
        """
        area = await self.locator(vg_name, lv_name)
        if not await self.running():
            return P.EMANAGER
        return await _blocking(self._rename_vg, area, ls_name)

    def _rename_vg(self, area: LeaseArea, ls_name: str) -> int:
        lib = library()
        align = _align(area)
        if align <= 0:
            log.error("rename_vg %s: bad align size %d on %s", ls_name, align, area.path)
            return -errno.EINVAL
        ls = _lockspace("", 0, area)
        io_timeout = ctypes.c_uint32(0)
        rv = int(lib.sanlock_read_lockspace(ctypes.byref(ls), 0, ctypes.byref(io_timeout)))
        if rv < 0:
            log.error("rename_vg %s: reading the lockspace failed: %d", ls_name, rv)
            return rv
        ls.name = _b(ls_name)
        rv = int(lib.sanlock_write_lockspace(ctypes.byref(ls), 0, 0, self.io_timeout))
        if rv < 0:
            log.error("rename_vg %s: writing the lockspace failed: %d", ls_name, rv)
            return rv
        for index in (GL_AREA, VG_AREA):
            rv = _rename_resource(area, index * align, ls_name)
            if rv < 0:
                log.error("rename_vg %s: lease at %d·align: %d", ls_name, index, rv)
                return rv
        offset = LV_AREA * align
        while area.size is None or offset + align <= area.size:
            rv = _rename_resource(area, offset, ls_name)
            if rv < 0:
                if rv not in _END:
                    log.error("rename_vg %s: LV lease at %d: %d", ls_name, offset, rv)
                break
            offset += align
        return 0

    def lockspace(self, ls_name: str, vg_name: str, lv_name: str, host_id: int) -> SanlockLockspace:
        return SanlockLockspace(self, ls_name, vg_name, lv_name, host_id)

    async def lockspaces(self) -> list[str]:
        """§6.4.10: the ``lvm_`` lockspaces sanlock has (every one: lvmlockd's quirk 17 fixed)."""
        try:
            library()
        except OSError:
            return []
        return await _blocking(self._lockspaces)

    def _lockspaces(self) -> list[str]:
        lss = ctypes.POINTER(Lockspace)()
        count = ctypes.c_int(0)
        rv = int(library().sanlock_get_lockspaces(ctypes.byref(lss), ctypes.byref(count), 0))
        if rv < 0 or not lss:
            if rv < 0:
                log.error("sanlock get_lockspaces: %d", rv)
            return []
        try:
            names = [_text(lss[i].name) for i in range(count.value)]
        finally:
            _free(lss)
        return [n for n in names if n.startswith("lvm_")]


def _align(area: LeaseArea) -> int:
    disk = Disk(area.path.encode()[: PATH_LEN - 1], area.base)
    return int(library().sanlock_align(ctypes.byref(disk)))


def _rename_resource(area: LeaseArea, offset: int, ls_name: str) -> int:
    """Read the lease at ``offset`` and write it back with ``ls_name`` as its lockspace; <0 on error."""
    lib = library()
    rs = _resource("", "", area, offset)
    rv = int(lib.sanlock_read_resource(ctypes.byref(rs), 0))
    if rv < 0:
        return rv
    rs.lockspace_name = _b(ls_name)
    return int(lib.sanlock_write_resource(ctypes.byref(rs), 0, 0, 0))


def _lockspace(name: str, host_id: int, area: LeaseArea) -> Lockspace:
    ls = Lockspace()
    ls.name = _b(name)
    ls.host_id = host_id
    ls.host_id_disk.path = area.path.encode()[: PATH_LEN - 1]
    ls.host_id_disk.offset = area.base
    return ls


def _resource(ls_name: str, name: str, area: LeaseArea, offset: int, flags: int = 0) -> Resource1:
    rs = Resource1()
    rs.lockspace_name = _b(ls_name)
    rs.name = _b(name)
    rs.flags = flags
    rs.num_disks = 1
    rs.disks[0].path = area.path.encode()[: PATH_LEN - 1]
    rs.disks[0].offset = area.base + offset
    return rs


class SanlockLockspace:
    """One lockspace: its own sanlock registration (§6.4.2), its leases."""

    def __init__(self, manager: SanlockManager, ls_name: str, vg_name: str, lv_name: str, host_id: int) -> None:
        self.manager = manager
        self.ls_name = ls_name
        self.vg_name = vg_name
        self.lv_name = lv_name
        self.host_id = host_id
        self.gl_enabled = False
        self.area = LeaseArea("")
        self.align = 0
        self.sock = -1

    def _res(self, name: str, offset: int, flags: int = 0) -> Resource1:
        return _resource(self.ls_name, name, self.area, offset, flags)

    def _offset(self, res: LmResource) -> int | None:
        if res.rt is Rt.GL:
            return GL_AREA * self.align
        if res.rt is Rt.VG:
            return VG_AREA * self.align
        return lv_offset(res.lv_lock_args)

    async def prepare(self) -> int:
        try:
            library()
        except OSError:
            return P.EMANAGER
        self.area = await self.manager.locator(self.vg_name, self.lv_name)
        if not self.area.path or not os.path.exists(self.area.path):
            return P.EARGS
        return await _blocking(self._prepare)

    def _prepare(self) -> int:
        lib = library()
        sock = lib.sanlock_register()
        if sock < 0:
            return P.EMANAGER
        self.sock = sock
        if self.manager.killpath:
            args = f"--kill {self.vg_name}".encode()
            if lib.sanlock_killpath(sock, 0, self.manager.killpath.encode(), args):
                return P.EMANAGER
        if lib.sanlock_restrict(sock, RESTRICT_SIGKILL):
            return P.EMANAGER
        self.align = _align(self.area)
        if self.align <= 0:
            return P.EMANAGER
        rs = self._res("", GL_AREA * self.align)
        rv = lib.sanlock_read_resource(ctypes.byref(rs), 0)
        name = _text(rs.name)
        if rv or name not in (GL_NAME, GL_DISABLED_NAME):
            log.error("%s: the GL lease area reads %r (%d)", self.ls_name, name, rv)
            return P.EARGS
        self.gl_enabled = name == GL_NAME
        return 0

    def _close(self) -> None:
        if self.sock >= 0:
            os.close(self.sock)
            self.sock = -1

    async def join(self, *, adopt: bool = False) -> int:
        return await _blocking(self._join, adopt)

    def _join(self, adopt: bool) -> int:
        lib = library()
        ls = _lockspace(self.ls_name, self.host_id, self.area)
        rv = int(lib.sanlock_add_lockspace_timeout(ctypes.byref(ls), 0, self.manager.io_timeout))
        if rv == -errno.EEXIST and adopt:
            log.warning("%s: adopting the lockspace of a previous instance", self.ls_name)
            rv = 0
        elif rv == -errno.EEXIST:
            # sanlock kept the lockspace of a previous pylvmlockd (it died or was killed):
            # we do not adopt its locks, we drop them -- every orphan lease of the lockspace
            log.warning("%s: already joined by a previous instance; releasing its orphan locks", self.ls_name)
            orphans = (ctypes.POINTER(Resource1) * 1)(ctypes.pointer(self._res("", 0)))
            orv = int(lib.sanlock_release(self.sock, -1, REL_ORPHAN, 1, orphans))
            if orv < 0:
                log.error("%s: releasing orphan locks failed: %d", self.ls_name, orv)
            rv = 0
        if rv:
            self._close()
            return rv
        if lib.sanlock_set_config(_b(self.ls_name), 0, CONFIG_USED_BY_ORPHANS, None):
            lib.sanlock_rem_lockspace(ctypes.byref(ls), 0)
            self._close()
            return P.EMANAGER
        return 0

    async def leave(self, *, free: bool) -> int:
        return await _blocking(self._leave, free)

    def _leave(self, free: bool) -> int:
        lib = library()
        ls = _lockspace(self.ls_name, self.host_id, self.area)
        rv = int(lib.sanlock_rem_lockspace(ctypes.byref(ls), 0))
        self._close()
        if free:
            unused = _lockspace(UNUSED_NAME, 0, self.area)
            lib.sanlock_write_lockspace(ctypes.byref(unused), 0, 0, self.manager.io_timeout)
        return rv

    async def acquire(self, res: LmResource, mode: Mode, *, adopt: bool = False) -> Acquired:
        offset = self._offset(res)
        if offset is None:
            return Acquired(P.EPERM)
        return await _blocking(self._acquire, res, offset, mode, adopt)

    def _acquire(self, res: LmResource, offset: int, mode: Mode, adopt: bool) -> Acquired:
        lib = library()
        rs = self._res(res.name, offset, RES_PERSISTENT | (RES_SHARED if mode is Mode.SH else 0))
        flags = ACQUIRE_OWNER_NOWAIT | (ACQUIRE_LVB if res.rt is not Rt.LV else 0)
        if adopt:
            flags |= ACQUIRE_ORPHAN_ONLY
        opt = Options(b"lvmlockd")
        array = (ctypes.POINTER(Resource1) * 1)(ctypes.pointer(rs))
        rv = int(lib.sanlock_acquire(self.sock, -1, flags, 1, array, ctypes.byref(opt)))
        if rv == -errno.EUCLEAN and not adopt:  # an orphan of a previous instance of ours: drop it, then try again
            log.warning("%s: dropping the orphan lock %s of a previous instance", self.ls_name, res.name)
            orphan = (ctypes.POINTER(Resource1) * 1)(ctypes.pointer(self._res(res.name, offset)))
            lib.sanlock_release(self.sock, -1, REL_ORPHAN, 1, orphan)
            rv = int(lib.sanlock_acquire(self.sock, -1, flags, 1, array, ctypes.byref(opt)))
        if rv == LEADER_RESOURCE and res.rt is Rt.GL and not self._read_gl_enabled():
            return Acquired(P.EUNATCH)
        result, retry = translate_acquire(rv, mode)
        if result:
            log.debug("%s: sanlock acquire %s %s: %d", self.ls_name, res.name, mode.text, rv)
            return Acquired(result, retry=retry)
        lvb: bytes | None = None
        if res.rt is not Rt.LV:
            buf = ctypes.create_string_buffer(8)
            if lib.sanlock_get_lvb(0, ctypes.byref(rs), buf, 8) >= 0:
                lvb = buf.raw
        return Acquired(0, lvb)

    async def convert(self, res: LmResource, mode: Mode, lvb: bytes | None) -> int:
        offset = self._offset(res)
        if offset is None:
            return P.EPERM
        return await _blocking(self._convert, res, offset, mode, lvb)

    def _convert(self, res: LmResource, offset: int, mode: Mode, lvb: bytes | None) -> int:
        lib = library()
        held = RES_PERSISTENT | (RES_SHARED if mode is not Mode.SH else 0)
        rs = self._res(res.name, offset, held)
        if lvb is not None and lib.sanlock_set_lvb(0, ctypes.byref(rs), lvb, 8) < 0:
            return P.ELMERR
        rs.flags = RES_PERSISTENT | (RES_SHARED if mode is Mode.SH else 0)
        return translate_convert(int(lib.sanlock_convert(self.sock, -1, CONVERT_OWNER_NOWAIT, ctypes.byref(rs))))

    async def release(self, res: LmResource, lvb: bytes | None, *, rename_removed: bool = False) -> int:
        offset = self._offset(res)
        if offset is None:
            return P.EPERM
        return await _blocking(self._release, res, offset, lvb, rename_removed)

    def _release(self, res: LmResource, offset: int, lvb: bytes | None, rename_removed: bool) -> int:
        lib = library()
        rs = self._res(res.name, offset, RES_PERSISTENT)
        if lvb is not None and lib.sanlock_set_lvb(0, ctypes.byref(rs), lvb, 8) < 0:
            return P.ELMERR
        if rename_removed:
            renamed = self._res(REMOVED_NAME, offset, RES_PERSISTENT)
            pair = (ctypes.POINTER(Resource1) * 2)(ctypes.pointer(rs), ctypes.pointer(renamed))
            rv = int(lib.sanlock_release(self.sock, -1, REL_RENAME, 2, pair))
        else:
            one = (ctypes.POINTER(Resource1) * 1)(ctypes.pointer(rs))
            rv = int(lib.sanlock_release(self.sock, -1, 0, 1, one))
        if rv == -errno.EIO:
            return P.ELOCKIO
        return P.ELMERR if rv else 0

    async def other_hosts(self) -> int:
        return await _blocking(self._other_hosts)

    def _other_hosts(self) -> int:
        lib = library()
        hosts = ctypes.POINTER(Host)()
        count = ctypes.c_int(0)
        rv = lib.sanlock_get_hosts(_b(self.ls_name), 0, ctypes.byref(hosts), ctypes.byref(count), 0)
        if rv or not hosts:
            return 0
        try:
            entries = [hosts[i] for i in range(count.value)]
            if not any(h.host_id == self.host_id for h in entries):
                return 0
            return sum(1 for h in entries if h.host_id != self.host_id and h.flags & HOST_MASK == HOST_LIVE)
        finally:
            _free(hosts)

    def _end(self, offset: int) -> bool:
        return self.area.size is not None and offset + self.align > self.area.size

    def _read_name(self, offset: int) -> tuple[int, str]:
        rs = self._res("", offset)
        rv = int(library().sanlock_read_resource(ctypes.byref(rs), 0))
        return rv, _text(rs.name)

    async def init_lv(self, lv_uuid: str, hint: int) -> tuple[int, str]:
        return await _blocking(self._init_lv, lv_uuid, hint)

    def _init_lv(self, lv_uuid: str, hint: int) -> tuple[int, str]:
        offset = hint or LV_AREA * self.align
        while True:
            if self._end(offset):
                return P.EMSGSIZE, ""
            rv, name = self._read_name(offset)
            if rv in _END:
                return P.EMSGSIZE, ""
            if rv and rv != LEADER_MAGIC:
                return rv, ""
            if rv == 0 and name == lv_uuid:
                return P.EEXIST, ""
            if rv == LEADER_MAGIC or name == UNUSED_NAME:
                wrv = int(library().sanlock_write_resource(ctypes.byref(self._res(lv_uuid, offset)), 0, 0, 0))
                return (wrv, "") if wrv else (0, f"{LOCK_ARGS_VERSION}:{offset}")
            offset += self.align

    async def find_free_lock(self, hint: int) -> tuple[int, int]:
        return await _blocking(self._find_free_lock, hint)

    def _find_free_lock(self, hint: int) -> tuple[int, int]:
        first = LV_AREA * self.align
        start = offset = hint or first
        wrapped = False
        while True:
            if wrapped and offset >= start:
                return P.EMSGSIZE, offset
            rv, name = (P.EMSGSIZE, "") if self._end(offset) else self._read_name(offset)
            if rv in _END or rv == P.EMSGSIZE:
                if wrapped or start == first:
                    return P.EMSGSIZE, offset
                wrapped, offset = True, first
                continue
            if rv == LEADER_MAGIC or (rv == 0 and name == UNUSED_NAME):
                return 0, offset
            if rv:
                return rv, hint
            offset += self.align

    async def free_lv(self, res: LmResource) -> int:
        offset = self._offset(res)
        if offset is None:
            return P.EPERM
        return int(
            await _blocking(library().sanlock_write_resource, ctypes.byref(self._res(UNUSED_NAME, offset)), 0, 0, 0)
        )

    async def write_gl(self, enable: bool) -> int:
        rs = self._res(GL_NAME if enable else GL_DISABLED_NAME, GL_AREA * self.align)
        return int(await _blocking(library().sanlock_write_resource, ctypes.byref(rs), 0, 0, 0))

    async def read_gl_enabled(self) -> bool:
        return await _blocking(self._read_gl_enabled)

    def _read_gl_enabled(self) -> bool:
        rv, name = self._read_name(GL_AREA * self.align)
        return rv == 0 and name == GL_NAME

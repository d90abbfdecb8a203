"""The lock-manager interface the core drives: sanlock's operations as lvmlockd uses them.

Rules of this module:

* Interface only.  The core (:mod:`.core`) calls these coroutines and never
  knows which lock manager answers; :mod:`.sanlock` is the real one,
  :mod:`.memory` simulates several hosts sharing one disk.
* Results are already lvmlockd's numbers (§6.5): 0, or a negative
  ``op_result`` such as EAGAIN for "held by another host".  A backend
  blocks only its own coroutine; one lockspace waiting on the lock manager
  never stalls another.
* A lock manager holds at most one lock per resource per host: local
  sharing between clients is the core's business (§4.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .protocol import Mode, Rt

# names of the lease areas (§6.2)
GL_NAME = "GLLK"
GL_DISABLED_NAME = "_GLLK_disabled"
VG_NAME = "VGLK"
UNUSED_NAME = "#unused"
REMOVED_NAME = "invalid_removed"
LOCK_ARGS_VERSION = "1.0.0"


@dataclass(frozen=True)
class LmResource:
    """A resource as the lock manager sees it: its name and, for an LV, its lock args."""

    name: str
    rt: Rt
    lv_lock_args: str = ""


@dataclass(frozen=True)
class Acquired:
    """The outcome of an acquire: result, the 8-byte LVB read (GL/VG), and whether the
    backend asks the core to retry a conflict (sanlock: a sh request that met an owner)."""

    result: int
    lvb: bytes | None = None
    retry: bool = False


class LockspaceLM(Protocol):
    """One lockspace in the lock manager (for sanlock: one registration, one delta lease)."""

    #: set by :meth:`prepare`: the GL lease area of this VG is named GLLK
    gl_enabled: bool

    async def prepare(self) -> int: ...
    #: ``adopt``: sanlock still has this lockspace of a previous instance of ours (-A 1):
    #: joining it again is success, and its orphan leases are kept for :meth:`acquire`
    async def join(self, *, adopt: bool = False) -> int: ...
    async def leave(self, *, free: bool) -> int: ...
    #: ``adopt``: take over our own orphan lease only (EUCLEAN: it is an orphan in the other
    #: mode; ENOENT: there is none), never a new lock (§8.6)
    async def acquire(self, res: LmResource, mode: Mode, *, adopt: bool = False) -> Acquired: ...
    async def convert(self, res: LmResource, mode: Mode, lvb: bytes | None) -> int: ...
    async def release(self, res: LmResource, lvb: bytes | None, *, rename_removed: bool = False) -> int: ...
    async def other_hosts(self) -> int: ...
    async def init_lv(self, lv_uuid: str, hint: int) -> tuple[int, str]: ...
    async def find_free_lock(self, hint: int) -> tuple[int, int]: ...
    async def free_lv(self, res: LmResource) -> int: ...
    async def write_gl(self, enable: bool) -> int: ...
    async def read_gl_enabled(self) -> bool: ...


class LockManager(Protocol):
    """A lock manager: whether it runs, VG initialisation, and its lockspaces."""

    #: protocol.LM_SANLOCK (the only one pylvmlockd drives)
    lock_type: int

    async def running(self) -> bool: ...
    async def init_vg(self, ls_name: str, vg_name: str, lv_name: str, enable_gl: bool) -> int: ...
    async def rename_vg(self, ls_name: str, vg_name: str, lv_name: str) -> int: ...
    def lockspace(self, ls_name: str, vg_name: str, lv_name: str, host_id: int) -> LockspaceLM: ...
    async def lockspaces(self) -> list[str]:
        """The ``lvm_`` lockspaces the lock manager holds for this host (adoption, §6.4.10)."""
        ...


def lock_lv_name(vg_lock_args: str) -> str | None:
    """The lease LV named by VG lock args ``<major>.<minor>.<patch>:<lv>``; None if unusable (§6.3)."""
    if ":" not in vg_lock_args:
        return None
    version, _, _ = vg_lock_args.partition(":")
    lv = vg_lock_args.rsplit(":", 1)[1]
    if not _major_ok(version) or not lv:
        return None
    return lv


def lv_offset(lv_lock_args: str) -> int | None:
    """The byte offset in LV lock args ``1.0.0:<offset>``; None if unusable (§6.3)."""
    if ":" not in lv_lock_args:
        return None
    version = lv_lock_args.split(":", 1)[0]
    tail = lv_lock_args.rsplit(":", 1)[1]
    if not _major_ok(version) or not tail.isdigit():
        return None
    return int(tail)


def _major_ok(version: str) -> bool:
    major = version.split(".", 1)[0]
    return "." in version and major.isdigit() and int(major) <= 1

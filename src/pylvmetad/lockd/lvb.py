"""The lock value block of the GL and VG locks, and what it decides (§5).

Rules of this module:

* No I/O.  The block is 8 little-endian bytes {u16 version, u16 flags, u32
  r_version} (§5.1); the lock manager stores it, this module reads and
  writes its value and decides.
* Two decisions live here, each where a reader looks for it:
  :func:`on_acquire` (the table of §5.3: after an LM acquire, whether the
  local lvmetad must be told that its copy is stale, and with which
  version) and :func:`on_release` (§5.2: what an ``ex`` release writes).

Theory of operation
-------------------
Each host keeps, per GL/VG resource, the last r_version it knows (R) and a
"zero is valid" bit (Z).  Another host that changed the VG (or did anything
under GL ex) wrote a larger value at its release, so the next acquire here
reads V > R and invalidates lvmetad before granting: a command that holds
the lock therefore never reads a stale cached copy as valid.  A host's own
releases update R too, so it never invalidates itself for its own change.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from .protocol import EINVAL, EREMOVED, Rt

LVB_SIZE = 8
VERSION_CURRENT = 0x0101
FLAG_REMOVED = 0x0001
_LAYOUT = struct.Struct("<HHI")


@dataclass(frozen=True)
class ValueBlock:
    version: int = 0
    flags: int = 0
    r_version: int = 0

    def pack(self) -> bytes:
        return _LAYOUT.pack(self.version, self.flags, self.r_version & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, data: bytes | None) -> ValueBlock:
        """Short, missing or unreadable blocks read as all-zero (as after a failed get_lvb)."""
        if not data or len(data) < LVB_SIZE:
            return cls()
        return cls(*_LAYOUT.unpack(data[:LVB_SIZE]))


@dataclass(frozen=True)
class Known:
    """What one host knows of one resource's value: R and Z of §5.3."""

    r_version: int = 0
    zero_valid: bool = False


@dataclass(frozen=True)
class AcquireVerdict:
    known: Known
    #: version to send lvmetad (set_vg_info / set_global_info), None: send nothing
    invalidate: int | None
    #: 0, or the request's failure (the lock stays held: §11 quirk 4)
    result: int
    #: the row of the §5.3 table that applied (for logs and tests)
    row: int


def _incompatible(vb: ValueBlock) -> bool:
    return vb.version != 0 and (vb.version & 0xFF00) > 0x0100


# §5.3, in order; each row: (number, condition on (V, R, Z, vb), (new R, new Z) or None, invalidation)
_Cond = Callable[[int, int, bool, ValueBlock], bool]
_Inval = Callable[[int, int], int | None]
ACQUIRE_TABLE: tuple[tuple[int, _Cond, Callable[[int, Known], Known] | None, _Inval], ...] = (
    (1, lambda v, r, z, vb: _incompatible(vb), None, lambda v, r: 0),
    (2, lambda v, r, z, vb: v != 0 and v == r, None, lambda v, r: None),
    (3, lambda v, r, z, vb: r != 0 and v != 0 and v > r, lambda v, k: Known(v, False), lambda v, r: v),
    (4, lambda v, r, z, vb: z and v == 0, None, lambda v, r: None),
    (5, lambda v, r, z, vb: z and v != 0, lambda v, k: Known(v, False), lambda v, r: 0 if r != 0 and r >= v else v),
    (6, lambda v, r, z, vb: r == 0 and v != 0, lambda v, k: Known(v, False), lambda v, r: v),
    (7, lambda v, r, z, vb: r == 0 and v == 0, lambda v, k: Known(k.r_version, True), lambda v, r: 0),
    (8, lambda v, r, z, vb: r != 0 and v == 0, lambda v, k: Known(k.r_version, True), lambda v, r: 0),
    (9, lambda v, r, z, vb: True, lambda v, k: Known(v, False), lambda v, r: 0),
)


def on_acquire(vb: ValueBlock, known: Known) -> AcquireVerdict:
    """The §5.3 decision after a successful LM acquire of a GL or VG lock."""
    v, r, z = vb.r_version, known.r_version, known.zero_valid
    for row, cond, update, inval in ACQUIRE_TABLE:
        if cond(v, r, z, vb):
            new = update(v, known) if update is not None else known
            result = EINVAL if row == 1 else 0
            if result == 0 and vb.version != 0 and v != 0 and vb.flags & FLAG_REMOVED:
                result = EREMOVED
            return AcquireVerdict(new, inval(v, r), result, row)
    raise AssertionError("the last row matches everything")


def on_release(rt: Rt, known: Known, pending_version: int) -> tuple[Known, int | None]:
    """§5.2: the value an ``ex`` release (or ex→sh convert) writes, or None to write nothing.

    GL: always the last known value + 1.  VG: the pending ``vg_update``
    version, only when it is larger than the last known value.
    """
    if rt is Rt.GL:
        new = known.r_version + 1
        return Known(new, known.zero_valid), new
    if rt is Rt.VG and pending_version > known.r_version:
        return Known(pending_version, known.zero_valid), pending_version
    return known, None


def written(old: ValueBlock, r_version: int) -> ValueBlock:
    """The block to store: version 0x0101 when it was 0, flags kept (§5.1)."""
    return ValueBlock(old.version or VERSION_CURRENT, old.flags, r_version)

"""The core of ``pylvmetad-scan --watch-disks``: per-device poll state → what the cache must be told.

Rules of this module:

* Sans-I/O.  Nothing here opens a device, reads a clock or talks to a
  daemon.  The driver (``watcher``) asks :meth:`DiskWatch.plan` which bytes
  to read, reads them, and hands them to :meth:`DiskWatch.step` until it
  wants nothing more; at the end of a poll it calls :meth:`DiskWatch.end_poll`
  and sends what :meth:`DiskWatch.pending` holds, calling
  :meth:`DiskWatch.done` for each action the daemon accepted.
* Decisions are made by what is on disk — the label sector's bytes, the
  metadata area's first ``raw_locn`` (offset, size, text checksum, flags)
  and the text's VG id and seqno — never by timing.  A change that lands
  between two polls is seen at the next one because the state compared with
  is the last *settled* one, not the last poll's.
* An action stays pending until the driver reports it done, so a daemon that
  refuses (another command populating, a restart) only delays it.

Theory of operation
-------------------
LVM commits VG metadata by writing the new text into the metadata area's
circular buffer and then the area's 512-byte header, whose first
``raw_locn`` points at the new text with the text's CRC.  Watching that
header is enough to see every commit, and costs one small read per PV per
poll: the head of the device — the label area (sectors 0-3) and, for the
usual layout, the first metadata area's header at 4096 — in one aligned
read of :data:`HEAD_SIZE` bytes.  Only when the ``raw_locn`` moved is the
text read (its one or two extents), to learn the VG id and seqno.

Per device the settled state is: the label sector (None: no PV), the
watched metadata area (the first whose header verifies and is not
*ignored*), its ``raw_locn`` and the VG id its text holds.  Per VG the
state is the newest ``(seqno, checksum)`` seen on any device.

What one poll of a device can show, and what follows (:data:`DECISIONS`):

============================================  ===============================
observation                                   action
============================================  ===============================
nothing moved                                 none
label appeared, vanished or changed           PV set change
device unreadable or gone                     PV set change (if it was a PV)
header does not verify (write under way)      retry next poll; after
                                              ``settle_polls`` polls: PV set
                                              change, and settle
``raw_locn`` moved, text CRC wrong            retry next poll (as above)
``raw_locn`` emptied (PV left its VG)         PV set change
text of another VG than before                PV set change
text of a VG not seen before                  PV set change
same VG, seqno above the VG's newest          VG change, version = seqno
same VG, same seqno and checksum              none (another PV of the same
                                              commit catching up)
same VG, lower seqno or same seqno with       VG change, version 0 (a
another checksum than this device held        rollback: ``vgcfgrestore``)
an older copy of a VG on a device that did    PV set change (a PV back from
not hold that VG before                       absence; the VG's record stays)
a VG on no device any more (end of poll)      PV set change, VG gone
============================================  ===============================

A *VG change* becomes ``set_vg_info uuid= name= version=`` (or, with
``--refresh``, ``vg_update`` with the text read); a *PV set change*
becomes ``set_global_info global_invalid=1`` (with ``--refresh``: the
changed devices are rescanned and gone VGs removed).  The first poll is the
baseline: it records and decides nothing; :meth:`DiskWatch.reconcile` then
compares the baseline with what the cache holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import BinaryIO, cast

from ..wire.codec import Section
from .ondisk import (
    LABEL_SCAN_SECTORS,
    MDA_HEADER_SIZE,
    SECTOR_SIZE,
    DiskArea,
    MetadataArea,
    OnDiskError,
    PhysicalVolume,
    RawLocation,
    decode_metadata_text,
    read_pv,
    text_extents,
)

__all__ = [
    "DECISIONS",
    "HEAD_SIZE",
    "DeviceState",
    "DiskWatch",
    "Extent",
    "Observation",
    "PvSetChange",
    "VgChange",
]

#: the label area LVM searches (sectors 0-3)
LABEL_AREA = LABEL_SCAN_SECTORS * SECTOR_SIZE
#: one read covers the label area and a metadata area header at 4096 (LVM's usual first one)
HEAD_SIZE = 8192


@dataclass(frozen=True, order=True)
class Extent:
    """Bytes to read: ``size`` at ``offset`` of the device."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


class Observation(Enum):
    """What one poll of one device showed, compared with its settled state."""

    SAME = "nothing moved"
    BASELINE = "first look"
    LABEL = "label appeared, vanished or changed"
    GONE = "device unreadable or gone"
    UNSETTLED = "header or text does not verify (a write under way?)"
    UNREADABLE = "header or text still does not verify"
    LEFT_VG = "the metadata area no longer holds its VG"
    OTHER_VG = "the metadata area holds another VG"
    NEW_VG = "a VG not seen before"
    COMMIT = "the VG's seqno went up"
    CATCH_UP = "another PV of a commit already seen"
    ROLLBACK = "lower seqno, or same seqno with other content"
    STALE = "an older copy of a VG turned up"


#: what each observation asks of the cache: "pv_set", "vg" or nothing
DECISIONS: dict[Observation, str | None] = {
    Observation.SAME: None,
    Observation.BASELINE: None,
    Observation.LABEL: "pv_set",
    Observation.GONE: "pv_set",
    Observation.UNSETTLED: None,
    Observation.UNREADABLE: "pv_set",
    Observation.LEFT_VG: "pv_set",
    Observation.OTHER_VG: "pv_set",
    Observation.NEW_VG: "pv_set",
    Observation.COMMIT: "vg",
    Observation.CATCH_UP: None,
    Observation.ROLLBACK: "vg",
    Observation.STALE: "pv_set",
}


@dataclass(frozen=True)
class VgChange:
    """Tell the cache a VG's metadata moved on disk (``set_vg_info``, or ``vg_update``)."""

    vgid: str
    name: str
    seqno: int
    #: what set_vg_info sends: the new seqno, or 0 (invalidate whatever the cache holds)
    version: int
    #: the VG's metadata as read (what ``--refresh`` sends with ``vg_update``)
    metadata: Section = field(compare=False, repr=False)


@dataclass(frozen=True)
class PvSetChange:
    """Tell the cache the set of PVs changed (``global_invalid``, or rescan these devices)."""

    devnos: frozenset[int]
    #: VGs found on no device any more
    gone_vgs: frozenset[str]
    reasons: tuple[str, ...]


Action = VgChange | PvSetChange


@dataclass
class DeviceState:
    """A device's last settled state."""

    devno: int
    path: str
    #: False until the first complete look
    known: bool = False
    #: the label sector's bytes; None: not a PV (or gone)
    label: bytes | None = None
    pv_uuid: str | None = None
    #: the metadata area polled: its start and size (None: the PV has none usable)
    mda: DiskArea | None = None
    #: that area's first raw_locn (None: no metadata text, an orphan or ignored area)
    locn: RawLocation | None = None
    vgid: str | None = None
    #: consecutive polls whose header or text did not verify
    unsettled: int = 0
    #: settled as damaged (reported once; quiet while it stays so)
    damaged: bool = False
    #: the head's bytes when it was last settled from the head alone: the same bytes
    #: again mean the same label and raw_locn (the steady state's whole cost is one
    #: read and one comparison)
    snapshot: bytes | None = None
    #: the last observation (for reports and tests)
    last: Observation = Observation.BASELINE
    #: False while the device cannot be read (the driver reopens it)
    present: bool = True

    def head(self) -> Extent:
        end = HEAD_SIZE
        if self.mda is not None and self.mda.offset + MDA_HEADER_SIZE <= HEAD_SIZE:
            end = max(end, self.mda.offset + MDA_HEADER_SIZE)
        return Extent(0, end)


@dataclass
class _VgRecord:
    name: str
    seqno: int
    checksum: int
    metadata: Section


class _Patchwork:
    """The bytes read so far, as the seekable file ``ondisk.read_pv`` reads from (holes read short)."""

    def __init__(self, data: Mapping[Extent, bytes]) -> None:
        self.pieces = sorted(data.items())
        self.pos = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset
        return offset

    def covers(self, offset: int, size: int) -> bool:
        return any(e.offset <= offset and offset + size <= e.offset + len(b) for e, b in self.pieces)

    def read(self, size: int = -1) -> bytes:
        for e, b in self.pieces:
            if e.offset <= self.pos < e.offset + len(b):
                chunk = b[self.pos - e.offset : self.pos - e.offset + size]
                self.pos += len(chunk)
                return chunk
        return b""


@dataclass
class _Look:
    """What a complete read of a device showed (before comparing with its state)."""

    label: bytes | None
    pv: PhysicalVolume | None
    mda: MetadataArea | None
    bad_header: bool


class DiskWatch:
    """The watch table: device states, VG records and the pending actions."""

    def __init__(self, *, settle_polls: int = 3) -> None:
        self.devices: dict[int, DeviceState] = {}
        self.vgs: dict[str, _VgRecord] = {}
        self.settle_polls = settle_polls
        #: True until :meth:`end_poll` of the first poll: observations record, decide nothing
        self.baselining = True
        self._pending_vgs: dict[str, VgChange] = {}
        self._pending_devnos: set[int] = set()
        self._pending_gone: set[str] = set()
        self._pending_reasons: list[str] = []

    # -- the device set ----------------------------------------------------------------
    def add_device(self, devno: int, path: str) -> None:
        """Watch a device (no-op if watched); its first look is a baseline or a "PV appeared"."""
        if devno not in self.devices:
            self.devices[devno] = DeviceState(devno, path)

    def remove_device(self, devno: int) -> None:
        """Stop watching a device that left the device set (a PV set change if it was a PV)."""
        if devno in self.devices:
            self.lost(devno, "device removed")
            del self.devices[devno]

    # -- one poll ------------------------------------------------------------------------
    def plan(self, devno: int) -> list[Extent]:
        """The first read of this poll for ``devno`` (normally its only one)."""
        return [self.devices[devno].head()]

    def step(self, devno: int, data: Mapping[Extent, bytes]) -> list[Extent]:
        """Feed the bytes read so far this poll; returns the extents still wanted ([] = done)."""
        state = self.devices[devno]
        head = data.get(state.head())
        if head is None or len(head) < LABEL_AREA:
            self.lost(devno, "device unreadable or gone" if head is None else "device shorter than a label")
            return []
        state.present = True
        if state.snapshot is not None and len(data) == 1 and head == state.snapshot:
            state.unsettled = 0
            state.last = Observation.SAME
            return []
        source = _Patchwork(data)
        look, wanted = self._look(source)
        if wanted:
            return wanted
        assert look is not None
        return self._compare(state, look, source)

    def lost(self, devno: int, reason: str) -> None:
        """The device could not be read (gone, size 0, I/O error)."""
        state = self.devices[devno]
        was_pv = state.label is not None
        # said once: a device that stays unreadable is no change
        state.last = Observation.GONE if was_pv else (Observation.SAME if state.known else Observation.BASELINE)
        state.known = True
        state.present = False
        state.label = state.pv_uuid = state.vgid = None
        state.mda = state.locn = None
        state.unsettled = 0
        state.snapshot = None
        if was_pv:
            self._pv_set(devno, f"{state.path}: {reason}")

    def _look(self, source: _Patchwork) -> tuple[_Look | None, list[Extent]]:
        try:
            pv = read_pv(cast(BinaryIO, source), with_text=False)
        except OnDiskError:
            return _Look(None, None, None, False), []  # no label, or none LVM would use: not a PV
        label = source.pieces[0][1][pv.label_sector * SECTOR_SIZE : (pv.label_sector + 1) * SECTOR_SIZE]
        by_start = {m.start: m for m in pv.metadata_areas}
        bad = False
        for loc in pv.metadata_area_locations:
            if not source.covers(loc.offset, MDA_HEADER_SIZE):
                return None, [Extent(loc.offset, MDA_HEADER_SIZE)]
            mda = by_start.get(loc.offset)
            if mda is None:
                bad = True  # does not verify: torn, or damaged; try the next area
                continue
            if not mda.ignored:
                return _Look(label, pv, mda, bad), []
        return _Look(label, pv, None, bad), []

    def _compare(self, state: DeviceState, look: _Look, source: _Patchwork) -> list[Extent]:
        if look.label is None:
            if state.known and state.label is None:
                state.last = Observation.SAME
                state.snapshot = _head_only(source)
                return []
            self._settle(state, look, None, None, Observation.LABEL if state.label is not None else Observation.SAME)
            return []
        locn = _text_locn(look.mda)
        label_moved = state.known and state.label != look.label
        if look.mda is None and look.bad_header:
            if state.damaged and not label_moved and state.mda is None:
                return []
            return self._unsettled(state, look, "metadata area header does not verify")
        if state.known and not label_moved and locn == state.locn:
            state.unsettled = 0
            state.last = Observation.SAME
            state.snapshot = _head_only(source)
            return []
        if locn is None:
            obs = Observation.LABEL if label_moved else (Observation.LEFT_VG if state.vgid else Observation.SAME)
            self._settle(state, look, None, None, obs)
            return []
        assert look.mda is not None
        try:
            extents = [Extent(e.offset, e.size) for e in text_extents(look.mda, locn)]
        except ValueError as e:
            return self._unsettled(state, look, str(e))
        missing = [e for e in extents if not source.covers(e.offset, e.size)]
        if missing:
            return missing
        data = b"".join(_read(source, e) for e in extents)
        try:
            vg = decode_metadata_text(data, locn)
        except ValueError as e:
            return self._unsettled(state, look, str(e))
        obs = self._vg_observation(state, vg.id, vg.name, vg.seqno, locn.checksum, vg.section)
        # a label change is a PV set change whatever the text says (its VG change is pending already)
        self._settle(state, look, locn, vg.id, Observation.LABEL if label_moved else obs)
        return []

    def _vg_observation(
        self, state: DeviceState, vgid: str, name: str, seqno: int, checksum: int, metadata: Section
    ) -> Observation:
        record = self.vgs.get(vgid)
        if record is None:
            self.vgs[vgid] = _VgRecord(name, seqno, checksum, metadata)
            if self.baselining:
                return Observation.BASELINE
            return Observation.NEW_VG
        if self.baselining:
            if seqno > record.seqno:
                self.vgs[vgid] = _VgRecord(name, seqno, checksum, metadata)
            return Observation.BASELINE
        if state.known and state.vgid is not None and state.vgid != vgid:
            obs = Observation.OTHER_VG
        elif seqno > record.seqno:
            obs = Observation.COMMIT
        elif seqno == record.seqno and checksum == record.checksum:
            return Observation.CATCH_UP
        elif state.known and state.vgid == vgid:
            obs = Observation.ROLLBACK  # this device's own copy of the VG went back
        else:
            return Observation.STALE  # an older copy turning up: the VG's record stays
        if obs is not Observation.OTHER_VG or seqno > record.seqno:
            self.vgs[vgid] = _VgRecord(name, seqno, checksum, metadata)
            version = seqno if obs is not Observation.ROLLBACK else 0
            self._pending_vgs[vgid] = VgChange(vgid, name, seqno, version, metadata)
        return obs

    def _unsettled(self, state: DeviceState, look: _Look, reason: str) -> list[Extent]:
        state.unsettled += 1
        if state.unsettled < self.settle_polls:
            state.last = Observation.UNSETTLED
            return []
        # it stays so: not a write under way but damage; say so once and settle
        self._settle(state, look, _text_locn(look.mda), state.vgid, Observation.UNREADABLE, reason)
        return []

    def _settle(
        self,
        state: DeviceState,
        look: _Look,
        locn: RawLocation | None,
        vgid: str | None,
        obs: Observation,
        reason: str = "",
    ) -> None:
        if not state.known and self.baselining:
            obs = Observation.BASELINE
        elif not state.known and look.label is not None:
            obs = Observation.LABEL  # a PV appeared on a device seen for the first time
        state.known = True
        state.label = look.label
        state.pv_uuid = look.pv.uuid if look.pv is not None else None
        state.mda = DiskArea(look.mda.start, look.mda.size) if look.mda is not None else None
        state.locn = locn
        state.vgid = vgid
        state.unsettled = 0
        state.damaged = obs is Observation.UNREADABLE
        state.last = obs
        state.snapshot = None  # the next poll compares in full once, then takes a snapshot
        if DECISIONS[obs] == "pv_set":
            self._pv_set(state.devno, f"{state.path}: {reason or obs.value}")

    def _pv_set(self, devno: int, reason: str) -> None:
        self._pending_devnos.add(devno)
        self._pending_reasons.append(reason)

    def end_poll(self) -> None:
        """After every device of a poll: VGs on no device are gone; the baseline is over."""
        held = {s.vgid for s in self.devices.values() if s.vgid is not None}
        for vgid in [v for v in self.vgs if v not in held]:
            record = self.vgs.pop(vgid)
            if not self.baselining:
                self._pending_gone.add(vgid)
                self._pending_reasons.append(f"VG {record.name} ({vgid}) is on no device any more")
                self._pending_vgs.pop(vgid, None)
        self.baselining = False

    # -- the cache ---------------------------------------------------------------------
    def reconcile(self, cached: Mapping[str, int | None], *, complete: bool) -> None:
        """Compare the disks with the cache once (after the baseline poll).

        ``cached`` maps VG uuids to the seqno the cache holds (None: not cached).
        A VG the cache holds an older seqno of is a VG change; one it lacks, a PV
        set change; with ``complete`` (the device set is the whole system's), a
        cached VG on no device is gone.
        """
        for vgid, record in self.vgs.items():
            have = cached.get(vgid)
            if have is None:
                self._pending_reasons.append(f"VG {record.name} ({vgid}) is on disk but not in the cache")
                self._pending_devnos.update(s.devno for s in self.devices.values() if s.vgid == vgid)
            elif have < record.seqno:
                self._pending_vgs[vgid] = VgChange(vgid, record.name, record.seqno, record.seqno, record.metadata)
        if complete:
            for vgid in cached:
                if vgid not in self.vgs:
                    self._pending_gone.add(vgid)
                    self._pending_reasons.append(f"cached VG {vgid} is on no device")

    def pending(self) -> list[Action]:
        """What the cache must still be told: VG changes first, then one PV set change."""
        actions: list[Action] = list(self._pending_vgs.values())
        if self._pending_devnos or self._pending_gone or self._pending_reasons:
            actions.append(
                PvSetChange(
                    frozenset(self._pending_devnos), frozenset(self._pending_gone), tuple(self._pending_reasons)
                )
            )
        return actions

    def done(self, action: Action) -> None:
        """The daemon accepted ``action`` (or it is moot): forget it unless superseded."""
        if isinstance(action, VgChange):
            if self._pending_vgs.get(action.vgid) == action:
                del self._pending_vgs[action.vgid]
            return
        self._pending_devnos -= action.devnos
        self._pending_gone -= action.gone_vgs
        self._pending_reasons = [r for r in self._pending_reasons if r not in action.reasons]


def _head_only(source: _Patchwork) -> bytes | None:
    """The head's bytes when the head was all that was read (the usual layout)."""
    return source.pieces[0][1] if len(source.pieces) == 1 else None


def _text_locn(mda: MetadataArea | None) -> RawLocation | None:
    if mda is None or not mda.raw_locns:
        return None
    rl = mda.raw_locns[0]
    if rl.ignored or rl.offset == 0 or rl.size == 0:
        return None
    return rl


def _read(source: _Patchwork, extent: Extent) -> bytes:
    source.seek(extent.offset)
    out = b""
    while len(out) < extent.size:
        chunk = source.read(extent.size - len(out))
        if not chunk:
            break
        out += chunk
    return out

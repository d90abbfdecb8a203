"""The daemon's state: every table of docs/protocol.md §3 and the operations on them.

Rules of this module:

* Everything that changes what the cache holds lives here, and nothing else
  does: handlers read request fields and build replies, the server moves
  bytes.  No I/O, no sockets, no logging; time comes from an injected clock.
* Each public method is one operation of the spec and leaves the tables
  consistent (``check_invariants`` says what that means).  An operation that
  refuses does so *before* it changes anything, except where the original
  daemon deliberately keeps a partial effect (pv_found's outdated marking and
  the duplicate case, docs/protocol.md §5, pv_found).
* The operations that make several changes (``pv_found``, ``vg_update``) are
  all or nothing (:func:`all_or_nothing`): if one raises midway, every table,
  the flags and ``generation`` are put back exactly as they were (the
  tables are journaled, :mod:`pylvmetad.metad.journal`; they share one
  :class:`~pylvmetad.metad.journal.Journal`, so opening an operation costs
  the same however many tables there are, and closing it visits only the
  tables it changed).  Two pv_founds a scan sends thousands of skip the
  operation: a known orphan PV sent again as stored (reads only), and an
  orphan PV never seen on a free device, which is two insertions that
  :meth:`CacheState.pv_found` undoes itself if the second fails; and so does
  the vg_update every command that changes a VG sends (a newer seqno, the
  same name and PVs, each mapped to the VG), which is one table write.
* Method and table names follow the spec (``pvid_to_vgid``,
  ``remove_vg_if_missing``) so the code can be read beside it.

Theory of operation
-------------------
PV records (``pvmeta``) and VG metadata are stored as parsed
:class:`~pylvmetad.codec.Section` trees, exactly as received (VG metadata
after ``device`` hints are stripped).  The daemon interprets only a few
fields of them: PV ``id``/``device``/``mdaN/ignore``, VG ``id``/``seqno`` and
the ``id``/``status`` of each ``physical_volumes`` entry.  Everything else is
opaque and may stay unparsed text (see the codec's lazy sections).

Costs grow with the request, not with the cache.  Three questions the
operations ask about a VG would otherwise walk its whole ``physical_volumes``
each time -- is the VG complete (pv_found's status), has it a present PV
(pv_gone, whether to drop it), is this PV already marked outdated -- which
made a pvscan or a wipe of a VG of n PVs cost O(n^2) (a pv_found with a newer
seqno for a VG of 20k PVs: 3.8 s, the daemon blocked).  So the cache keeps,
for each stored VG, the set of PV uuids it lists, the reverse map, and two
counts: listed PVs not present (``missing``), and listed PVs present and
mapped to it (``present``); and ``vgid_to_outdated_pvs`` holds
:class:`OutdatedPVs` (an ordered set).  The counts are moved by the only
places that change the three tables they derive from (``_set_metadata``,
``_replace_metadata``, ``_drop_metadata``, ``_set_pvmeta``, ``_drop_pvmeta``,
``_map_pv``, ``_unmap_pv``), each O(1) per PV touched, and ``check_invariants``
recomputes them.  A vg_update that lists the VG's PVs as before (nearly
every one) is ``_replace_metadata``: one pass that leaves the tables as the
general orphan-store-map path would, without re-indexing.  Storing or dropping a VG costs O(its PVs), as does reading its
metadata, so every request stays proportional to what it carries or returns.

``generation`` counts changes to the tables.  Readers that cache derived
text (whole replies) compare it to know whether their copy is still valid;
it is the one piece of bookkeeping every mutation must maintain, which is
why all mutations go through ``_changed`` (the short paths above bump it
inline).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from ..wire.codec import Node, Section, accelerated_function, compare_trees, same_trees
from .journal import Journal, MutableValueTable, Table
from .protocol import UPDATE_IN_PROGRESS
from .tokens import Action, decide

ORPHAN = "#orphan"
TOKEN_MAX_BYTES = 127
CMD_MAX_BYTES = 31


class GlobalFlag(IntFlag):
    """Bits of the global flags word (values as in the original's dump)."""

    INVALID = 0x01
    DISABLE = 0x02
    DIRECT = 0x04
    DUPLICATES = 0x10
    VGRESTORE = 0x20
    REPAIR = 0x40


#: reason bits in the order ``disable_reason`` prints them
DISABLE_REASONS: tuple[tuple[str, GlobalFlag], ...] = (
    ("DIRECT", GlobalFlag.DIRECT),
    ("REPAIR", GlobalFlag.REPAIR),
    ("DUPLICATES", GlobalFlag.DUPLICATES),
    ("VGRESTORE", GlobalFlag.VGRESTORE),
)
ALL_REASONS = GlobalFlag.DIRECT | GlobalFlag.REPAIR | GlobalFlag.DUPLICATES | GlobalFlag.VGRESTORE

VG_INVALID = 0x1


@dataclass
class VGInfo:
    """The per-VG invalidation record: newest seqno announced elsewhere, flags."""

    external_version: int = 0
    flags: int = 0

    @property
    def invalid(self) -> bool:
        return bool(self.flags & VG_INVALID)


class OutdatedPVs:
    """The PVs holding older metadata of one VG: an ordered set.

    Marking and membership are O(1) (a list made marking a VG's n PVs
    quadratic).  Iteration yields the most recently marked first, as the
    original's list does; ``reversed`` gives the oldest first.
    """

    __slots__ = ("_marked",)

    def __init__(self, pvids: Iterable[str] = ()) -> None:
        #: pvid -> None, in marking order (oldest first)
        self._marked: dict[str, None] = dict.fromkeys(reversed(list(pvids)))

    def mark(self, pvid: str) -> bool:
        """Add ``pvid`` as the most recent mark; False if it was marked already."""
        if pvid in self._marked:
            return False
        self._marked[pvid] = None
        return True

    def __contains__(self, pvid: object) -> bool:
        return pvid in self._marked

    def __len__(self) -> int:
        return len(self._marked)

    def __iter__(self) -> Iterator[str]:
        return reversed(self._marked)

    def __reversed__(self) -> Iterator[str]:
        return iter(self._marked)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OutdatedPVs):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OutdatedPVs({list(self)!r})"


@dataclass
class TokenState:
    """The cache token and the bookkeeping of a running update (docs/protocol.md §4)."""

    token: str = ""
    update_pid: int = 0
    update_cmd: str = ""
    update_begin: int = 0
    update_timeout: int = 0

    def start_update(self, pid: int, cmd: str, timeout: int, now: int) -> str:
        """Begin "update in progress"; returns the previous token."""
        prev = self.token
        self.token = UPDATE_IN_PROGRESS
        self.update_pid = pid
        self.update_cmd = _truncate(cmd, CMD_MAX_BYTES)
        self.update_begin = now
        self.update_timeout = timeout
        return prev

    def finish_update(self, token: str) -> None:
        self.token = _truncate(token, TOKEN_MAX_BYTES)
        self.clear_update()

    def clear_update(self) -> None:
        self.update_pid = 0
        self.update_cmd = ""
        self.update_begin = 0
        self.update_timeout = 0

    def update_expired(self, now: int) -> bool:
        """Whether the running update outlived its timeout (unsigned compare, as in C)."""
        elapsed = (now - self.update_begin) & 0xFFFFFFFFFFFFFFFF
        return elapsed >= (self.update_timeout & 0xFFFFFFFFFFFFFFFF)


def _truncate(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "surrogateescape")


class PVFoundResult(NamedTuple):
    """What pv_found reports back (the reply fields of docs/protocol.md §5).

    Immutable, so one object may serve many requests (:data:`UNCHANGED_ORPHAN`)
    and the handler keeps its replies by it.
    """

    failed: str | None = None
    status: str = "orphan"
    changed: int = 0
    vgid: str = ORPHAN
    vgname: str = ORPHAN
    seqno_before: int = -1
    seqno_after: int = -1


#: pv_found of an orphan PV stored exactly as sent: nothing changes (:meth:`CacheState.pv_found`)
UNCHANGED_ORPHAN = PVFoundResult()
#: pv_found of an orphan PV never seen before, on a device no PV holds (:meth:`CacheState.pv_found`)
NEW_ORPHAN = PVFoundResult(changed=1)


@dataclass(slots=True)
class MergeResult:
    ok: bool
    seqno_before: int


def vg_pvids(metadata: Section) -> Iterator[str]:
    """PV uuids listed in a VG's ``physical_volumes`` (entries without one skipped)."""
    pvs = metadata.find("physical_volumes")
    if not isinstance(pvs, Section):
        return
    for _, pv in pvs.items:
        if isinstance(pv, Section):
            pvid = _pv_id(pv)
            if pvid is not None:
                yield pvid


def _pv_id(pv: Section) -> str | None:
    """``pv.get_str("id")``; LVM writes ``id`` first, so that pair answers without a look-up."""
    items = pv.items
    if items:
        key, value = items[0]
        if key == "id" and type(value) is str:
            return value or None
    return pv.get_str("id")


def strip_device_hints(metadata: Section) -> list[str]:
    """Remove ``device`` entries from PV sections as the original does; returns :func:`vg_pvids` after it.

    Its cursor walk never drops a PV section's first child, nor a ``device``
    that directly follows a removed one; LVM writes ``id`` first and one
    ``device`` second, so in practice every hint goes.  Only ``device``
    pairs go, so the uuids read in the same walk are those listed after it.
    """
    items = metadata._items  # metadata.find("physical_volumes") without its two frames, when built
    pvs = _first_value_accel(items, "physical_volumes") if items is not None and _first_value_accel else None
    if pvs is None or pvs is NotImplemented:  # missing, or an odd pair: find() decides
        pvs = metadata.find("physical_volumes")
    if not isinstance(pvs, Section):
        return []
    pv_items = pvs._items  # pvs.items without its frame, when built (a lazy one: the property parses it)
    if pv_items is None:
        pv_items = pvs.items
    if _strip_accel is not None:
        pvids = _strip_accel(pv_items)
        if pvids is not NotImplemented:
            return pvids  # type: ignore[return-value]
    return _strip_device_hints_py(pv_items)


def _strip_device_hints_py(pvs: list[tuple[str, Node]]) -> list[str]:
    """:func:`strip_device_hints` of the pairs of a ``physical_volumes`` (the reference of the C walk)."""
    pvids: list[str] = []
    for _, pv in pvs:
        if not isinstance(pv, Section):
            continue
        pvid = _pv_id(pv)
        if pvid is not None:
            pvids.append(pvid)
        items = pv.items
        for n in range(1, len(items)):
            if items[n][0] == "device":
                break
        else:
            continue
        items = pv.touch()
        i = 0
        while i + 1 < len(items):
            if items[i + 1][0] == "device":
                del items[i + 1]
            i += 1
    return pvids


#: the same walk in C (``_ccodec.strip_device_hints``; NotImplemented: the reference decides)
_strip_accel: Callable[[list[tuple[str, Node]]], object] | None = accelerated_function("strip_device_hints")
#: the first value of a key among pairs, in C without a Python frame (``_ccodec.first_value``:
#: None when missing, NotImplemented for a pair of another shape; the getters decide then)
_first_value_accel: Callable[[list[tuple[str, Node]], str], object] | None = accelerated_function("first_value")


#: dict's own item assignment, for a journaled table where it is the table's (:meth:`CacheState.vg_update`)
_dict_setitem = dict.__setitem__

K = TypeVar("K")
V = TypeVar("V")


class IndexTable(Table[K, V]):
    """A journaled table whose key order means nothing (the derived indexes).

    Rollback restores each changed key's old value, not the order: the
    table keeps no key list (:mod:`.journal`, theory).
    """

    __slots__ = ()
    ORDERED = False


class IndexValueTable(MutableValueTable[K, V]):
    """:class:`IndexTable` for values changed in place."""

    __slots__ = ()
    ORDERED = False


_P = ParamSpec("_P")
_R = TypeVar("_R")


def all_or_nothing(operation: Callable[Concatenate[CacheState, _P], _R]) -> Callable[Concatenate[CacheState, _P], _R]:
    """Make a cache operation atomic: an exception leaves tables, flags and generation as before."""

    @functools.wraps(operation)
    def atomic(state: CacheState, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        journal = state.journal
        if journal.open:  # called by another atomic operation
            return operation(state, *args, **kwargs)
        flags, generation = state.flags, state.generation
        journal.open = True  # every table joins on its first change (journal rules)
        try:
            result = operation(state, *args, **kwargs)
        except BaseException:
            journal.rollback()
            state.flags, state.generation = flags, generation
            raise
        journal.commit()
        return result

    return atomic


@dataclass
class CacheState:
    """Every table of the cache plus the global flags and token (docs/protocol.md §3)."""

    clock: Callable[[], float] = time.monotonic
    pvid_to_pvmeta: Table[str, Section] = field(default_factory=Table)
    device_to_pvid: Table[int, str] = field(default_factory=Table)
    vgid_to_metadata: Table[str, Section] = field(default_factory=Table)
    vgid_to_vgname: Table[str, str] = field(default_factory=Table)
    #: a name may map to several VGs; the most recently added comes first
    vgname_to_vgid: MutableValueTable[str, list[str]] = field(default_factory=lambda: MutableValueTable(list))
    pvid_to_vgid: Table[str, str] = field(default_factory=Table)
    #: PV uuids holding older metadata of a VG, most recently marked first
    vgid_to_outdated_pvs: MutableValueTable[str, OutdatedPVs] = field(
        default_factory=lambda: MutableValueTable(OutdatedPVs)
    )
    vgid_to_info: MutableValueTable[str, VGInfo] = field(default_factory=lambda: MutableValueTable(dataclasses.replace))
    flags: GlobalFlag = GlobalFlag(0)
    tokens: TokenState = field(default_factory=TokenState)
    generation: int = 0
    # -- derived indexes (see "Costs grow with the request"); written only by
    #    _set_metadata/_replace_metadata/_drop_metadata/_set_pvmeta/_drop_pvmeta/_map_pv/_unmap_pv
    #: stored VG -> the PV uuids its metadata lists
    _listed: IndexTable[str, frozenset[str]] = field(default_factory=IndexTable, repr=False)
    #: PV uuid -> the stored VGs whose metadata lists it
    _listing: IndexValueTable[str, set[str]] = field(default_factory=lambda: IndexValueTable(set), repr=False)
    #: stored VG -> how many of its listed PVs are not in pvid_to_pvmeta
    _missing: IndexTable[str, int] = field(default_factory=IndexTable, repr=False)
    #: stored VG -> how many of its listed PVs are present and mapped to it
    _present: IndexTable[str, int] = field(default_factory=IndexTable, repr=False)
    #: the one journal of every table (:func:`all_or_nothing` opens it)
    journal: Journal = field(default_factory=Journal, repr=False, compare=False)

    def __post_init__(self) -> None:
        for table in self.tables():
            table.attach(self.journal)

    def now(self) -> int:
        return int(self.clock())

    def tables(self) -> tuple[Table[Any, Any], ...]:
        """Every table (docs/protocol.md §3, in its order) and every derived index."""
        return (
            self.pvid_to_pvmeta,
            self.device_to_pvid,
            self.vgid_to_metadata,
            self.vgid_to_vgname,
            self.vgname_to_vgid,
            self.pvid_to_vgid,
            self.vgid_to_outdated_pvs,
            self.vgid_to_info,
            self._listed,
            self._listing,
            self._missing,
            self._present,
        )

    def _changed(self) -> None:
        self.generation += 1

    # ------------------------------------------------------------------
    # the three tables the indexes derive from: every write goes through here
    # ------------------------------------------------------------------
    def _set_metadata(self, vgid: str, metadata: Section) -> None:
        """Store a VG's metadata (O(its PVs)), replacing any before."""
        if vgid in self.vgid_to_metadata:
            self._unindex_vg(vgid)
        self.vgid_to_metadata[vgid] = metadata
        listed = frozenset(vg_pvids(metadata))
        self._listed[vgid] = listed
        missing = present = 0
        pvmetas, mapping, listing = self.pvid_to_pvmeta, self.pvid_to_vgid, self._listing
        for pvid in listed:
            listing.setdefault(pvid, set()).add(vgid)
            if pvid not in pvmetas:
                missing += 1
            elif mapping.get(pvid) == vgid:
                present += 1
        self._missing[vgid] = missing
        self._present[vgid] = present

    def _drop_metadata(self, vgid: str) -> Section | None:
        metadata = self.vgid_to_metadata.pop(vgid, None)
        if metadata is not None:
            self._unindex_vg(vgid)
        return metadata

    def _unindex_vg(self, vgid: str) -> None:
        listing = self._listing
        for pvid in self._listed.pop(vgid, ()):
            vgids = listing.get(pvid)
            if vgids is not None:
                vgids.discard(vgid)
                if not vgids:
                    del listing[pvid]
        self._missing.pop(vgid, None)
        self._present.pop(vgid, None)

    def _set_pvmeta(self, pvid: str, pvmeta: Section) -> None:
        if pvid not in self.pvid_to_pvmeta:
            mapped = self.pvid_to_vgid.get(pvid)
            for vgid in self._listing.get(pvid, ()):
                self._missing[vgid] -= 1
                if vgid == mapped:
                    self._present[vgid] += 1
        self.pvid_to_pvmeta[pvid] = pvmeta

    def _drop_pvmeta(self, pvid: str) -> None:
        del self.pvid_to_pvmeta[pvid]
        mapped = self.pvid_to_vgid.get(pvid)
        for vgid in self._listing.get(pvid, ()):
            self._missing[vgid] += 1
            if vgid == mapped:
                self._present[vgid] -= 1

    def _map_pv(self, pvid: str, vgid: str) -> None:
        old = self.pvid_to_vgid.get(pvid)
        if old == vgid:
            return
        self.pvid_to_vgid[pvid] = vgid
        if pvid in self.pvid_to_pvmeta:
            self._move_present(pvid, old, vgid)

    def _unmap_pv(self, pvid: str) -> None:
        old = self.pvid_to_vgid.pop(pvid, None)
        if old is not None and pvid in self.pvid_to_pvmeta:
            self._move_present(pvid, old, None)

    def _move_present(self, pvid: str, old: str | None, new: str | None) -> None:
        vgids = self._listing.get(pvid)
        if not vgids:
            return
        if old is not None and old in vgids:
            self._present[old] -= 1
        if new is not None and new in vgids:
            self._present[new] += 1

    # ------------------------------------------------------------------
    # small shared operations (docs/protocol.md §6)
    # ------------------------------------------------------------------
    def _add_name(self, name: str, vgid: str) -> None:
        self.vgname_to_vgid.setdefault(name, []).insert(0, vgid)

    def _drop_name(self, name: str, vgid: str) -> None:
        ids = self.vgname_to_vgid.get(name)
        if ids is None:
            return
        try:
            ids.remove(vgid)
        except ValueError:
            return
        if not ids:
            del self.vgname_to_vgid[name]

    def name_has_vgid(self, name: str, vgid: str) -> bool:
        # a read that changes nothing: past the journal's copy-on-read (dict.get)
        return vgid in dict.get(self.vgname_to_vgid, name, ())

    def mark_outdated(self, vgid: str, pvid: str) -> None:
        """Record that ``pvid`` holds older metadata of ``vgid``, if it has an in-use mda."""
        pvmeta = self.pvid_to_pvmeta.get(pvid)
        if pvmeta is None:
            return
        if pvmeta.get_int64("mda0/ignore", 1) != 0 and pvmeta.get_int64("mda1/ignore", 1) != 0:
            return
        outdated = self.vgid_to_outdated_pvs.get(vgid)
        if outdated is None:
            outdated = self.vgid_to_outdated_pvs[vgid] = OutdatedPVs()
        outdated.mark(pvid)

    def assign_pvs(self, metadata: Section, vgid: str, remove_empty: bool) -> None:
        """Map every PV of ``metadata`` to ``vgid``; optionally drop VGs left empty."""
        previous: dict[str, None] = {}
        for pvid in vg_pvids(metadata):
            if remove_empty:
                old = self.pvid_to_vgid.get(pvid)
                if old is not None:
                    previous[old] = None
            self._map_pv(pvid, vgid)
        for old in previous:
            self.remove_vg_if_missing(old, orphan=False)

    def remove_metadata(self, vgid: str, orphan: bool) -> None:
        """Forget a VG; with ``orphan`` its listed PVs become ``#orphan``."""
        self.vgid_to_info.pop(vgid, None)
        metadata = self._drop_metadata(vgid)
        name = self.vgid_to_vgname.pop(vgid, None)
        self.vgid_to_outdated_pvs.pop(vgid, None)
        if name is not None:
            self._drop_name(name, vgid)
        if orphan and metadata is not None:
            for pvid in vg_pvids(metadata):
                self._map_pv(pvid, ORPHAN)

    def vg_has_present_pv(self, vgid: str) -> bool:
        """Whether a stored VG lists a PV that is present and mapped to it (O(1))."""
        return self._present.get(vgid, 0) > 0

    def remove_vg_if_missing(self, vgid: str, orphan: bool) -> None:
        """Drop a VG none of whose PVs is present (and mapped to it) any more."""
        if vgid in self.vgid_to_metadata and not self.vg_has_present_pv(vgid):
            self.remove_metadata(vgid, orphan)

    def purge(self, vgid: str, name: str) -> None:
        self.remove_metadata(vgid, orphan=True)
        self._drop_name(name, vgid)

    def vg_is_complete(self, vgid: str) -> bool:
        """Whether every PV a stored VG lists is present (O(1))."""
        return self._missing.get(vgid, 0) == 0

    def missing_pvs(self, vgid: str) -> int:
        """How many PVs a stored VG lists that are not present."""
        return self._missing.get(vgid, 0)

    # ------------------------------------------------------------------
    # the metadata merge (docs/protocol.md §6)
    # ------------------------------------------------------------------
    def merge_vg_metadata(
        self,
        name: str,
        vgid: str,
        metadata: Section,
        pvid: str | None,
        seqno: int | None = None,
        pvids: list[str] | None = None,
    ) -> MergeResult:
        """Merge VG metadata sent by a PV (``pvid``) or by a command (``pvid=None``).

        ``seqno`` is ``metadata.get_int("seqno", -1)`` when the caller has read it;
        ``pvids`` is :func:`strip_device_hints` of ``metadata`` when the caller has
        stripped it (stripping twice could drop a second, adjacent hint).

        Returns whether it was accepted and the seqno to report as "before".
        A refusal changes nothing, except that a PV reporting older metadata
        is marked outdated (the original does this before refusing).
        """
        known_name = self.vgid_to_vgname.get(vgid)
        paired = vgid in dict.get(self.vgname_to_vgid, name, ())  # name_has_vgid, inlined
        old: Section | None = None
        needs_repair = False
        if known_name is None and not paired:
            kind = "new"
        elif known_name is not None and known_name != name:
            kind = "rename"
            if paired:
                needs_repair = True
            else:
                old = self.vgid_to_metadata.get(vgid)
                needs_repair = old is None
        else:
            kind = "same"
            old = self.vgid_to_metadata.get(vgid)
            needs_repair = known_name is None or not paired or old is None

        if pvids is None:
            pvids = strip_device_hints(metadata)
        new_seq = metadata.get_int("seqno", -1) if seqno is None else seqno
        old_seq = old.get_int("seqno", -1) if old is not None else -1
        reported = old_seq if old is not None else new_seq

        if new_seq <= 0 or needs_repair or metadata.get_str("id") != vgid:
            return MergeResult(False, reported)
        if pvid is not None:  # the PV's copy: older is refused, newer marks the old PVs outdated
            if old_seq > 0 and new_seq < old_seq:
                self.mark_outdated(vgid, pvid)
                self._changed()
                return MergeResult(False, reported)
            if old_seq > 0 and new_seq > old_seq:
                assert old is not None
                for old_pvid in vg_pvids(old):
                    self.mark_outdated(vgid, old_pvid)
                    self._map_pv(old_pvid, vgid)
            if old is not None and new_seq == old_seq and compare_trees(metadata, old) != 0:
                return MergeResult(False, reported)
        purge = old is not None and (
            old_seq <= 0
            or (pvid is None and (new_seq < old_seq or (new_seq == old_seq and compare_trees(metadata, old) != 0)))
        )
        if not (pvid is not None and kind == "same" and not purge and new_seq == old_seq):
            # (a PV's copy of the stored metadata, the same seqno and tree: nothing changes)
            self._changed()
        if purge:
            self.purge(vgid, name)
            old, kind = None, "new"

        if kind == "new":
            self._set_metadata(vgid, metadata)
            self.vgid_to_vgname[vgid] = name
            self._add_name(name, vgid)
            self.assign_pvs(metadata, vgid, remove_empty=True)
        elif kind == "rename":
            assert old is not None and known_name is not None
            self.assign_pvs(old, ORPHAN, remove_empty=False)
            self.vgid_to_info.pop(vgid, None)
            self.vgid_to_outdated_pvs.pop(vgid, None)
            self._set_metadata(vgid, metadata)
            self.vgid_to_vgname[vgid] = name
            self._drop_name(known_name, vgid)
            self._add_name(name, vgid)
            self.assign_pvs(metadata, vgid, remove_empty=True)
        elif new_seq != old_seq:
            assert old is not None
            if vgid != ORPHAN and self._lists_same_pvs(vgid, old, pvids):
                self._replace_metadata(vgid, metadata, pvids)
            else:
                self.assign_pvs(old, ORPHAN, remove_empty=False)
                self._set_metadata(vgid, metadata)
                self.assign_pvs(metadata, vgid, remove_empty=True)
        return MergeResult(True, reported)

    def _lists_same_pvs(self, vgid: str, old: Section, pvids: list[str]) -> bool:
        """Whether ``pvids`` (new metadata of stored ``vgid``) lets :meth:`_replace_metadata` stand for the general path.

        It does when they are the old metadata's PVs in the same order.  The
        order matters only where a PV has no ``pvid_to_vgid`` entry (the
        general path inserts those in the old order, the one pass in the
        new): when every one has an entry the same set is enough, and that
        is the stored ``_listed`` -- no walk of the old metadata.
        """
        new = frozenset(pvids)
        if new != self._listed.get(vgid):
            return False
        if self.pvid_to_vgid.keys() >= new:
            return True
        return pvids == list(vg_pvids(old))

    def _replace_metadata(self, vgid: str, metadata: Section, pvids: list[str]) -> None:
        """A stored VG's new metadata listing the same PVs (most updates; :meth:`_lists_same_pvs`).

        The same end state as the general path -- orphan the old PVs, store,
        map the new ones back, drop the VGs left without a PV -- in one pass:
        every listed PV ends mapped to ``vgid`` (a PV the general path
        re-inserts is re-inserted in the same order), the listed set and so the
        ``missing`` count are unchanged, ``present`` moves with each PV that
        was mapped elsewhere, and the only VG the general path would check
        for removal is ``#orphan`` (every PV was mapped there in between).
        """
        self.vgid_to_metadata[vgid] = metadata
        mapping = self.pvid_to_vgid
        for pvid in pvids:
            if mapping.get(pvid) != vgid:  # (_map_pv's own first test: most are mapped to vgid already)
                self._map_pv(pvid, vgid)
        if pvids and ORPHAN in self.vgid_to_metadata:
            self.remove_vg_if_missing(ORPHAN, orphan=False)

    # ------------------------------------------------------------------
    # PV requests
    # ------------------------------------------------------------------
    def pv_found(
        self,
        pvmeta: Section,
        pvid: str,
        device: int,
        vgname: str | None = None,
        vgid: str | None = None,
        metadata: Section | None = None,
    ) -> PVFoundResult:
        """A device carries PV ``pvid`` (and maybe VG metadata); docs/protocol.md §5 pv_found.

        ``device`` is ``pvmeta``'s own device field (what the handler reads there).
        """
        if metadata is None and device:
            pvmetas = self.pvid_to_pvmeta
            old = pvmetas.get(pvid)
            if old is not None:
                # what pvscan --cache sends of every known orphan PV: stored exactly as sent on
                # its device (same trees: the same device field), so nothing would change and
                # no operation is opened; _store_pv_found's path for it, reads only
                if (
                    self.device_to_pvid.get(device) == pvid
                    and pvid not in self.pvid_to_vgid
                    and same_trees(pvmeta, old)
                ):
                    return UNCHANGED_ORPHAN
            elif device not in self.device_to_pvid and pvid not in self.pvid_to_vgid and pvid not in self._listing:
                # what a first scan sends of every orphan PV: never seen, on a free device, in
                # no VG's metadata; _store_pv_found's path for it is these two insertions (no
                # index derives from them) and the generation, undone here if one fails.
                # Neither of the last two tests implies the other: a PV keeps its mapping when
                # a VG listing it is dropped for having no PV present (the reply then names
                # that VG), and is unmapped but still listed when another PV takes its device
                # (its VG's missing count then moves)
                devices = self.device_to_pvid
                try:
                    devices[device] = pvid
                    pvmetas[pvid] = pvmeta
                except BaseException:
                    devices.pop(device, None)
                    pvmetas.pop(pvid, None)
                    raise
                self.generation += 1  # self._changed(), inline
                return NEW_ORPHAN
        return self._store_pv_found(pvmeta, pvid, device, vgname, vgid, metadata)

    @all_or_nothing
    def _store_pv_found(
        self,
        pvmeta: Section,
        pvid: str,
        device: int,
        vgname: str | None,
        vgid: str | None,
        metadata: Section | None,
    ) -> PVFoundResult:
        """:meth:`pv_found`, all or nothing."""
        old = self.pvid_to_pvmeta.get(pvid)
        old_device = old.get_int64("device", 0) if old is not None else 0
        old_device = old_device or 0
        device_pvid = self.device_to_pvid.get(device)
        changed = 0
        stored = False  # whether the PV is stored exactly as sent already: nothing changes
        prev: str | None = None
        prev_vgid: str | None = None

        if device_pvid is not None and old_device != 0 and device == old_device and device_pvid == pvid:
            assert old is not None
            if same_trees(pvmeta, old):
                # storing it would change nothing (and move the generation, so every kept
                # reply text would be built again)
                stored = True
            else:
                changed = int(compare_trees(pvmeta, old) != 0)
                self._set_pvmeta(pvid, pvmeta)
        elif device_pvid is None and old_device == 0:
            changed = 1
            self.device_to_pvid[device] = pvid
            self._set_pvmeta(pvid, pvmeta)
        elif device_pvid is not None and device_pvid != pvid:
            changed = 1
            prev = device_pvid
            prev_vgid = self.pvid_to_vgid.get(prev)
            if prev in self.pvid_to_pvmeta:
                self._drop_pvmeta(prev)
                del self.device_to_pvid[device]
                if pvid in self.pvid_to_pvmeta:
                    self.flags |= GlobalFlag.DISABLE | GlobalFlag.DUPLICATES
                    self._changed()
                    return PVFoundResult(failed="Ignore duplicate PV")
            self.device_to_pvid[device] = pvid
            self._set_pvmeta(pvid, pvmeta)
        elif old_device != 0 and old_device != device:
            self.flags |= GlobalFlag.DISABLE | GlobalFlag.DUPLICATES
            self._changed()
            return PVFoundResult(failed="Ignore duplicate PV")
        else:
            return PVFoundResult(failed="Ignore PV for unknown state")
        if not stored:
            self._changed()

        seqno_before = -1
        found_vgid: str | None
        found_name: str | None
        if metadata is not None:
            assert vgname is not None and vgid is not None
            merge = self.merge_vg_metadata(vgname, vgid, metadata, pvid)
            seqno_before = merge.seqno_before
            if merge.seqno_before != metadata.get_int("seqno", -1):
                changed = 1
            found_vgid, found_name = vgid, vgname
        else:
            found_vgid = self.pvid_to_vgid.get(pvid)
            found_name = self.vgid_to_vgname.get(found_vgid) if found_vgid is not None else None

        seqno_after = -1
        if found_vgid is None or found_vgid == ORPHAN:
            status = "orphan"
        else:
            cached = self.vgid_to_metadata.get(found_vgid)
            if cached is not None:
                status = "complete" if self.vg_is_complete(found_vgid) else "partial"
                seqno_after = cached.get_int("seqno", -1)
            else:
                status = "(null)"

        if prev is not None and prev_vgid is not None:
            if found_vgid != prev_vgid:
                self.remove_vg_if_missing(prev_vgid, orphan=True)
            self._unmap_pv(prev)
        return PVFoundResult(
            None, status, changed, found_vgid or ORPHAN, found_name or ORPHAN, seqno_before, seqno_after
        )

    def pv_gone(self, pvid: str | None, device: int) -> str | None:
        """A device or PV disappeared.  Returns the ``unknown`` reason, or None on success."""
        if pvid is None:
            found = self.device_to_pvid.get(device) if device > 0 else None
            if found is None:
                return "device not in cache"
            pvid = found
        if pvid not in self.pvid_to_pvmeta:
            return "PVID does not exist"
        self._changed()
        vgid = self.pvid_to_vgid.get(pvid)
        # the original removes the *request's* device entry, even if it is another PV's
        self.device_to_pvid.pop(device, None)
        self._drop_pvmeta(pvid)
        if vgid is not None:
            self.remove_vg_if_missing(vgid, orphan=True)
        return None

    def pv_clear_all(self) -> None:
        """Empty every table; the token and global flags stay."""
        self._changed()
        self.pvid_to_pvmeta.clear()
        self.device_to_pvid.clear()
        self.vgid_to_metadata.clear()
        self.vgid_to_vgname.clear()
        self.vgname_to_vgid.clear()
        self.pvid_to_vgid.clear()
        self.vgid_to_outdated_pvs.clear()
        self.vgid_to_info.clear()
        self._listed.clear()
        self._listing.clear()
        self._missing.clear()
        self._present.clear()

    def pv_vg(self, pvid: str) -> tuple[str | None, str | None]:
        """The (vgid, vgname) a PV reports in pv_list/pv_lookup (vgid omitted for orphans)."""
        vgid = self.pvid_to_vgid.get(pvid)
        name = self.vgid_to_vgname.get(vgid) if vgid is not None else None
        return (vgid if vgid != ORPHAN else None), name

    # ------------------------------------------------------------------
    # VG requests
    # ------------------------------------------------------------------
    def vg_update(self, vgname: str, vgid: str, metadata: Section, seqno: int | None = None) -> bool:
        """Metadata written by a command; False (nothing changed) if refused.

        ``seqno``: ``metadata.get_int("seqno", -1)`` when the caller has read it already.
        """
        old = self.vgid_to_metadata.get(vgid)
        if old is None or self.vgid_to_vgname.get(vgid) != vgname or vgid in self.vgid_to_info:
            return self._store_vg_update(vgname, vgid, metadata, seqno, None)
        # what every command that changes a VG sends: a newer seqno of a stored VG, the same
        # name, the same PVs, each mapped to it.  The general path (merge_vg_metadata's
        # "same" kind, _replace_metadata) then changes one table entry and the generation:
        # done here without opening an operation (one write cannot be half done).
        # Of merge's conditions for that path, two are not tested, as they follow:
        # * the stored seqno is positive (merge purges the VG when it is not), an invariant
        #   (check_invariants): metadata is stored only by merge_vg_metadata, which refuses
        #   a seqno <= 0, and here, above a stored one (a seqno passed in is get_int's);
        # * vgid is not #orphan (merge's full path for it): #orphan would be stored (old is
        #   not None), and the short path needs no #orphan VG stored.
        # The name and its pair (name -> vgid) are both tested, though either implies the
        # other while vgid_to_vgname and vgname_to_vgid mirror each other (they are written
        # only together): a cache where they do not is merge's "needs repair", which it
        # refuses, and so must this (test_vg_update_fast, test_merge).
        pvids = strip_device_hints(metadata)
        new_items = metadata._items
        new_seq = metadata.get_int("seqno", -1) if seqno is None else seqno
        # the stored seqno and the new uuid (get_int, get_str) read inline: C calls, no frames
        items = old._items
        old_seq = _first_value_accel(items, "seqno") if items is not None and _first_value_accel else None
        if type(old_seq) is not int or not -0x80000000 <= old_seq <= 0x7FFFFFFF:
            old_seq = old.get_int("seqno", -1)
        new_id = _first_value_accel(new_items, "id") if new_items is not None and _first_value_accel else None
        if type(new_id) is not str or not new_id:
            new_id = metadata.get_str("id")
        if (
            old_seq < new_seq
            # (the handler reads vgid from metadata/id, so no request fails this; but the
            # method takes them apart, and merge refuses a mismatch)
            and new_id == vgid
            and vgid in dict.get(self.vgname_to_vgid, vgname, ())
            and ORPHAN not in self.vgid_to_metadata
            and frozenset(pvids) == self._listed.get(vgid)
        ):
            mapping = self.pvid_to_vgid
            for pvid in pvids:
                if mapping.get(pvid) != vgid:
                    break
            else:
                table = self.vgid_to_metadata
                if table._saved is None and not self.journal.open:
                    # Table.__setitem__ without its frame (~2 k instructions): outside an operation,
                    # for a key it holds (old), it is dict's (journal rules: nothing to save, no
                    # new entry for the key list)
                    _dict_setitem(table, vgid, metadata)
                else:
                    table[vgid] = metadata
                self.generation += 1  # self._changed(), inline
                return True
        return self._store_vg_update(vgname, vgid, metadata, new_seq, pvids)

    @all_or_nothing
    def _store_vg_update(
        self, vgname: str, vgid: str, metadata: Section, seqno: int | None, pvids: list[str] | None
    ) -> bool:
        """:meth:`vg_update`, all or nothing (``pvids``: the metadata's, when stripped already)."""
        merge = self.merge_vg_metadata(vgname, vgid, metadata, None, seqno, pvids)
        if not merge.ok:
            return False
        if vgid in self.vgid_to_info:  # a membership test: no journal copy of an absent record
            info = self.vgid_to_info[vgid]
            seqno64 = metadata.get_int64("seqno")
            if seqno64 is not None and seqno64 >= info.external_version:
                info.flags &= ~VG_INVALID
        return True

    def vg_remove(self, vgid: str) -> None:
        self._changed()
        self.remove_metadata(vgid, orphan=True)

    def vg_clear_outdated_pvs(self, vgid: str) -> None:
        if self.vgid_to_outdated_pvs.pop(vgid, None) is not None:
            self._changed()

    def resolve_vg(self, vgid: str | None, name: str | None) -> tuple[str, str, str]:
        """vg_lookup's resolution: (response, reason-or-vgid, name) per docs/protocol.md §5."""
        if vgid is None and name is None:
            return "unknown", "VG not found", ""
        if vgid is None:
            assert name is not None
            ids = self.vgname_to_vgid.get(name)
            if not ids:
                return "unknown", "VG not found", ""
            if len(ids) > 1:
                return "multiple", "Multiple VGs found with same name", ""
            vgid = ids[0]
        elif name is None:
            found = self.vgid_to_vgname.get(vgid)
            if found is None:
                return "unknown", "VG not found", ""
            name = found
        else:
            stored = self.vgid_to_vgname.get(vgid)
            if stored is None or not self.name_has_vgid(name, vgid):
                return "unknown", "VG mapping incomplete", ""
            if stored != name:
                return "unknown", "VG mapping inconsistent", ""
        if vgid not in self.vgid_to_metadata:
            return "unknown", "UUID not found", ""
        return "OK", vgid, name

    def vg_invalid(self, vgid: str) -> bool:
        info = self.vgid_to_info.get(vgid)
        return info is not None and info.invalid

    # ------------------------------------------------------------------
    # global and invalidation
    # ------------------------------------------------------------------
    def set_global_info(self, global_invalid: int, global_disable: int, disable_reason: str | None) -> None:
        reasons = GlobalFlag(0)
        if disable_reason is not None:
            for word, bit in DISABLE_REASONS:
                if word in disable_reason:
                    reasons |= bit
        before = self.flags
        if global_invalid == 1:
            self.flags |= GlobalFlag.INVALID
        elif global_invalid == 0:
            self.flags &= ~GlobalFlag.INVALID
        if global_disable == 1:
            self.flags |= GlobalFlag.DISABLE | reasons
        elif global_disable == 0:
            self.flags &= ~(GlobalFlag.DISABLE | ALL_REASONS)
        if self.flags != before:
            self._changed()

    def disable_reason(self) -> str:
        if not self.flags & GlobalFlag.DISABLE:
            return "none"
        text = "".join(word + "," for word, bit in DISABLE_REASONS if self.flags & bit)
        return text or "none"

    def set_vg_info(self, version: int, vgid: str | None, name: str | None) -> bool:
        """Flag a VG invalid if ``version`` is newer than the cache (0: always).  True if flagged."""
        if version == -1:
            return False
        target: str | None = None
        if vgid is not None and vgid in self.vgid_to_metadata:
            target = vgid
        elif name is not None:
            ids = self.vgname_to_vgid.get(name)
            target = ids[0] if ids else None
        if target is None:
            return False
        metadata = self.vgid_to_metadata.get(target)
        if metadata is None:
            return False
        if version != 0:
            cached = metadata.get_int64("seqno")
            if cached is not None and cached >= version:
                return False
        info = self.vgid_to_info.setdefault(target, VGInfo())
        info.external_version = version
        info.flags |= VG_INVALID
        self._changed()
        return True

    def token_action(self, name: str, token: str, pid: int) -> Action:
        """What a request does to the token, from the table in :mod:`.tokens`; nothing changes yet."""
        return decide(self.tokens, name, token, pid, self.now)

    def apply_token_action(self, action: Action, token: str, pid: int, cmd: str, update_timeout: int) -> str:
        """Carry out an action of :meth:`token_action` for a request's fields; returns the token before."""
        tokens = self.tokens
        prev = tokens.token
        if action is Action.START:
            tokens.start_update(pid, cmd, update_timeout, self.now())
        elif action is Action.FINISH:
            tokens.finish_update(token)
        elif action is Action.CANCEL:
            tokens.token = ""
            tokens.clear_update()
        return prev

    # ------------------------------------------------------------------
    # consistency
    # ------------------------------------------------------------------
    def check_invariants(self) -> list[str]:
        """Violations of the invariants the original always keeps (empty = consistent).

        These are the invariants of docs/protocol.md §3 that hold for
        *every* request sequence; the ones the original lets slip (stale
        ``device_to_pvid`` entries after pv_gone by uuid, VGs with no present
        PV inserted by vg_update) are not checked.
        """
        problems: list[str] = []
        if set(self.vgid_to_metadata) != set(self.vgid_to_vgname):
            problems.append("vgid_to_metadata and vgid_to_vgname differ in keys")
        for vgid, name in self.vgid_to_vgname.items():
            if vgid not in self.vgname_to_vgid.get(name, ()):
                problems.append(f"name {name!r} does not map back to {vgid}")
        for name, ids in self.vgname_to_vgid.items():
            if not ids:
                problems.append(f"empty vgid list for name {name!r}")
            for vgid in ids:
                if self.vgid_to_vgname.get(vgid) != name:
                    problems.append(f"vgname_to_vgid {name!r} -> {vgid} not mirrored")
            if len(set(ids)) != len(ids):
                problems.append(f"duplicate vgids for name {name!r}")
        for vgid, metadata in self.vgid_to_metadata.items():
            if metadata.get_str("id") != vgid:
                problems.append(f"metadata of {vgid} carries another id")
            seqno = metadata.get_int("seqno", -1)
            if seqno <= 0:
                problems.append(f"metadata of {vgid} has seqno {seqno}")
        for pvid, pvmeta in self.pvid_to_pvmeta.items():
            device = pvmeta.get_int64("device")
            if device is None or self.device_to_pvid.get(device) != pvid:
                problems.append(f"pvmeta of {pvid} names device {device} that does not map back")
        for table in ("vgid_to_info", "vgid_to_outdated_pvs"):
            for vgid in getattr(self, table):
                if vgid not in self.vgid_to_metadata:
                    problems.append(f"{table} has an entry for uncached VG {vgid}")
        if self.tokens.token != UPDATE_IN_PROGRESS and self.tokens.update_pid:
            problems.append("update_pid set while no update is in progress")
        problems += self._index_problems()
        return problems

    def _index_problems(self) -> list[str]:
        """The derived indexes, recomputed from the tables and compared."""
        problems: list[str] = []
        listed = {vgid: frozenset(vg_pvids(md)) for vgid, md in self.vgid_to_metadata.items()}
        if listed != self._listed:
            problems.append("listed-PV index differs from the stored metadata")
        listing: dict[str, set[str]] = {}
        for vgid, pvids in listed.items():
            for pvid in pvids:
                listing.setdefault(pvid, set()).add(vgid)
        if listing != self._listing:
            problems.append("listing-VG index differs from the stored metadata")
        for vgid, pvids in listed.items():
            missing = sum(1 for p in pvids if p not in self.pvid_to_pvmeta)
            present = sum(1 for p in pvids if p in self.pvid_to_pvmeta and self.pvid_to_vgid.get(p) == vgid)
            if self._missing.get(vgid) != missing or self._present.get(vgid) != present:
                problems.append(
                    f"VG {vgid}: counts missing {self._missing.get(vgid)}/present {self._present.get(vgid)},"
                    f" tables say {missing}/{present}"
                )
        if set(self._missing) != set(listed) or set(self._present) != set(listed):
            problems.append("count indexes hold VGs that are not stored")
        return problems

"""Requests cost what they carry, not what the cache holds (issue 13, item 5).

Counted, not timed: every PV entry the cache reads out of a VG's
``physical_volumes`` (``cache.vg_pvids``) and every comparison of two PV
uuids is one unit of work.  A workload on a VG of n PVs -- a scan that finds
each PV, one PV reporting newer metadata (which marks all the others
outdated), then each PV gone -- must take about 4 times the work at 4n
(linear), where the old bookkeeping took 16 times (each of those steps
walked the VG's PV list or the outdated list once per PV).  About 1 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pylvmetad.metad import cache
from pylvmetad.wire.codec import Section
from support.lvm_requests import new_session, pv_found, pvid, request, vg_metadata, vg_update, vgid

VG = vgid(1)


class Work:
    units = 0


class CountedUuid(str):
    """A PV uuid that counts the comparisons made with it."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        Work.units += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        Work.units += 1
        return str.__ne__(self, other)


def counted_vg_pvids(metadata: Section) -> Iterator[str]:
    for pv in ORIGINAL_VG_PVIDS(metadata):
        Work.units += 1
        yield CountedUuid(pv)


ORIGINAL_VG_PVIDS = cache.vg_pvids


def workload(n: int) -> int:
    """The work units of a scan, a newer seqno from one PV, and every PV gone, for a VG of n PVs."""
    s = new_session()
    s.populate()  # the daemon's token is the command's
    pvs = [pvid(i) for i in range(n)]
    devices = {pv: 4096 + i for i, pv in enumerate(pvs)}
    Work.units = 0
    assert s.fields(vg_update("vg0", vg_metadata(VG, 1, pvs)))["response"] == "OK"
    for pv in pvs:  # a scan: each PV found (its mda carries no metadata here)
        assert s.fields(pv_found(pv, devices[pv]))["response"] == "OK"
    last = s.fields(pv_found(pvs[0], devices[pvs[0]]))
    assert last["status"] == "complete", last
    # PV 0 reports seqno 2: every PV of seqno 1 is marked outdated
    newer = s.fields(pv_found(pvs[0], devices[pvs[0]], vgname="vg0", metadata=vg_metadata(VG, 2, pvs)))
    assert newer["response"] == "OK", newer
    assert len(s.state.vgid_to_outdated_pvs[VG]) == n
    for pv in pvs:  # the disks go, in the order the VG lists them
        assert s.fields(request("pv_gone", uuid=pv))["response"] == "OK"
    assert VG not in s.state.vgid_to_metadata
    assert s.state.check_invariants() == []
    return Work.units


def test_a_vgs_pvs_cost_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "vg_pvids", counted_vg_pvids)
    small, large = workload(150), workload(600)
    assert small > 150  # the counting sees the work at all
    assert large < 6 * small, (small, large)  # linear: ~4x; quadratic: ~16x


def test_outdated_pvs_keep_marking_order() -> None:
    marked = cache.OutdatedPVs()
    for pv in ("a", "b", "a", "c"):
        marked.mark(pv)
    assert list(marked) == ["c", "b", "a"]  # most recent first, as the original's list
    assert list(reversed(marked)) == ["a", "b", "c"]
    assert "b" in marked and "d" not in marked and len(marked) == 3
    assert marked == ["c", "b", "a"] and marked == cache.OutdatedPVs(["c", "b", "a"])


def test_common_updates_copy_no_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """vg_update and pv_found are journaled per key changed, never per table size.

    With 1000 PVs and 100 VGs cached: a vg_update that renames its VG and a
    pv_found of a new PV on a known device remove keys from ordered tables
    (vgname_to_vgid, pvid_to_pvmeta...: the path that once copied a table's
    whole key order), a re-index removes keys of ``_listing`` (every PV); yet
    no table is walked (a copy of its order would be a walk) and each
    operation's journal holds a few dozen keys.  Each operation's journal is
    read as the cache commits it.
    """
    from pylvmetad.metad import journal

    s = new_session()
    s.populate()
    pvs = [pvid(i) for i in range(1000)]
    vgs = [vgid(j) for j in range(100)]
    for j, vg in enumerate(vgs):
        assert s.fields(vg_update(f"vg{j}", vg_metadata(vg, 1, pvs[j * 10 : (j + 1) * 10])))["response"] == "OK"
    for i, pv in enumerate(pvs):
        assert s.fields(pv_found(pv, 4096 + i))["response"] == "OK"

    walks: list[int] = []
    journaled: list[int] = []
    ordered_removals: list[int] = []
    original_commit = journal.Journal.commit

    def walk(self: journal.Table[object, object]) -> Iterator[object]:
        walks.append(len(self))
        return dict.__iter__(self)

    def commit(self: journal.Journal) -> None:
        tables = self.joined
        journaled.append(sum(len(t._saved or ()) for t in tables))
        ordered_removals.append(sum(t.ORDERED and t._mark is not None for t in tables))
        original_commit(self)

    monkeypatch.setattr(journal.Table, "__iter__", walk)
    monkeypatch.setattr(journal.Journal, "commit", commit)
    for j in (3, 50, 99):
        assert (
            s.fields(vg_update(f"renamed{j}", vg_metadata(vgs[j], 2, pvs[j * 10 : (j + 1) * 10])))["response"] == "OK"
        )
        assert s.fields(pv_found(pvid(5000 + j), 4096 + j * 10 + 1))["response"] == "OK"  # a new PV, a known device
        assert s.fields(pv_found(pvs[j * 10], 4096 + j * 10))["response"] == "OK"
    monkeypatch.undo()
    assert len(journaled) == 9 and all(ordered_removals[:2]) and sum(ordered_removals) >= 6, ordered_removals
    assert walks == []
    assert max(journaled) < 64, journaled
    assert s.state.check_invariants() == []

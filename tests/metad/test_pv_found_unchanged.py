"""pv_found's two short paths for orphan PVs give the general path's answer.

:meth:`CacheState.pv_found` answers a PV stored exactly as sent (no VG
metadata, not in a VG) without opening an operation, and stores an orphan
PV never seen on a free device by two insertions; every other pv_found
goes through the all-or-nothing ``_store_pv_found``.  Driven side by side
with a cache that always takes the general path, the replies and the cache
must be the same after every request.  Explicit examples pin the states the
new-orphan path must leave to the general one though no table but one says
so: a PV still mapped to a VG since dropped, a PV still listed but unmapped.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pylvmetad.metad.cache import NEW_ORPHAN, UNCHANGED_ORPHAN
from pylvmetad.metad.journal import Table
from support.lvm_requests import Session, new_session, pv_found, pvid, request, vg_metadata, vg_update, vgid
from support.short_path import assert_same_as_general, general_path_calls, refuse_general_path, tables

PV1, PV2 = pvid(1), pvid(2)
D1, D2 = 2048, 2064


def general(session: Session) -> Session:
    """``session`` with pv_found always on the general path (its fast path never taken)."""
    state = session.state
    setattr(state, "pv_found", state._store_pv_found)  # noqa: B010 (an instance attribute over the method)
    return session


def test_known_orphan_opens_no_operation() -> None:
    s = new_session()
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    state = s.state
    generation = state.generation
    refuse_general_path(s, "_store_pv_found")
    found = s.fields(pv_found(PV1, D1))
    assert found["status"] == "orphan" and found["changed"] == 0, found
    assert state.generation == generation and not state.journal.open
    assert state.pv_found(state.pvid_to_pvmeta[PV2], PV2, D2) is UNCHANGED_ORPHAN


def test_new_orphan_opens_no_operation() -> None:
    s = new_session()
    s.populate()
    state = s.state
    refuse_general_path(s, "_store_pv_found")
    generation = state.generation
    found = s.fields(pv_found(PV1, D1))
    assert found["status"] == "orphan" and found["changed"] == 1, found
    assert state.generation == generation + 1 and not state.journal.open
    assert state.device_to_pvid[D1] == PV1 and PV1 in state.pvid_to_pvmeta
    assert state.check_invariants() == []
    pvmeta = state.pvid_to_pvmeta[PV1]
    assert state.pv_found(pvmeta, PV2, D2) is NEW_ORPHAN


def test_new_orphan_not_taken_when_something_is_known() -> None:
    """A PV listed by a VG, a device another PV holds: each goes the general path."""
    s = new_session()
    s.populate(
        pv_found(PV1, D1),
        vg_update("vg1", vg_metadata(vgid(1), 1, [PV2])),  # PV2 listed, not yet found
    )
    taken = general_path_calls(s, "_store_pv_found")
    assert s.fields(pv_found(PV2, D2))["status"] == "complete"
    assert s.fields(pv_found(pvid(3), D1))["changed"] == 1  # D1 held by PV1: it moves
    assert taken == [PV2, pvid(3)]


def test_new_orphan_not_taken_for_a_pv_mapped_to_a_dropped_vg() -> None:
    """A PV never found but still mapped (to a VG since dropped): the general path reports that VG.

    vg1 lists PV1 and PV2, neither found; vg2 takes PV1, which leaves vg1
    with no present PV, so vg1 is dropped (``remove_vg_if_missing`` without
    orphaning) and PV2 keeps its mapping to it.  PV2 then found on a free
    device is in no table the new-orphan path reads but ``pvid_to_vgid``.
    """
    steps = [
        vg_update("vg1", vg_metadata(vgid(1), 1, [PV1, PV2])),
        vg_update("vg2", vg_metadata(vgid(2), 1, [PV1])),
        pv_found(PV2, D2),
    ]
    assert_same_as_general(steps, general)
    s = new_session()
    s.populate(*steps[:2])
    assert vgid(1) not in s.state.vgid_to_metadata and s.state.pvid_to_vgid[PV2] == vgid(1)
    found = s.fields(steps[2])
    assert (found["status"], found["vgid"]) == ("(null)", vgid(1)), found


def test_new_orphan_not_taken_for_a_listed_unmapped_pv() -> None:
    """A PV its VG still lists but no longer mapped (its device taken over): found again, the VG's count moves.

    PV1's device goes to PV3, which unmaps PV1 but keeps vg1 (PV2 is still
    present); PV1 found on a free device makes vg1 complete again, a count
    (``_missing``) only the general path moves.
    """
    steps = [
        pv_found(PV1, D1),
        pv_found(PV2, D2),
        vg_update("vg1", vg_metadata(vgid(1), 1, [PV1, PV2])),
        pv_found(pvid(3), D1),
        pv_found(PV1, D1 + 32),
        pv_found(PV2, D2, vgname="vg1", metadata=vg_metadata(vgid(1), 1, [PV1, PV2])),
    ]
    assert_same_as_general(steps, general)
    s = new_session()
    s.populate(*steps[:4])
    assert PV1 not in s.state.pvid_to_vgid and PV1 in s.state._listing
    s.send(steps[4])
    assert s.state.check_invariants() == []
    assert s.fields(steps[5])["status"] == "complete"


class _FailingTable(Table[str, object]):
    """A table whose insertion raises (as MemoryError would), after nothing is stored."""

    __slots__ = ()

    def __setitem__(self, key: str, value: object) -> None:
        raise MemoryError("no room")


def test_new_orphan_undone_when_the_second_insertion_fails() -> None:
    s = new_session()
    s.populate(pv_found(PV1, D1))
    state = s.state
    before = tables(state)
    good = state.pvid_to_pvmeta
    failing = _FailingTable(good.items())
    state.pvid_to_pvmeta = failing  # type: ignore[assignment]
    with pytest.raises(MemoryError):
        state.pv_found(good[PV1], PV2, D2)
    state.pvid_to_pvmeta = good
    assert dict(failing) == dict(good)
    assert tables(state) == before
    assert D2 not in state.device_to_pvid


def test_not_taken_when_something_differs() -> None:
    """A changed record, another device, a PV in a VG: each goes the general path."""
    s = new_session()
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2, vgname="vg1", metadata=vg_metadata(vgid(1), 1, [PV2])))
    taken = general_path_calls(s, "_store_pv_found")
    assert s.fields(pv_found(PV1, D1, dev_size=1 << 30))["changed"] == 1
    assert s.fields(pv_found(PV2, D2))["status"] == "complete"
    assert s.fields(pv_found(PV1, D2 + 16))["response"] == "failed"  # a known PV on another device
    assert taken == [PV1, PV2, PV1]


PVS = [pvid(i) for i in range(3)]
DEVICES = [2048, 2064, 2080, 0]
STEP = st.one_of(
    st.builds(
        lambda pv, dev, size: pv_found(pv, dev, dev_size=size),
        st.sampled_from(PVS),
        st.sampled_from(DEVICES),
        st.sampled_from([1 << 20, 1 << 30]),
    ),
    st.builds(
        lambda pv, dev, seqno, listed: pv_found(
            pv, dev, vgname="vg0", metadata=vg_metadata(vgid(0), seqno, [pv, *listed])
        ),
        st.sampled_from(PVS),
        st.sampled_from(DEVICES),
        st.integers(1, 3),
        st.lists(st.sampled_from(PVS), max_size=2, unique=True),
    ),
    st.builds(lambda pv: request("pv_gone", uuid=pv), st.sampled_from(PVS)),
    st.builds(lambda dev: request("pv_gone", device=dev), st.sampled_from(DEVICES)),
    # the original drops the request's device entry, even another PV's: that PV's is then missing
    st.builds(lambda pv, dev: request("pv_gone", uuid=pv, device=dev), st.sampled_from(PVS), st.sampled_from(DEVICES)),
    st.builds(
        lambda seqno, listed: vg_update("vg0", vg_metadata(vgid(0), seqno, listed)),
        st.integers(1, 4),
        st.lists(st.sampled_from(PVS), min_size=1, max_size=3, unique=True),
    ),
    st.just(request("vg_remove", uuid=vgid(0))),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEP, max_size=14))
@example(  # PVS[1]'s device entry dropped by another PV's pv_gone: its record alone is no longer enough
    [
        pv_found(PVS[0], 2048),
        pv_found(PVS[1], 2064),
        request("pv_gone", uuid=PVS[0], device=2064),
        pv_found(PVS[1], 2064),
    ]
)
@example([pv_found(PVS[0], 2048), pv_found(PVS[0], 2048)])
def test_same_as_the_general_path(steps: list[str]) -> None:
    assert_same_as_general(steps, general)

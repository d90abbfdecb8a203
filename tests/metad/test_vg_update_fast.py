"""vg_update's short path for the common write gives the general path's answer.

:meth:`CacheState.vg_update` stores a newer seqno of a stored VG -- the same
name, the same PVs, each mapped to it, no external version -- as one table
write, without opening an operation; every other vg_update goes through the
all-or-nothing ``_store_vg_update``.  Driven side by side with a cache that
always takes the general path, the replies and the cache must be the same
after every request.  Explicit examples pin each condition of the short
path whose loss random steps seldom or never meet: a rename listing the
same PVs, metadata of another uuid passed by a caller, and the two halves of
merge's "needs repair" (a name and pair that disagree, made by hand).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pylvmetad.metad.cache import CacheState
from pylvmetad.wire.codec import Section, parse
from support.lvm_requests import (
    PVRef,
    Session,
    new_session,
    pv_found,
    pvid,
    request,
    vg_metadata,
    vg_update,
    vgid,
)
from support.short_path import assert_same_as_general, general_path_calls, tables

PVS = [pvid(i) for i in range(3)]
DEVICES = [2048, 2064, 2080]
VG = vgid(0)


def general(session: Session) -> Session:
    """``session`` with vg_update always on the general path (its short path never taken)."""
    state = session.state

    def always(vgname: str, vg_id: str, metadata: Section, seqno: int | None = None) -> bool:
        return state._store_vg_update(vgname, vg_id, metadata, seqno, None)

    setattr(state, "vg_update", always)  # noqa: B010 (an instance attribute over the method)
    return session


def stored_vg(*pvs: str) -> Session:
    s = new_session()
    s.populate(*(pv_found(pv, dev) for pv, dev in zip(pvs, DEVICES, strict=False)))
    assert s.send(vg_update("vg0", vg_metadata(VG, 1, list(pvs)))).response == "OK"
    return s


def test_newer_seqno_opens_no_operation() -> None:
    s = stored_vg(PVS[0], PVS[1])
    taken = general_path_calls(s, "_store_vg_update")
    generation = s.state.generation
    assert s.send(vg_update("vg0", vg_metadata(VG, 2, [PVS[0], PVS[1]], ["lv0"]))).response == "OK"
    assert taken == [] and not s.state.journal.open
    assert s.state.generation == generation + 1
    assert s.state.vgid_to_metadata[VG].get_int("seqno", -1) == 2
    assert s.state.check_invariants() == []
    pv = s.state.vgid_to_metadata[VG].find("physical_volumes/pv0")
    assert isinstance(pv, Section) and pv.find("device") is None  # the hints stripped once, as before


def test_general_path_for_everything_else() -> None:
    """Same or older seqno, another PV set, a rename, an external version: the general path."""
    s = stored_vg(PVS[0], PVS[1])
    taken = general_path_calls(s, "_store_vg_update")
    s.send(vg_update("vg0", vg_metadata(VG, 1, [PVS[0], PVS[1]])))  # same seqno
    s.send(vg_update("vg0", vg_metadata(VG, 2, [PVS[0]])))  # a PV fewer
    s.send(vg_update("vg9", vg_metadata(VG, 3, [PVS[0]])))  # renamed
    s.send(request("set_vg_info", uuid=VG, version=5))
    s.send(vg_update("vg9", vg_metadata(VG, 4, [PVS[0]])))  # an external version to clear
    s.send(vg_update("vg1", vg_metadata(vgid(1), 1, [PVS[2]])))  # a new VG
    assert taken == [VG, VG, VG, VG, vgid(1)]


def test_two_adjacent_hints_stripped_once() -> None:
    """The general path after the short one's checks reuses its strip (a second could drop more)."""
    twice = PVRef(PVS[1], items=[("id", PVS[1]), ("device", "/dev/a"), ("device", "/dev/b"), ("status", ["A"])])
    fast, slow = stored_vg(PVS[0], PVS[1]), general(stored_vg(PVS[0], PVS[1]))
    body = vg_update("vg0", vg_metadata(VG, 2, [PVS[0], twice, PVS[2]]))
    assert fast.send(body).body == slow.send(body).body
    assert tables(fast.state) == tables(slow.state)


def test_renamed_vg_listing_the_same_pvs() -> None:
    """A newer seqno under another name, the same PVs mapped to the VG: the general path renames it."""
    steps = [
        pv_found(PVS[0], DEVICES[0]),
        vg_update("vg0", vg_metadata(VG, 1, [PVS[0]])),
        vg_update("vg9", vg_metadata(VG, 2, [PVS[0]])),
        request("vg_lookup", name="vg9"),
        request("vg_lookup", name="vg0"),
    ]
    assert_same_as_general(steps, general)
    s = stored_vg(PVS[0])
    taken = general_path_calls(s, "_store_vg_update")
    assert s.send(steps[2]).response == "OK"
    assert taken == [VG] and s.state.vgid_to_vgname[VG] == "vg9" and "vg0" not in s.state.vgname_to_vgid


def _pair_lost(state: CacheState) -> None:
    state.vgname_to_vgid.clear()


def _name_lost(state: CacheState) -> None:
    del state.vgid_to_vgname[VG]


def _name_changed(state: CacheState) -> None:
    state.vgid_to_vgname[VG] = "vg9"


@pytest.mark.parametrize("damage", [_pair_lost, _name_lost, _name_changed])
def test_needs_repair_refused(damage: Callable[[CacheState], None]) -> None:
    """A VG whose name and pair (name -> vgid) disagree: refused, changing nothing, as the general path does.

    No request leaves the cache so (the two tables are written together),
    so the damage is done by hand, to each half: the pair gone (the case of
    test_merge), the name gone, the name another.  Either half alone would
    let the short path store the update.
    """
    fast, slow = stored_vg(PVS[0]), general(stored_vg(PVS[0]))
    damage(fast.state)
    damage(slow.state)
    before = tables(fast.state)
    body = vg_update("vg0", vg_metadata(VG, 2, [PVS[0]]))
    refused = {"response": "failed", "reason": "vg_update: failed metadata update"}
    assert fast.fields(body) == slow.fields(body) == refused
    assert tables(fast.state) == tables(slow.state) == before


def metadata_of(text: str) -> Section:
    metadata = parse(text).find("metadata")
    assert isinstance(metadata, Section)
    return metadata


def test_metadata_of_another_vg() -> None:
    """Metadata whose id is not the vgid passed: refused, as the general path refuses it.

    The handler reads the vgid from ``metadata/id``, so no request reaches
    this; :meth:`CacheState.vg_update` takes the two apart, and a cache
    storing another VG's metadata under a uuid would break its invariants.
    """
    fast, slow = stored_vg(PVS[0]), stored_vg(PVS[0])
    other = metadata_of(vg_metadata(vgid(1), 2, [PVS[0]]))
    taken = general_path_calls(fast, "_store_vg_update")
    assert fast.state.vg_update("vg0", VG, other) is False
    assert slow.state._store_vg_update("vg0", VG, other, None, None) is False
    assert taken == [VG] and tables(fast.state) == tables(slow.state)
    assert fast.state.check_invariants() == []


STEP = st.one_of(
    st.builds(
        lambda name, seqno, listed, hint: vg_update(
            name, vg_metadata(VG, seqno, [PVRef(pv, device_hint=hint) for pv in listed])
        ),
        st.sampled_from(["vg0", "vg1"]),
        st.integers(0, 5),
        st.lists(st.sampled_from(PVS), max_size=3, unique=True),
        st.sampled_from([None, "/dev/loop0"]),
    ),
    st.builds(
        lambda seqno, listed: vg_update("vg0", vg_metadata(vgid(1), seqno, listed)),
        st.integers(1, 3),
        st.lists(st.sampled_from(PVS), max_size=2, unique=True),
    ),
    st.builds(lambda pv, dev: pv_found(pv, dev), st.sampled_from(PVS), st.sampled_from(DEVICES)),
    st.builds(
        lambda pv, dev, seqno, listed: pv_found(pv, dev, vgname="vg0", metadata=vg_metadata(VG, seqno, [pv, *listed])),
        st.sampled_from(PVS),
        st.sampled_from(DEVICES),
        st.integers(1, 5),
        st.lists(st.sampled_from(PVS), max_size=2, unique=True),
    ),
    st.builds(lambda pv: request("pv_gone", uuid=pv), st.sampled_from(PVS)),
    st.builds(lambda v: request("set_vg_info", uuid=VG, version=v), st.integers(1, 5)),
    st.just(request("vg_remove", uuid=VG)),
    st.just(request("vg_update", vgname="#orphan") + vg_metadata("#orphan", 1, [PVS[2]])),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(STEP, max_size=14))
@example(
    [
        pv_found(PVS[0], 2048),
        vg_update("vg0", vg_metadata(VG, 1, [PVS[0]])),
        vg_update("vg0", vg_metadata(VG, 2, [PVS[0]])),
    ]
)
@example(  # an external version the newer seqno clears
    [
        vg_update("vg0", vg_metadata(VG, 1, [PVS[0]])),
        request("set_vg_info", uuid=VG, version=2),
        vg_update("vg0", vg_metadata(VG, 2, [PVS[0]])),
    ]
)
@example(  # an #orphan VG stored: the general path checks it for removal
    [
        vg_update("vg0", vg_metadata(VG, 1, [PVS[0]])),
        request("vg_update", vgname="#orphan") + vg_metadata("#orphan", 1, [PVS[2]]),
        vg_update("vg0", vg_metadata(VG, 2, [PVS[0]])),
    ]
)
@example(  # a listed PV mapped to another VG (found with that VG's metadata)
    [
        pv_found(PVS[0], 2048),
        pv_found(PVS[1], 2064),
        vg_update("vg0", vg_metadata(VG, 1, [PVS[0], PVS[1]])),
        vg_update("vg1", vg_metadata(vgid(1), 1, [PVS[1]])),
        vg_update("vg0", vg_metadata(VG, 2, [PVS[0], PVS[1]])),
    ]
)
def test_same_as_the_general_path(steps: list[str]) -> None:
    assert_same_as_general(steps, general)


def test_the_short_paths_write_joins_an_open_operation() -> None:
    """Called inside an open operation, the short path's one write is journaled: a rollback undoes it."""
    s = stored_vg(PVS[0], PVS[1])
    state = s.state
    before = state.vgid_to_metadata[VG]
    taken = general_path_calls(s, "_store_vg_update")
    state.journal.begin()
    assert state.vg_update("vg0", VG, metadata_of(vg_metadata(VG, 2, [PVS[0], PVS[1]])), 2)
    assert taken == [] and state.vgid_to_metadata[VG] is not before
    state.journal.rollback()
    assert state.vgid_to_metadata[VG] is before
    assert state.check_invariants() == []
    # outside one, nothing is kept to undo
    assert state.vg_update("vg0", VG, metadata_of(vg_metadata(VG, 2, [PVS[0], PVS[1]])), 2)
    assert state.vgid_to_metadata._saved is None and not state.journal.joined

"""The VG metadata merge (docs/protocol.md §6), one rule per test.

Metadata reaches the cache two ways: from a PV (``pv_found`` with
``metadata``, the reporting PV is known) and from a command (``vg_update``).
Each test below sets up the cached VG, sends one piece of metadata and
checks the tables and what lookups now answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pylvmetad.metad.cache import ORPHAN, CacheState, VGInfo
from pylvmetad.wire.codec import Section, Value
from support.lvm_requests import (
    PV_DEV_SIZE,
    PVRef,
    Session,
    atoms,
    checked_session,
    new_session,
    pv_found,
    pv_section,
    pvid,
    request,
    vg_metadata,
    vg_update,
    vgid,
)

VG, VG2 = vgid(1), vgid(2)
PV1, PV2, PV3 = pvid(1), pvid(2), pvid(3)
D1, D2, D3 = 2048, 2064, 2080
TAG: tuple[tuple[str, Value], ...] = (("tags", ["changed"]),)


@pytest.fixture
def s() -> Iterator[Session]:
    yield from checked_session()


def scanned(session: Session, seqno: int = 1, pvs: tuple[str, ...] = (PV1, PV2)) -> None:
    """vg0 = ``pvs`` at ``seqno``, every PV found by a population scan with the metadata on it."""
    md = vg_metadata(VG, seqno, pvs)
    devices = {PV1: D1, PV2: D2, PV3: D3}
    session.populate(*(pv_found(pv, devices[pv], vgname="vg0", metadata=md) for pv in pvs))


def stored_seqno(session: Session, vg: str = VG) -> int | None:
    return session.state.vgid_to_metadata[vg].get_int64("seqno")


def vg_invalid(session: Session, vg: str = VG) -> bool:
    return session.vg_lookup(vg).child("vg_invalid") is not None


# ---------------------------------------------------------------------------
# identity: new VG, shared names, renames
# ---------------------------------------------------------------------------
def test_new_vg_adds_every_map(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    assert s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1, PV2]))) == {"response": "OK"}

    st = s.state
    assert st.vgid_to_vgname == {VG: "vg0"}
    assert st.vgname_to_vgid == {"vg0": [VG]}
    assert st.pvid_to_vgid == {PV1: VG, PV2: VG}
    assert stored_seqno(s) == 1
    assert s.fields(pv_found(PV1, D1))["status"] == "complete"


def test_same_name_new_vgid_gives_two_vgs_with_one_name(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1])))
    s.fields(vg_update("vg0", vg_metadata(VG2, 4, [PV2])))

    assert s.state.vgname_to_vgid == {"vg0": [VG2, VG]}  # most recently added first
    assert s.state.vgid_to_vgname == {VG: "vg0", VG2: "vg0"}
    assert s.fields(request("vg_lookup", name="vg0"))["response"] == "multiple"
    assert stored_seqno(s, VG) == 1 and stored_seqno(s, VG2) == 4


def test_same_name_new_vgid_from_a_pv(s: Session) -> None:
    scanned(s)
    reply = s.fields(pv_found(PV3, D3, vgname="vg0", metadata=vg_metadata(VG2, 1, [PV3])))

    assert (reply["status"], reply["vgid"], reply["seqno_before"]) == ("complete", VG2, 1)
    assert s.state.vgname_to_vgid == {"vg0": [VG2, VG]}


def test_rename(s: Session) -> None:
    """Checklist D.16; the info and outdated records go with the old name."""
    scanned(s, seqno=2)
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))  # PV1 outdated
    s.fields(request("set_vg_info", uuid=VG, version=3))
    assert VG in s.state.vgid_to_info and VG in s.state.vgid_to_outdated_pvs

    assert s.fields(vg_update("vg9", vg_metadata(VG, 3, [PV1, PV2]))) == {"response": "OK"}

    assert s.fields(request("vg_lookup", name="vg0")) == {"response": "unknown", "reason": "VG not found"}
    assert s.fields(request("vg_lookup", uuid=VG, name="vg0")) == {
        "response": "unknown",
        "reason": "VG mapping incomplete",
    }
    renamed = s.vg_lookup(name="vg9")
    assert (renamed.get_str("name"), renamed.get_int64("metadata/seqno")) == ("vg9", 3)
    assert renamed.child("vg_invalid") is None
    st = s.state
    assert (st.vgid_to_vgname, st.vgname_to_vgid) == ({VG: "vg9"}, {"vg9": [VG]})
    assert (st.vgid_to_info, st.vgid_to_outdated_pvs) == ({}, {})
    assert st.pvid_to_vgid == {PV1: VG, PV2: VG}


def test_rename_is_applied_even_with_unchanged_seqno_and_content(s: Session) -> None:
    scanned(s)
    assert s.fields(vg_update("vg9", vg_metadata(VG, 1, [PV1, PV2]))) == {"response": "OK"}
    assert s.state.vgid_to_vgname == {VG: "vg9"}


def test_rename_reported_by_a_pv(s: Session) -> None:
    scanned(s)
    reply = s.fields(pv_found(PV1, D1, vgname="vg9", metadata=vg_metadata(VG, 2, [PV1, PV2])))

    assert (reply["vgname"], reply["seqno_before"], reply["seqno_after"]) == ("vg9", 1, 2)
    assert s.state.vgname_to_vgid == {"vg9": [VG]}


def test_needs_repair_from_a_command_fails_and_changes_nothing(s: Session) -> None:
    """Name recorded for the vgid but the pair (name -> vgid) missing: the original aborts."""
    scanned(s)
    s.state.vgname_to_vgid.clear()
    s.invariants_hold = False
    before = s.dump()

    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2]))) == {
        "response": "failed",
        "reason": "vg_update: failed metadata update",
    }
    assert s.dump() == before


def test_needs_repair_from_a_pv_is_only_ignored(s: Session) -> None:
    scanned(s)
    s.state.vgname_to_vgid.clear()
    s.invariants_hold = False

    reply = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2])))

    assert (reply["response"], reply["seqno_before"], reply["seqno_after"]) == ("OK", 1, 1)
    assert stored_seqno(s) == 1


# ---------------------------------------------------------------------------
# metadata from a PV
# ---------------------------------------------------------------------------
def test_pv_reporting_older_metadata_is_marked_outdated(s: Session) -> None:
    """Checklist D.10."""
    scanned(s, seqno=3)
    reply = s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2])))

    assert (reply["changed"], reply["seqno_before"], reply["seqno_after"]) == (1, 3, 3)
    assert stored_seqno(s) == 3
    assert s.state.vgid_to_outdated_pvs == {VG: [PV2]}


def test_older_metadata_on_a_pv_without_an_in_use_mda_is_not_marked(s: Session) -> None:
    scanned(s, seqno=3)
    reply = s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2]), mda_ignore=1))

    assert reply["changed"] == 1
    assert s.state.vgid_to_outdated_pvs == {}


def test_a_pv_is_marked_outdated_once(s: Session) -> None:
    scanned(s, seqno=3)
    old = vg_metadata(VG, 2, [PV1, PV2])
    for _ in range(2):
        s.fields(pv_found(PV2, D2, vgname="vg0", metadata=old))
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=old))

    assert s.state.vgid_to_outdated_pvs == {VG: [PV1, PV2]}  # most recently marked first
    assert f'pv_list=["{PV1}","{PV2}"]' in s.dump()
    outdated = s.vg_lookup(VG).section("metadata/outdated_pvs")
    assert outdated is not None
    assert [k for k, _ in outdated.sections()] == [PV2, PV1]  # vg_lookup lists the oldest mark first


def test_newer_metadata_from_a_pv_marks_every_old_pv_outdated(s: Session) -> None:
    """Checklist D.11: including the reporting PV itself."""
    scanned(s, seqno=1)
    reply = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2], ["lv1"])))

    assert (reply["changed"], reply["seqno_before"], reply["seqno_after"]) == (1, 1, 2)
    assert stored_seqno(s) == 2
    assert s.state.vg_is_complete(VG)
    assert s.state.vgid_to_outdated_pvs == {VG: [PV2, PV1]}
    assert s.state.pvid_to_vgid == {PV1: VG, PV2: VG}


def test_newer_metadata_from_a_pv_orphans_pvs_it_no_longer_lists(s: Session) -> None:
    scanned(s, seqno=1)
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1])))

    assert s.state.pvid_to_vgid == {PV1: VG, PV2: ORPHAN}
    assert s.fields(pv_found(PV2, D2))["status"] == "orphan"


def test_equal_seqno_with_different_content_from_a_pv_is_ignored(s: Session) -> None:
    """docs/protocol.md §6 (step 4): ignored, changed 0 when the PV record did not change."""
    scanned(s, seqno=2)
    before = s.dump()
    reply = s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2], extra=TAG)))

    assert (reply["changed"], reply["seqno_before"], reply["seqno_after"]) == (0, 2, 2)
    assert s.state.vgid_to_metadata[VG].child("tags") is None
    assert s.dump() == before


def test_equal_seqno_and_content_from_a_pv_changes_nothing(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=5))
    before = s.dump()

    reply = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2])))

    assert reply["changed"] == 0
    assert s.dump() == before


def test_pv_found_with_newer_metadata_does_not_clear_vg_invalid(s: Session) -> None:
    scanned(s, seqno=1)
    s.fields(request("set_vg_info", uuid=VG, version=2))
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2])))

    assert stored_seqno(s) == 2
    assert vg_invalid(s)
    assert s.state.vgid_to_info == {VG: VGInfo(2, 1)}


# ---------------------------------------------------------------------------
# metadata from a command
# ---------------------------------------------------------------------------
def test_newer_metadata_from_a_command_replaces_and_keeps_info_and_outdated(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))  # PV2 outdated
    s.fields(request("set_vg_info", uuid=VG, version=5))

    s.fields(vg_update("vg0", vg_metadata(VG, 3, [PV1])))  # vgreduce PV2

    assert stored_seqno(s) == 3
    assert s.state.pvid_to_vgid == {PV1: VG, PV2: ORPHAN}
    assert s.state.vgid_to_outdated_pvs == {VG: [PV2]}
    assert s.state.vgid_to_info == {VG: VGInfo(5, 1)}  # 3 < 5: still invalid


def test_equal_seqno_with_different_content_from_a_command_replaces(s: Session) -> None:
    """Purge and add as new: info and outdated records are gone, the name pair is re-added."""
    scanned(s, seqno=2)
    s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    s.fields(request("set_vg_info", uuid=VG, version=0))

    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2], extra=TAG))) == {"response": "OK"}

    st = s.state
    assert st.vgid_to_metadata[VG].child("tags") == "changed"
    assert (st.vgid_to_info, st.vgid_to_outdated_pvs) == ({}, {})
    assert st.vgname_to_vgid == {"vg0": [VG]}
    assert st.pvid_to_vgid == {PV1: VG, PV2: VG}
    assert not vg_invalid(s)


def test_lower_seqno_from_a_command_replaces(s: Session) -> None:
    scanned(s, seqno=5)
    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2], ["lv1"]))) == {"response": "OK"}

    assert stored_seqno(s) == 2
    assert s.state.vgid_to_metadata[VG].section("logical_volumes/lv1") is not None


def test_equal_seqno_and_content_from_a_command_keeps_everything(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))

    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2]))) == {"response": "OK"}

    assert s.state.vgid_to_outdated_pvs == {VG: [PV2]}


def test_command_listing_a_pv_never_reported_maps_it_to_the_vg(s: Session) -> None:
    scanned(s, seqno=1)
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2, PV3])))

    assert s.state.pvid_to_vgid[PV3] == VG
    assert s.fields(pv_found(PV3, D3, mda_ignore=None)) == {
        "response": "OK",
        "status": "complete",
        "changed": 1,
        "vgid": VG,
        "vgname": "vg0",
        "seqno_before": -1,
        "seqno_after": 2,
    }


def test_pv_moving_to_another_vg_drops_the_emptied_vg(s: Session) -> None:
    """vg0's only present PV is claimed by vg1: vg0 goes, its other (absent) PV is not orphaned."""
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))

    assert s.fields(vg_update("vg1", vg_metadata(VG2, 1, [PV1]))) == {"response": "OK"}

    st = s.state
    assert st.vgid_to_vgname == {VG2: "vg1"}
    assert st.pvid_to_vgid == {PV1: VG2, PV2: VG}
    assert s.fields(request("vg_lookup", name="vg0")) == {"response": "unknown", "reason": "VG not found"}


def test_pv_moving_away_keeps_a_vg_with_another_present_pv(s: Session) -> None:
    scanned(s)
    s.fields(vg_update("vg1", vg_metadata(VG2, 1, [PV2])))

    assert set(s.state.vgid_to_vgname) == {VG, VG2}
    assert s.state.pvid_to_vgid == {PV1: VG, PV2: VG2}


def test_vg_remove_orphans_pvs_even_when_claimed_by_another_vg(s: Session) -> None:
    """docs/protocol.md §5, vg_remove."""
    scanned(s)
    s.fields(vg_update("vg1", vg_metadata(VG2, 1, [PV2])))
    s.fields(request("vg_remove", uuid=VG))

    assert s.state.pvid_to_vgid == {PV1: ORPHAN, PV2: ORPHAN}
    assert set(s.state.vgid_to_metadata) == {VG2}


def test_vg_update_of_a_vg_without_present_pvs_stays_cached(s: Session) -> None:
    """docs/protocol.md §5, vg_lookup: every PV shows MISSING."""
    s.populate()
    assert s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1, PV2]))) == {"response": "OK"}

    reply = s.vg_lookup(VG)
    assert reply.get_str("response") == "OK"
    for i in (0, 1):
        assert pv_section(reply, i).child("status") == ["MISSING", "ALLOCATABLE"]
    assert s.fields(request("vg_list"))["volume_groups"] == {VG: {"name": "vg0"}}


# ---------------------------------------------------------------------------
# device hints
# ---------------------------------------------------------------------------
def test_device_hints_are_stripped_from_stored_metadata(s: Session) -> None:
    scanned(s)
    for pv in ("pv0", "pv1"):
        stored = s.state.vgid_to_metadata[VG].section(f"physical_volumes/{pv}")
        assert stored is not None and stored.child("device") is None
    assert 'device="/dev/loop0"' not in s.dump()
    reply = s.vg_lookup(VG)
    assert [atoms(v) for k, v in pv_section(reply, 0).items if k == "device"] == [[D1]]  # only the pvmeta's


@pytest.mark.parametrize(
    ("items", "kept"),
    [
        ([("id", PV1), ("device", "/dev/a"), ("status", "ALLOCATABLE")], ["id", "status"]),
        ([("id", PV1), ("device", "/dev/a"), ("device", "/dev/b"), ("status", "X")], ["id", "device", "status"]),
        ([("id", PV1), ("device", "/dev/a"), ("status", "X"), ("device", "/dev/b")], ["id", "status"]),
        ([("device", "/dev/a"), ("id", PV1), ("status", "X")], ["device", "id", "status"]),
        (
            [("id", PV1), ("device", "/dev/a"), ("device", "/dev/b"), ("device", "/dev/c"), ("status", "X")],
            ["id", "device", "status"],
        ),
    ],
    ids=["usual", "second of two kept", "separated both go", "first child kept", "three in a row"],
)
def test_device_hint_cursor_quirk(s: Session, items: list[tuple[str, str]], kept: list[str]) -> None:
    """docs/protocol.md §6 (step 2): a ``device`` right after a removed one (or first) survives."""
    s.populate(pv_found(PV1, D1))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PVRef(PV1, items=items)])))

    stored = s.state.vgid_to_metadata[VG].section("physical_volumes/pv0")
    assert stored is not None
    assert stored.keys() == kept
    if "device" in kept:
        assert stored.child("device") == "/dev/b" if kept[0] == "id" else "/dev/a"


def test_hints_are_stripped_before_comparing_equal_seqnos(s: Session) -> None:
    """A rescan whose only difference is the device path hint is not "different content"."""
    scanned(s, seqno=2)
    moved = [PVRef(PV1, device_hint="/dev/sdq"), PVRef(PV2, device_hint="/dev/sdr")]
    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, moved))) == {"response": "OK"}
    s.fields(request("set_vg_info", uuid=VG, version=0))
    reply = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 2, moved)))

    assert reply["changed"] == 0
    assert VG in s.state.vgid_to_info  # no purge happened


# ---------------------------------------------------------------------------
# vg_update and the VG-invalid flag
# ---------------------------------------------------------------------------
def test_vg_update_clears_vg_invalid_only_from_the_external_version_on(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=5))

    s.fields(vg_update("vg0", vg_metadata(VG, 4, [PV1, PV2])))
    assert vg_invalid(s)
    assert s.state.vgid_to_info == {VG: VGInfo(5, 1)}

    s.fields(vg_update("vg0", vg_metadata(VG, 5, [PV1, PV2])))
    assert not vg_invalid(s)
    assert s.state.vgid_to_info == {VG: VGInfo(5, 0)}


def test_vg_update_above_the_external_version_clears_too(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=3))
    s.fields(vg_update("vg0", vg_metadata(VG, 7, [PV1, PV2])))
    assert not vg_invalid(s)


def test_any_vg_update_clears_a_version_0_invalidation(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=0))
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2])))  # same seqno, same content
    assert not vg_invalid(s)
    assert s.state.vgid_to_info == {VG: VGInfo(0, 0)}


def test_refused_vg_update_does_not_clear_vg_invalid(s: Session) -> None:
    scanned(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=0))
    assert s.fields(vg_update("vg0", vg_metadata(VG, 0, [PV1, PV2])))["response"] == "failed"
    assert vg_invalid(s)


# ---------------------------------------------------------------------------
# the one-pass replacement of a VG listing the same PVs (CacheState._replace_metadata)
# ---------------------------------------------------------------------------
def _general_replacement(state: CacheState, vgid: str, metadata: Section, pvids: list[str]) -> None:
    """The general path of merge_vg_metadata, which the one-pass replacement must equal."""
    old = state.vgid_to_metadata[vgid]
    state.assign_pvs(old, ORPHAN, remove_empty=False)
    state._set_metadata(vgid, metadata)
    state.assign_pvs(metadata, vgid, remove_empty=True)


def _tables(state: CacheState) -> list[object]:
    """Every table in order (the spec's key order matters, the indexes' does not)."""
    spec = [list(t.items()) for t in state.tables()[:8]]
    indexes = [dict(t) for t in state.tables()[8:]]
    return [*spec, *indexes, state.generation, state.flags]


def _pv_elsewhere(s: Session) -> None:
    """PV2, listed by vg0, is claimed by vg1's metadata on it; then vg0 is updated with the same PVs."""
    scanned(s)
    s.fields(pv_found(PV2, D2, vgname="vg1", metadata=vg_metadata(VG2, 1, [PV2])))


def _pv_unmapped(s: Session) -> None:
    """vg0 lists PV3, which is not present (never mapped by a scan)."""
    scanned(s)
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2, PV3])))


def _pv_listed_twice(s: Session) -> None:
    scanned(s)
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2, PV1])))


def _pv_gone(s: Session) -> None:
    """PV2 disappeared (pv_gone): still listed, not present."""
    scanned(s)
    s.fields(request("pv_gone", uuid=PV2))


def _pvs_without_mapping(s: Session) -> None:
    """vg0 lists PV1 and PV2 with no pvid_to_vgid entry: other PVs took their devices; PV3 keeps vg0."""
    scanned(s, pvs=(PV1, PV2, PV3))
    s.fields(pv_found(pvid(4), D1))
    s.fields(pv_found(pvid(5), D2))
    assert PV1 not in s.state.pvid_to_vgid and PV2 not in s.state.pvid_to_vgid


@pytest.mark.parametrize("reorder", [False, True], ids=["same order", "reversed"])
@pytest.mark.parametrize("setup", [_pv_elsewhere, _pv_unmapped, _pv_listed_twice, _pv_gone, _pvs_without_mapping])
def test_replacing_a_vg_with_the_same_pvs_ends_as_the_general_path(
    setup: Callable[[Session], None], reorder: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the new metadata lists them in another order: PVs without a mapping are inserted in the old one."""
    states = []
    for general in (False, True):
        with monkeypatch.context() as m:
            if general:
                m.setattr(CacheState, "_replace_metadata", _general_replacement)
            s = new_session()
            setup(s)
            pv_sections = s.state.vgid_to_metadata[VG].section("physical_volumes") or Section()
            listed = [str(pv.get_str("id")) for _, pv in pv_sections.sections()]
            if reorder:
                listed.reverse()
            seqno = stored_seqno(s) or 0
            assert s.fields(vg_update("vg0", vg_metadata(VG, seqno + 1, listed))) == {"response": "OK"}
            assert s.state.check_invariants() == []
            states.append((_tables(s.state), s.dump(), s.send('request="pv_list"\n').body))
    assert states[0] == states[1]


# ---------------------------------------------------------------------------
# a rescan that finds every PV as it is stored changes nothing (cache.same_trees)
# ---------------------------------------------------------------------------
def test_a_known_pv_found_again_as_stored_changes_nothing(s: Session) -> None:
    scanned(s)
    state = s.handler.state
    stored = state.pvid_to_pvmeta[PV1]
    before = _tables(state)
    again = s.fields(pv_found(PV1, D1))
    assert again["changed"] == 0 and again["status"] == "complete"
    assert _tables(state) == before  # the generation too: kept reply texts stay valid
    assert state.pvid_to_pvmeta[PV1] is stored
    md = vg_metadata(VG, 1, (PV1, PV2))
    with_md = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=md))
    assert with_md["changed"] == 0 and with_md["seqno_before"] == with_md["seqno_after"] == 1
    assert _tables(state) == before


def test_a_known_pv_found_with_another_record_is_stored_even_when_it_compares_equal(s: Session) -> None:
    scanned(s)
    state = s.handler.state
    generation = state.generation
    # LVM's comparison does not compare keys: a renamed field is "not changed", yet stored
    text = pv_found(PV1, D1).replace("dev_size", "dev_size2")
    assert "dev_size2" in text
    assert s.fields(text)["changed"] == 0
    assert state.pvid_to_pvmeta[PV1].child("dev_size2") is not None
    assert state.generation > generation
    generation = state.generation
    assert s.fields(pv_found(PV1, D1, dev_size=PV_DEV_SIZE + 512))["changed"] == 1
    assert state.pvid_to_pvmeta[PV1].get_int64("dev_size") == PV_DEV_SIZE + 512
    assert state.generation > generation

"""Every request and every failure reply of the spec, driven through the handler core.

docs/protocol.md §5 case by case: each test sends
request texts shaped like LVM's, parses the reply and looks at the cache
tables.  The fixture checks the cache invariants after every test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pylvmetad.metad.cache import ORPHAN, GlobalFlag, VGInfo
from pylvmetad.wire.codec import Section, Value, parse
from support.lvm_requests import (
    EMPTY_DUMP,
    FILTER,
    IP,
    MISMATCH_REASON,
    PVRef,
    Session,
    atoms,
    checked_session,
    pv_found,
    pv_section,
    pvid,
    pvmeta,
    request,
    vg_metadata,
    vg_update,
    vgid,
)

VG = vgid(1)
PV1, PV2, PV3 = pvid(1), pvid(2), pvid(3)
D1, D2, D3 = 2048, 2064, 2080


@pytest.fixture
def s() -> Iterator[Session]:
    yield from checked_session()


def populated(session: Session, seqno: int = 1, *, lvs: tuple[str, ...] = ()) -> None:
    """vg0 = {PV1 on D1, PV2 on D2}, both present, found by a population scan."""
    md = vg_metadata(VG, seqno, [PV1, PV2], lvs)
    session.populate(
        pv_found(PV1, D1, vgname="vg0", metadata=md),
        pv_found(PV2, D2, vgname="vg0", metadata=md),
    )


def created(session: Session) -> None:
    """Populated cache with two orphan PVs, then vg0 = {PV1, PV2} created by vgcreate."""
    session.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    assert session.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1, PV2]))) == {"response": "OK"}


def failed(reason: str) -> dict[str, object]:
    return {"response": "failed", "reason": reason}


def unknown(reason: str) -> dict[str, object]:
    return {"response": "unknown", "reason": reason}


def found_reply(status: str, changed: int, vg: str, name: str, before: int, after: int) -> dict[str, object]:
    return {
        "response": "OK",
        "status": status,
        "changed": changed,
        "vgid": vg,
        "vgname": name,
        "seqno_before": before,
        "seqno_after": after,
    }


ORPHAN_FOUND = found_reply("orphan", 1, ORPHAN, ORPHAN, -1, -1)


# ---------------------------------------------------------------------------
# hello, unknown requests, unparsable text
# ---------------------------------------------------------------------------
def test_hello_needs_no_token(s: Session) -> None:
    expected = {"response": "OK", "protocol": "lvmetad", "version": 1}
    assert parse(s.handler.handle_text('request="hello"\n').body).to_python() == expected
    s.token_update(IP, pid=1)
    assert s.fields(request("hello"), token="garbage", pid=2) == expected


@pytest.mark.parametrize("name", ["no_such_request", "pv_gone_by_pvid", "pv_add", "vg_by_uuid", "vgid_missing"])
def test_unknown_request_is_not_implemented(s: Session, name: str) -> None:
    s.populate()
    assert s.fields(request(name)) == failed("request not implemented")


def test_request_without_name_but_valid_token_is_not_implemented(s: Session) -> None:
    reply = s.handler.handle_text('token="skip"\n')
    assert parse(reply.body).to_python() == failed("request not implemented")


@pytest.mark.parametrize(
    "text",
    ['request="vg_list"\ntoken="skip"\nbroken {\n', "", "   \n# only a comment\n", 'request = "pv_list" token'],
)
def test_unparsable_text_reads_as_request_none_token_none(s: Session, text: str) -> None:
    s.populate()
    reply = s.handler.handle_text(text)

    assert parse(reply.body).to_python() == {
        "response": "token_mismatch",
        "expected": FILTER,
        "received": "NONE",
        "update_pid": 0,
        "reason": MISMATCH_REASON,
    }


# ---------------------------------------------------------------------------
# pv_found: validation
# ---------------------------------------------------------------------------
PV_ONLY = pvmeta(PV1, D1)
MD = vg_metadata(VG, 1, [PV1])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('request="pv_found"\n', "Ignore PV without PV metadata"),
        ('request="pv_found"\npvmeta=5\n', "Ignore PV without PV UUID"),
        ('request="pv_found"\npvmeta {\n\tdevice=2048\n}\n', "Ignore PV without PV UUID"),
        ('request="pv_found"\npvmeta {\n\tdevice=2048\n\tid=""\n}\n', "Ignore PV without PV UUID"),
        (f'request="pv_found"\npvmeta {{\n\tid="{PV1}"\n}}\n', "Ignore PV without device"),
        (f'request="pv_found"\npvmeta {{\n\tid="{PV1}"\n\tdevice="/dev/sda"\n}}\n', "Ignore PV without device"),
        ('request="pv_found"\n' + PV_ONLY + MD, "Ignore VG metadata from PV without VG name"),
        (
            'request="pv_found"\n' + PV_ONLY + 'vgname="vg0"\nmetadata {\n\tseqno=1\n}\n',
            "Ignore VG metadata from PV without VG vgid",
        ),
        (
            'request="pv_found"\n' + PV_ONLY + f'vgname="vg0"\nmetadata {{\n\tid="{VG}"\n}}\n',
            "Ignore VG metadata from PV without VG seqno",
        ),
        (
            'request="pv_found"\n' + PV_ONLY + 'vgname="vg0"\n' + vg_metadata(VG, -1, [PV1]),
            "Ignore VG metadata from PV without VG seqno",
        ),
        # validation order: the PV checks come first
        ('request="pv_found"\npvmeta {\n\tdevice=2048\n}\n' + MD, "Ignore PV without PV UUID"),
    ],
    ids=[
        "no pvmeta",
        "pvmeta not a section",
        "no id",
        "empty id",
        "no device",
        "device not an integer",
        "metadata without vgname",
        "metadata without id",
        "metadata without seqno",
        "negative seqno",
        "PV checks first",
    ],
)
def test_pv_found_validation_failures_change_nothing(s: Session, body: str, reason: str) -> None:
    s.populate()
    before = s.dump()

    assert s.fields(body) == failed(reason)
    assert s.dump() == before


# ---------------------------------------------------------------------------
# pv_found: the PV/device cases A1-A5
# ---------------------------------------------------------------------------
def test_a2_new_pv_on_new_device(s: Session) -> None:
    s.populate()
    assert s.fields(pv_found(PV1, D1)) == ORPHAN_FOUND
    assert s.state.device_to_pvid == {D1: PV1}
    assert s.state.pvid_to_pvmeta[PV1].get_int64("device") == D1


def test_a1_same_pv_same_device_unchanged(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(pv_found(PV1, D1)) == found_reply("orphan", 0, ORPHAN, ORPHAN, -1, -1)


def test_a1_same_pv_same_device_changed_record_is_replaced(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(pv_found(PV1, D1, ext_flags=0))["changed"] == 1
    assert s.state.pvid_to_pvmeta[PV1].get_int64("ext_flags") == 0


def test_a3_new_pv_on_a_device_that_held_another(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(pv_found(PV2, D1)) == ORPHAN_FOUND
    assert s.state.device_to_pvid == {D1: PV2}
    assert set(s.state.pvid_to_pvmeta) == {PV2}


def test_a3_drops_the_vg_whose_last_present_pv_was_on_the_device(s: Session) -> None:
    md = vg_metadata(VG, 1, [PV1])
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=md))

    assert s.fields(pv_found(PV2, D1)) == ORPHAN_FOUND
    assert s.state.vgid_to_metadata == {}
    assert s.state.vgname_to_vgid == {}
    assert PV1 not in s.state.pvid_to_vgid  # the previous occupant's mapping goes too


def test_a3_keeps_the_vg_when_the_new_pv_belongs_to_it(s: Session) -> None:
    """A device that changed owner within the same VG (e.g. two devices swapped PVIDs)."""
    md = vg_metadata(VG, 1, [PV1, PV2])
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=md))

    reply = s.fields(pv_found(PV2, D1, vgname="vg0", metadata=md))

    assert reply == found_reply("partial", 1, VG, "vg0", 1, 1)
    assert VG in s.state.vgid_to_metadata


def test_a3_with_the_new_pv_known_elsewhere_is_a_duplicate(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))

    assert s.fields(pv_found(PV1, D2)) == failed("Ignore duplicate PV")
    # the previous occupant of D2 is dropped before the refusal, PV1 stays on D1
    assert set(s.state.pvid_to_pvmeta) == {PV1}
    assert s.state.device_to_pvid == {D1: PV1}
    assert s.state.flags & (GlobalFlag.DISABLE | GlobalFlag.DUPLICATES) == GlobalFlag.DISABLE | GlobalFlag.DUPLICATES


def test_a4_known_pv_on_another_device_is_a_duplicate(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    before = s.dump()

    assert s.fields(pv_found(PV1, D3)) == failed("Ignore duplicate PV")
    assert s.dump() == before
    info = s.fields(request("get_global_info"), token="skip")
    assert (info["global_disable"], info["disable_reason"]) == (1, "DUPLICATES,")


def test_a5_after_pv_gone_by_uuid_left_a_stale_device_entry(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_gone", uuid=PV1)) == {"response": "OK"}
    assert s.state.device_to_pvid == {D1: PV1}  # the residue (docs/protocol.md §3, invariants)
    before = s.dump()

    assert s.fields(pv_found(PV1, D1)) == failed("Ignore PV for unknown state")
    assert s.dump() == before


def test_a5_when_the_pv_record_names_a_device_with_no_entry(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    # pv_gone of PV2 with PV1's device removes PV1's device entry (an invariant slip of the original)
    s.invariants_hold = False
    assert s.fields(request("pv_gone", uuid=PV2, device=D1)) == {"response": "OK"}
    assert s.state.device_to_pvid == {D2: PV2}

    assert s.fields(pv_found(PV1, D1)) == failed("Ignore PV for unknown state")


def test_a3_over_a_stale_entry_moves_a_known_pv_without_duplicate(s: Session) -> None:
    """docs/protocol.md §5, pv_found: the previous occupant has no record, so no duplicate check is made;
    the PV's record is replaced and its old device entry is left behind."""
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    s.fields(request("pv_gone", uuid=PV2))  # D2 -> PV2 stays, PV2 has no record

    assert s.fields(pv_found(PV1, D2)) == ORPHAN_FOUND
    assert s.state.device_to_pvid == {D1: PV1, D2: PV1}
    assert s.state.pvid_to_pvmeta[PV1].get_int64("device") == D2
    assert s.state.flags == GlobalFlag(0)


def test_a3_after_pv_gone_by_uuid_deletes_the_first_pv_record(s: Session) -> None:
    """docs/protocol.md §5, pv_gone: a different PV on the stale device replaces the old record."""
    s.populate(pv_found(PV1, D1))
    s.fields(request("pv_gone", uuid=PV1))

    assert s.fields(pv_found(PV2, D1)) == ORPHAN_FOUND
    assert s.state.device_to_pvid == {D1: PV2}


# ---------------------------------------------------------------------------
# pv_found: status, changed, seqno_before/after
# ---------------------------------------------------------------------------
def test_first_pv_of_a_vg_is_partial_second_complete(s: Session) -> None:
    """Checklist D.8."""
    md = vg_metadata(VG, 3, [PV1, PV2])
    s.populate()

    assert s.fields(pv_found(PV1, D1, vgname="vg0", metadata=md)) == found_reply("partial", 1, VG, "vg0", 3, 3)
    assert s.fields(pv_found(PV2, D2, vgname="vg0", metadata=md)) == found_reply("complete", 1, VG, "vg0", 3, 3)


def test_rescan_of_an_unchanged_pv_reports_changed_0(s: Session) -> None:
    populated(s)
    md = vg_metadata(VG, 1, [PV1, PV2])
    assert s.fields(pv_found(PV1, D1, vgname="vg0", metadata=md)) == found_reply("complete", 0, VG, "vg0", 1, 1)


def test_pv_without_metadata_finds_its_vg_through_pvid_to_vgid(s: Session) -> None:
    """A PV without metadata areas is attributed to the VG another PV's metadata lists it in."""
    md = vg_metadata(VG, 2, [PV1, PV2])
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=md))

    reply = s.fields(pv_found(PV2, D2, mda_ignore=None))

    assert reply == found_reply("complete", 1, VG, "vg0", -1, 2)


def test_newer_metadata_from_a_pv_reports_both_seqnos(s: Session) -> None:
    populated(s)
    md = vg_metadata(VG, 2, [PV1, PV2])
    assert s.fields(pv_found(PV1, D1, vgname="vg0", metadata=md)) == found_reply("complete", 1, VG, "vg0", 1, 2)


def test_older_metadata_from_a_pv_reports_changed_1(s: Session) -> None:
    populated(s, seqno=5)
    md = vg_metadata(VG, 4, [PV1, PV2])
    assert s.fields(pv_found(PV1, D1, vgname="vg0", metadata=md)) == found_reply("complete", 1, VG, "vg0", 5, 5)


def test_seqno_0_for_an_uncached_vg_gives_status_null(s: Session) -> None:
    """docs/protocol.md §5, pv_found: PV stored, metadata ignored, status "(null)"."""
    s.populate()
    reply = s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 0, [PV1])))

    assert reply == found_reply("(null)", 1, VG, "vg0", 0, -1)
    assert PV1 in s.state.pvid_to_pvmeta
    assert s.state.vgid_to_metadata == {}


def test_status_null_when_the_pv_maps_to_a_vg_no_longer_cached(s: Session) -> None:
    """PV2 (no mda) listed by vg0; vg0 is dropped without orphaning when PV1 moves to vg1."""
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    s.fields(pv_found(PV1, D1, vgname="vg1", metadata=vg_metadata(vgid(2), 1, [PV1])))
    assert VG not in s.state.vgid_to_metadata
    assert s.state.pvid_to_vgid[PV2] == VG

    assert s.fields(pv_found(PV2, D2, mda_ignore=None)) == found_reply("(null)", 1, VG, ORPHAN, -1, -1)


def test_orphan_pv_of_a_vg_that_dropped_it(s: Session) -> None:
    created(s)
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1])))  # vgreduce PV2
    assert s.fields(pv_found(PV2, D2)) == found_reply("orphan", 0, ORPHAN, ORPHAN, -1, -1)


# ---------------------------------------------------------------------------
# pv_gone
# ---------------------------------------------------------------------------
def test_pv_gone_by_device(s: Session) -> None:
    populated(s)
    assert s.fields(request("pv_gone", device=D2)) == {"response": "OK"}

    assert set(s.state.pvid_to_pvmeta) == {PV1}
    assert s.state.device_to_pvid == {D1: PV1}
    assert s.state.pvid_to_vgid[PV2] == VG  # still listed in vg0, now MISSING
    assert atoms(pv_section(s.vg_lookup(VG), 1).child("status"))[0] == "MISSING"


def test_pv_gone_of_the_last_pv_drops_the_vg_and_orphans_its_pvs(s: Session) -> None:
    populated(s)
    s.fields(request("pv_gone", device=D1))
    s.fields(request("pv_gone", device=D2))

    assert s.state.vgid_to_metadata == {}
    assert s.state.vgid_to_vgname == {}
    assert s.state.pvid_to_vgid == {PV1: ORPHAN, PV2: ORPHAN}
    assert s.fields(request("vg_lookup", uuid=VG)) == unknown("VG not found")


def test_pv_gone_by_uuid_removes_the_request_device_entry_only(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_gone", uuid=PV1)) == {"response": "OK"}
    assert s.state.pvid_to_pvmeta == {}
    assert s.state.device_to_pvid == {D1: PV1}


def test_pv_gone_by_uuid_and_device(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_gone", uuid=PV1, device=D1)) == {"response": "OK"}
    assert s.state.device_to_pvid == {}


@pytest.mark.parametrize("device", [D3, 0, -5])
def test_pv_gone_unknown_device(s: Session, device: int) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_gone", device=device)) == unknown("device not in cache")


def test_pv_gone_without_parameters(s: Session) -> None:
    s.populate()
    assert s.fields(request("pv_gone")) == unknown("device not in cache")


def test_pv_gone_unknown_pvid(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    before = s.dump()
    assert s.fields(request("pv_gone", uuid=PV3, device=D1)) == unknown("PVID does not exist")
    assert s.dump() == before


# ---------------------------------------------------------------------------
# pv_clear_all
# ---------------------------------------------------------------------------
def test_pv_clear_all_empties_the_tables_and_keeps_token_and_flags(s: Session) -> None:
    populated(s, seqno=2)
    s.fields(request("set_vg_info", uuid=VG, version=7))
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))  # PV1 outdated
    s.fields(request("set_global_info", global_invalid=1, global_disable=1, disable_reason="REPAIR"))
    assert VG in s.state.vgid_to_outdated_pvs and VG in s.state.vgid_to_info

    assert s.fields(request("pv_clear_all")) == {"response": "OK"}

    st = s.state
    tables = (
        st.pvid_to_pvmeta,
        st.device_to_pvid,
        st.vgid_to_metadata,
        st.vgid_to_vgname,
        st.vgname_to_vgid,
        st.pvid_to_vgid,
        st.vgid_to_outdated_pvs,
        st.vgid_to_info,
    )
    assert all(len(t) == 0 for t in tables)
    assert st.tokens.token == FILTER
    assert st.flags == GlobalFlag.INVALID | GlobalFlag.DISABLE | GlobalFlag.REPAIR


# ---------------------------------------------------------------------------
# pv_lookup and pv_list
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fields", [{}, {"device": 0}])
def test_pv_lookup_needs_pvid_or_device(s: Session, fields: dict[str, int]) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_lookup", **fields)) == failed("need PVID or device")


def test_pv_lookup_unknown_device(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_lookup", device=D3)) == unknown("device not found")


def test_pv_lookup_unknown_pvid(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    assert s.fields(request("pv_lookup", uuid=PV3, device=D1)) == unknown("PV not found")


def test_pv_lookup_of_a_stale_device_entry(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    s.fields(request("pv_gone", uuid=PV1))
    assert s.fields(request("pv_lookup", device=D1)) == unknown("PV not found")


def expected_pv(
    pv: str, device: int, *tail: tuple[str, str], mda_ignore: int | None = 0
) -> list[tuple[str, Value | Section]]:
    """The pvmeta as sent, followed by the reply's own fields."""
    sent = parse(pvmeta(pv, device, mda_ignore=mda_ignore)).section("pvmeta")
    assert sent is not None
    return [*sent.items, *tail]


def test_pv_lookup_by_uuid_and_by_device_in_a_vg(s: Session) -> None:
    populated(s)
    for fields in ({"uuid": PV2}, {"device": D2}, {"uuid": PV2, "device": D1}):
        reply = s.ask(request("pv_lookup", **fields))
        assert reply.keys() == ["response", "physical_volume"], fields
        assert reply.section("physical_volume") == Section(expected_pv(PV2, D2, ("vgid", VG), ("vgname", "vg0")))


def test_pv_lookup_of_an_orphan_has_neither_vgid_nor_vgname(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    reply = s.ask(request("pv_lookup", uuid=PV1))
    assert reply.section("physical_volume") == Section(expected_pv(PV1, D1))


def test_pv_lookup_of_a_pv_whose_vg_was_dropped_has_vgid_without_vgname(s: Session) -> None:
    """docs/protocol.md §3, invariants: pvid_to_vgid may name a VG no longer cached."""
    s.populate(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    s.fields(pv_found(PV1, D1, vgname="vg1", metadata=vg_metadata(vgid(2), 1, [PV1])))
    s.fields(pv_found(PV2, D2, mda_ignore=None))

    reply = s.ask(request("pv_lookup", uuid=PV2))
    assert reply.section("physical_volume") == Section(expected_pv(PV2, D2, ("vgid", VG), mda_ignore=None))


def test_large_device_numbers_are_read_as_32_bits_by_lookup_and_gone(s: Session) -> None:
    """docs/protocol.md §3 (device numbers are the keys): a PV registered with a device >= 2^32 cannot be found by device."""
    big = 4294967296 + D1
    s.populate(pv_found(PV1, big))

    assert s.fields(request("pv_lookup", device=big)) == unknown("device not found")
    assert s.fields(request("pv_gone", device=big)) == unknown("device not in cache")
    assert s.ask(request("pv_lookup", uuid=PV1)).get_int64("physical_volume/device") == big


def test_pv_list(s: Session) -> None:
    populated(s)
    s.fields(pv_found(PV3, D3))

    reply = s.ask(request("pv_list"))

    assert reply.keys() == ["response", "physical_volumes"]
    pvs = reply.section("physical_volumes")
    assert pvs is not None
    assert dict(pvs.sections()) == {
        PV1: Section(expected_pv(PV1, D1, ("vgid", VG), ("vgname", "vg0"))),
        PV2: Section(expected_pv(PV2, D2, ("vgid", VG), ("vgname", "vg0"))),
        PV3: Section(expected_pv(PV3, D3)),
    }


def test_pv_list_empty(s: Session) -> None:
    s.populate()
    assert s.send(request("pv_list")).body == 'response="OK"\nphysical_volumes {\n}\n\n\n'


@pytest.mark.parametrize(
    "body", [request("pv_list"), request("pv_lookup", uuid=PV1), request("vg_list"), request("vg_lookup", uuid=VG)]
)
def test_global_invalid_marker_is_appended_to_lists_and_lookups(s: Session, body: str) -> None:
    """Checklist D.13."""
    populated(s)
    assert s.ask(body).child("global_invalid") is None
    s.fields(request("set_global_info", global_invalid=1))

    reply = s.ask(body)

    assert reply.keys()[-1] == "global_invalid"
    assert reply.section("global_invalid") == Section()


@pytest.mark.parametrize(
    "body", [request("get_global_info"), pv_found(PV1, D1), request("vg_update"), request("set_vg_info")]
)
def test_global_invalid_marker_is_not_appended_elsewhere(s: Session, body: str) -> None:
    populated(s)
    s.fields(request("set_global_info", global_invalid=1))
    assert "global_invalid {" not in s.send(body).body


# ---------------------------------------------------------------------------
# vg_update
# ---------------------------------------------------------------------------
def test_vg_update_without_metadata_is_ok_and_does_nothing(s: Session) -> None:
    populated(s)
    before = s.dump()
    assert s.fields(request("vg_update", vgname="vg0")) == {"response": "OK"}
    assert s.dump() == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('request="vg_update"\nvgname="vg0"\nmetadata {\n\tseqno=2\n}\n', "vg_update: need VG UUID"),
        ('request="vg_update"\n' + vg_metadata(VG, 2, [PV1, PV2]), "vg_update: need VG name"),
        (
            f'request="vg_update"\nvgname="vg0"\nmetadata {{\n\tid="{VG}"\n}}\n',
            "vg_update: need VG seqno",
        ),
        (vg_update("vg0", vg_metadata(VG, -3, [PV1, PV2])), "vg_update: need VG seqno"),
        (vg_update("vg0", vg_metadata(VG, 0, [PV1, PV2])), "vg_update: failed metadata update"),
        (vg_update("vg0", vg_metadata(vgid(2), 0, [PV3])), "vg_update: failed metadata update"),
    ],
    ids=["no id", "no vgname", "no seqno", "negative seqno", "seqno 0", "seqno 0 for a new VG"],
)
def test_vg_update_failures_leave_the_state_unchanged(s: Session, body: str, reason: str) -> None:
    populated(s)
    s.fields(request("set_vg_info", uuid=VG, version=2))
    before = s.dump()

    assert s.fields(body) == failed(reason)
    assert s.dump() == before
    assert s.state.vgid_to_info[VG] == VGInfo(2, 1)


def test_vg_update_stores_new_metadata(s: Session) -> None:
    created(s)
    assert s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2], ["lv1"]))) == {"response": "OK"}
    stored = s.state.vgid_to_metadata[VG]
    assert stored.get_int64("seqno") == 2
    assert stored.section("logical_volumes/lv1") is not None


# ---------------------------------------------------------------------------
# vg_remove and vg_clear_outdated_pvs
# ---------------------------------------------------------------------------
def test_vg_remove_needs_uuid(s: Session) -> None:
    s.populate()
    assert s.fields(request("vg_remove")) == failed("need VG UUID")


def test_vg_remove_of_an_unknown_uuid_is_ok(s: Session) -> None:
    populated(s)
    before = s.dump()
    assert s.fields(request("vg_remove", uuid=vgid(9))) == {"response": "OK"}
    assert s.dump() == before


def test_vg_remove_forgets_the_vg_and_orphans_its_pvs(s: Session) -> None:
    populated(s)
    s.fields(request("set_vg_info", uuid=VG, version=0))
    assert s.fields(request("vg_remove", uuid=VG)) == {"response": "OK"}

    st = s.state
    assert (st.vgid_to_metadata, st.vgid_to_vgname, st.vgname_to_vgid, st.vgid_to_info) == ({}, {}, {}, {})
    assert st.pvid_to_vgid == {PV1: ORPHAN, PV2: ORPHAN}
    assert set(st.pvid_to_pvmeta) == {PV1, PV2}
    assert s.fields(pv_found(PV1, D1))["status"] == "orphan"


def test_vg_clear_outdated_pvs(s: Session) -> None:
    populated(s, seqno=2)
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    assert s.state.vgid_to_outdated_pvs == {VG: [PV1]}

    assert s.fields(request("vg_clear_outdated_pvs")) == failed("need VG UUID")
    assert s.fields(request("vg_clear_outdated_pvs", uuid=VG)) == failed("need VG UUID")  # the field is vgid
    assert s.fields(request("vg_clear_outdated_pvs", vgid=vgid(9))) == {"response": "OK"}
    assert s.fields(request("vg_clear_outdated_pvs", vgid=VG)) == {"response": "OK"}
    assert s.state.vgid_to_outdated_pvs == {}
    assert s.vg_lookup(VG).section("metadata/outdated_pvs") is None


# ---------------------------------------------------------------------------
# vg_lookup: resolution and failures
# ---------------------------------------------------------------------------
def test_vg_lookup_resolution_failures(s: Session) -> None:
    populated(s)
    assert s.fields(request("vg_lookup")) == unknown("VG not found")
    assert s.fields(request("vg_lookup", name="nope")) == unknown("VG not found")
    assert s.fields(request("vg_lookup", uuid=vgid(9))) == unknown("VG not found")
    assert s.fields(request("vg_lookup", uuid=VG, name="nope")) == unknown("VG mapping incomplete")
    assert s.fields(request("vg_lookup", uuid=vgid(9), name="vg0")) == unknown("VG mapping incomplete")


def test_vg_lookup_by_uuid_name_or_both_gives_the_same_reply(s: Session) -> None:
    populated(s)
    replies = [
        s.send(request("vg_lookup", **f)).body for f in ({"uuid": VG}, {"name": "vg0"}, {"uuid": VG, "name": "vg0"})
    ]
    assert replies[0] == replies[1] == replies[2]
    assert parse(replies[0]).keys() == ["response", "name", "metadata"]
    assert parse(replies[0]).get_str("name") == "vg0"


def test_vg_lookup_multiple(s: Session) -> None:
    """Checklist D.17."""
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1])))
    s.fields(vg_update("vg0", vg_metadata(vgid(2), 1, [PV2])))

    assert s.fields(request("vg_lookup", name="vg0")) == {
        "response": "multiple",
        "reason": "Multiple VGs found with same name",
    }
    for vg in (VG, vgid(2)):
        assert s.vg_lookup(vg).get_str("metadata/id") == vg
        assert s.vg_lookup(vg, "vg0").get_str("metadata/id") == vg


def test_vg_lookup_uuid_not_found_when_the_name_maps_without_metadata(s: Session) -> None:
    """Only reachable with inconsistent tables; set them up by hand."""
    populated(s)
    s.state.vgid_to_vgname[vgid(2)] = "ghost"
    s.state.vgname_to_vgid["ghost"] = [vgid(2)]

    assert s.fields(request("vg_lookup", uuid=vgid(2))) == unknown("UUID not found")
    assert s.fields(request("vg_lookup", name="ghost")) == unknown("UUID not found")
    del s.state.vgid_to_vgname[vgid(2)], s.state.vgname_to_vgid["ghost"]


def test_vg_lookup_mapping_inconsistent(s: Session) -> None:
    populated(s)
    s.state.vgname_to_vgid["other"] = [VG]

    assert s.fields(request("vg_lookup", uuid=VG, name="other")) == unknown("VG mapping inconsistent")
    del s.state.vgname_to_vgid["other"]


# ---------------------------------------------------------------------------
# vg_lookup: the edited metadata
# ---------------------------------------------------------------------------
def test_vg_lookup_merges_pvmeta_without_id_and_dev_size(s: Session) -> None:
    """Checklist D.9."""
    populated(s)
    pv = pv_section(s.vg_lookup(VG), 0)

    assert pv.keys() == [
        "device",
        "format",
        "label_sector",
        "ext_version",
        "ext_flags",
        "mda0",
        "da0",
        "id",
        "status",
        "flags",
        "dev_size",
        "pe_start",
        "pe_count",
    ]
    assert pv.get_int64("device") == D1
    assert pv.get_int64("dev_size") == 131072  # the metadata's own, not the pvmeta's


def test_vg_lookup_pvmeta_dropping_quirk_keeps_an_id_right_after_dev_size(s: Session) -> None:
    """docs/protocol.md §5, vg_lookup: the node after a dropped one is not re-checked."""
    created(s)
    body = f'request="pv_found"\npvmeta {{\n\tdevice={D1}\n\tdev_size=1\n\tid="{PV1}"\n\tformat="lvm2"\n}}\n'
    assert s.fields(body)["changed"] == 1

    assert pv_section(s.vg_lookup(VG), 0).keys()[:3] == ["device", "id", "format"]


def missing_status_vg(s: Session, *refs: PVRef) -> Section:
    s.populate(pv_found(PV1, D1))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1, *refs])))
    return s.vg_lookup(VG)


def test_missing_pv_without_status_gets_missing_as_first_child(s: Session) -> None:
    reply = missing_status_vg(s, PVRef(PV2, status=None))
    pv = pv_section(reply, 1)

    assert pv.items[0] == ("status", "MISSING")
    assert 'status=["MISSING"]' in s.replies[-1].body  # a daemon-built list keeps its brackets


def test_missing_is_prepended_to_other_flags(s: Session) -> None:
    reply = missing_status_vg(s, PVRef(PV2, status="ALLOCATABLE"), PVRef(PV3, status=["A", "B"]))

    assert pv_section(reply, 1).child("status") == ["MISSING", "ALLOCATABLE"]
    assert pv_section(reply, 2).child("status") == ["MISSING", "A", "B"]
    assert pv_section(reply, 1).keys()[0] == "id"  # nothing merged into a missing PV


def test_missing_status_empty_list_is_left_untouched(s: Session) -> None:
    reply = missing_status_vg(s, PVRef(PV2, status=[]))
    assert pv_section(reply, 1).child("status") == []


def test_missing_already_flagged_is_not_doubled(s: Session) -> None:
    reply = missing_status_vg(s, PVRef(PV2, status=["MISSING", "ALLOCATABLE"]))
    assert pv_section(reply, 1).child("status") == ["MISSING", "ALLOCATABLE"]


def test_present_pv_loses_its_missing_flag(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2), pv_found(PV3, D3))
    refs = [
        PVRef(PV1, status="MISSING"),
        PVRef(PV2, status=["MISSING", "ALLOCATABLE"]),
        PVRef(PV3, status=["A", "MISSING", "B"]),
    ]
    s.fields(vg_update("vg0", vg_metadata(VG, 1, refs)))
    reply = s.vg_lookup(VG)

    assert pv_section(reply, 0).child("status") == []
    assert pv_section(reply, 1).child("status") == "ALLOCATABLE"
    assert pv_section(reply, 2).child("status") == ["A", "B"]


def test_outdated_pvs_section_comes_first_in_metadata(s: Session) -> None:
    """Checklist D.10/D.11: full pvmeta copies, oldest mark first."""
    populated(s)
    s.fields(pv_found(PV3, D3))
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2, PV3])))
    s.fields(pv_found(PV3, D3, vgname="vg0", metadata=vg_metadata(VG, 3, [PV1, PV2, PV3])))  # all outdated

    metadata = s.vg_lookup(VG).section("metadata")
    assert metadata is not None
    assert metadata.keys()[:2] == ["outdated_pvs", "id"]
    outdated = metadata.section("outdated_pvs")
    assert outdated is not None
    assert [k for k, _ in outdated.sections()] == [PV1, PV2, PV3]
    assert outdated.section(PV1) == parse(pvmeta(PV1, D1)).section("pvmeta")


def test_outdated_pv_without_pvmeta_is_skipped(s: Session) -> None:
    populated(s, seqno=2)
    s.fields(pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))
    s.fields(request("pv_gone", device=D1))

    outdated = s.vg_lookup(VG).section("metadata/outdated_pvs")
    assert outdated is not None
    assert [k for k, _ in outdated.sections()] == [PV2]


def test_global_invalid_then_vg_invalid_markers(s: Session) -> None:
    populated(s)
    s.fields(request("set_vg_info", uuid=VG, version=5))
    assert s.vg_lookup(VG).keys() == ["response", "name", "metadata", "vg_invalid"]

    s.fields(request("set_global_info", global_invalid=1))
    reply = s.send(request("vg_lookup", uuid=VG)).body
    assert parse(reply).keys() == ["response", "name", "metadata", "global_invalid", "vg_invalid"]
    assert reply.endswith("}\nglobal_invalid {\n}\nvg_invalid {\n}\n\n\n")


def test_vg_lookup_reply_layout_is_the_tree_writer(s: Session) -> None:
    populated(s)
    body = s.send(request("vg_lookup", uuid=VG)).body
    assert body.startswith(f'response="OK"\nname="vg0"\nmetadata {{\n\tid="{VG}"\n\tseqno=1\n')
    assert "\t\tpv0 {\n\t\t\tdevice=2048\n" in body
    assert body.endswith("\t}\n}\n\n\n")


def test_logical_volumes_are_written_without_a_stray_indent_line(s: Session) -> None:
    populated(s, lvs=("lv1",))
    for body in (s.send(request("vg_lookup", uuid=VG)).body, s.dump()):
        assert "\t\n" not in body
        assert "\t\t\t}\n\t\t}\n\t}\n" in body


def test_logical_volumes_are_rewritten_in_the_tree_writer_layout(s: Session) -> None:
    s.populate(pv_found(PV1, D1))
    hand_written = (
        f'request="vg_update"\nvgname="vg0"\nmetadata {{\n    id = "{VG}"\n    seqno = 1\n'
        f'    physical_volumes {{\n        pv0 {{\n            id = "{PV1}"\n        }}\n    }}\n'
        '    logical_volumes {\n        lv1 {\n            status = ["READ", "WRITE"]\n        }\n    }\n}\n'
    )
    assert s.fields(hand_written) == {"response": "OK"}

    body = s.send(request("vg_lookup", uuid=VG)).body
    assert '\tlogical_volumes {\n\t\tlv1 {\n\t\t\tstatus=["READ","WRITE"]\n\t\t}\n\t}\n}\n' in body


# ---------------------------------------------------------------------------
# vg_list
# ---------------------------------------------------------------------------
def test_vg_list(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2), pv_found(PV3, D3))
    assert s.send(request("vg_list")).body == 'response="OK"\nvolume_groups {\n}\n\n\n'
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1])))
    s.fields(vg_update("vg1", vg_metadata(vgid(2), 1, [PV2])))
    s.fields(vg_update("vg0", vg_metadata(vgid(3), 1, [PV3])))

    groups = s.ask(request("vg_list")).section("volume_groups")
    assert groups is not None
    assert {k: v.to_python() for k, v in groups.sections()} == {
        VG: {"name": "vg0"},
        vgid(2): {"name": "vg1"},
        vgid(3): {"name": "vg0"},
    }


# ---------------------------------------------------------------------------
# set_global_info / get_global_info
# ---------------------------------------------------------------------------
def global_info(s: Session) -> dict[str, object]:
    return s.fields(request("get_global_info"), token="skip")


def test_get_global_info_on_a_fresh_daemon(s: Session) -> None:
    """Checklist D.3, and the exact simple-formatter layout."""
    reply = s.send(request("get_global_info"), token="skip").body
    assert reply == (
        'response = "OK"\nglobal_invalid = 0\nglobal_disable = 0\ndisable_reason = "none"\n'
        'daemon_pid = 777\ntoken = "none"\nupdate_cmd = ""\nupdate_pid = 0\nupdate_begin = 0\nupdate_timeout = 0\n'
    )


@pytest.mark.parametrize(
    ("start", "value", "flag"),
    [(0, 1, 1), (1, 1, 1), (1, 0, 0), (0, 0, 0), (1, 2, 1), (0, 2, 0), (1, -1, 1), (0, "1", 0), (0, 4294967297, 1)],
)
def test_set_global_info_invalid(s: Session, start: int, value: int | str, flag: int) -> None:
    """1 sets, 0 clears, any other value (or a string) is ignored; the getter is 32-bit."""
    s.populate()
    s.fields(request("set_global_info", global_invalid=start))
    assert s.fields(request("set_global_info", global_invalid=value)) == {"response": "OK"}
    assert global_info(s)["global_invalid"] == flag


def test_set_global_info_disable_reasons_accumulate_in_fixed_order(s: Session) -> None:
    """Checklist D.14/D.15."""
    s.populate(pv_found(PV1, D1))
    s.fields(pv_found(PV1, D2))  # duplicate: DISABLE + DUPLICATES
    assert global_info(s)["disable_reason"] == "DUPLICATES,"

    s.fields(request("set_global_info", global_disable=1, disable_reason="REPAIR,VGRESTORE"))
    info = global_info(s)
    assert (info["global_disable"], info["disable_reason"]) == (1, "REPAIR,DUPLICATES,VGRESTORE,")

    s.fields(request("set_global_info", global_disable=1, disable_reason="lvmetactl DIRECT"))
    assert global_info(s)["disable_reason"] == "DIRECT,REPAIR,DUPLICATES,VGRESTORE,"

    s.fields(request("set_global_info", global_disable=0))
    info = global_info(s)
    assert (info["global_disable"], info["disable_reason"]) == (0, "none")
    assert s.state.flags == GlobalFlag(0)


def test_disable_without_reason_reports_none(s: Session) -> None:
    s.populate()
    s.fields(request("set_global_info", global_disable=1))
    info = global_info(s)
    assert (info["global_disable"], info["disable_reason"]) == (1, "none")


@pytest.mark.parametrize("disable", [None, 2, -1])
def test_reasons_apply_only_with_disable_1(s: Session, disable: int | None) -> None:
    s.populate()
    s.fields(request("set_global_info", global_disable=disable, disable_reason="REPAIR"))
    assert s.state.flags == GlobalFlag(0)


def test_reasons_are_case_sensitive_substrings(s: Session) -> None:
    s.populate()
    s.fields(request("set_global_info", global_disable=1, disable_reason="repair INDIRECT"))
    assert global_info(s)["disable_reason"] == "DIRECT,"


def test_disable_and_invalid_are_independent(s: Session) -> None:
    s.populate()
    s.fields(request("set_global_info", global_invalid=1, global_disable=1, disable_reason="VGRESTORE"))
    s.fields(request("set_global_info", global_disable=0))
    info = global_info(s)
    assert (info["global_invalid"], info["global_disable"]) == (1, 0)


def test_the_daemon_keeps_answering_while_disabled(s: Session) -> None:
    populated(s)
    s.fields(request("set_global_info", global_disable=1, disable_reason="DIRECT"))
    assert s.vg_lookup(VG).get_str("response") == "OK"
    assert s.fields(pv_found(PV3, D3))["response"] == "OK"


# ---------------------------------------------------------------------------
# set_vg_info
# ---------------------------------------------------------------------------
def vg_invalid(s: Session, vg: str = VG) -> bool:
    return s.vg_lookup(vg).child("vg_invalid") is not None


def test_set_vg_info_without_version_does_nothing(s: Session) -> None:
    populated(s)
    for fields in ({"uuid": VG}, {"uuid": VG, "version": "9"}, {"uuid": VG, "version": -1}):
        assert s.fields(request("set_vg_info", **fields)) == {"response": "OK"}
    assert s.state.vgid_to_info == {}


def test_set_vg_info_newer_version_by_uuid_invalidates(s: Session) -> None:
    """Checklist D.12 (first half)."""
    populated(s, seqno=3)
    assert s.fields(request("set_vg_info", uuid=VG, version=4)) == {"response": "OK"}
    assert s.state.vgid_to_info == {VG: VGInfo(external_version=4, flags=1)}
    assert vg_invalid(s)


@pytest.mark.parametrize("version", [3, 2, 1, -7])
def test_set_vg_info_version_not_above_seqno_does_nothing(s: Session, version: int) -> None:
    populated(s, seqno=3)
    s.fields(request("set_vg_info", uuid=VG, version=version))
    assert s.state.vgid_to_info == {}
    assert not vg_invalid(s)


@pytest.mark.parametrize(("version", "info"), [(4294967295, None), (4294967296 + 5, VGInfo(5, 1))])
def test_set_vg_info_version_is_read_as_32_bits(s: Session, version: int, info: VGInfo | None) -> None:
    """docs/protocol.md §5, set_vg_info: 4294967295 reads as -1 (ignored); 2^32 + 5 reads as 5."""
    populated(s, seqno=3)
    s.fields(request("set_vg_info", uuid=VG, version=version))
    assert s.state.vgid_to_info.get(VG) == info


def test_set_vg_info_version_0_always_invalidates(s: Session) -> None:
    populated(s, seqno=3)
    s.fields(request("set_vg_info", uuid=VG, version=0))
    assert s.state.vgid_to_info == {VG: VGInfo(external_version=0, flags=1)}


def test_set_vg_info_overwrites_the_external_version(s: Session) -> None:
    populated(s, seqno=3)
    s.fields(request("set_vg_info", uuid=VG, version=9))
    s.fields(request("set_vg_info", uuid=VG, version=5))
    assert s.state.vgid_to_info[VG] == VGInfo(external_version=5, flags=1)


def test_set_vg_info_by_name(s: Session) -> None:
    populated(s)
    s.fields(request("set_vg_info", name="vg0", version=2))
    assert vg_invalid(s)


def test_set_vg_info_unknown_uuid_falls_back_to_name(s: Session) -> None:
    """lvmlockd sends uuid = "none" when it does not know the VGID."""
    populated(s)
    s.fields(request("set_vg_info", uuid="none", name="vg0", version=0))
    assert vg_invalid(s)


def test_set_vg_info_known_uuid_wins_over_name(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1])))
    s.fields(vg_update("vg1", vg_metadata(vgid(2), 1, [PV2])))
    s.fields(request("set_vg_info", uuid=VG, name="vg1", version=0))
    assert set(s.state.vgid_to_info) == {VG}


def test_set_vg_info_by_a_shared_name_affects_the_most_recent_vg(s: Session) -> None:
    s.populate(pv_found(PV1, D1), pv_found(PV2, D2))
    s.fields(vg_update("vg0", vg_metadata(VG, 1, [PV1])))
    s.fields(vg_update("vg0", vg_metadata(vgid(2), 1, [PV2])))

    s.fields(request("set_vg_info", name="vg0", version=5))

    assert set(s.state.vgid_to_info) == {vgid(2)}


@pytest.mark.parametrize("fields", [{"uuid": vgid(9)}, {"name": "nope"}, {}, {"uuid": vgid(9), "name": "nope"}])
def test_set_vg_info_of_an_unknown_vg_does_nothing(s: Session, fields: dict[str, str]) -> None:
    populated(s)
    assert s.fields(request("set_vg_info", version=0, **fields)) == {"response": "OK"}
    assert s.state.vgid_to_info == {}


def test_vg_update_with_the_announced_seqno_clears_the_flag_and_keeps_the_record(s: Session) -> None:
    """Checklist D.12 (second half), the two-phase update of docs/protocol.md §7."""
    created(s)
    s.fields(request("set_vg_info", uuid=VG, name="vg0", version=2))
    assert vg_invalid(s)

    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2])))

    assert not vg_invalid(s)
    assert s.state.vgid_to_info == {VG: VGInfo(external_version=2, flags=0)}


# ---------------------------------------------------------------------------
# dump
# ---------------------------------------------------------------------------


def test_dump_of_an_empty_cache(s: Session) -> None:
    assert s.send(request("dump"), token="anything").body == EMPTY_DUMP


def test_dump_layout(s: Session) -> None:
    populated(s, seqno=2)
    s.fields(pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 1, [PV1, PV2])))  # PV2 outdated
    s.fields(request("set_vg_info", uuid=VG, version=3))
    dump = s.dump()

    titles = [line for line in dump.splitlines() if line.startswith("# ")]
    assert titles == [
        "# VG METADATA",
        "# PV METADATA",
        "# VGID to VGNAME mapping",
        "# VGID to outdated PVs mapping",
        "# VGNAME to VGID mapping",
        "# PVID to VGID mapping",
        "# DEVICE to PVID mapping",
        "# VGID to INFO version mapping",
        "# VGID to INFO flags mapping",
    ]
    assert f'# VG METADATA\n\n{VG} {{\n\tid="{VG}"\n\tseqno=2\n' in dump
    assert f'\t\tpv0 {{\n\t\t\tid="{PV1}"\n\t\t\tstatus="ALLOCATABLE"\n' in dump  # stored as is, no device hint
    assert f"\n# PV METADATA\n\n{PV1} {{\n\tdevice=2048\n\tdev_size=20971520\n" in dump
    assert f'vgid_to_vgname {{\n    {VG} = "vg0"\n}}\n' in dump
    assert f'# VGID to outdated PVs mapping\n\n{VG} {{\n\tpv_list=["{PV2}"]\n\tvgid="{VG}"\n}}\n\n# VGNAME' in dump
    assert f'vgname_to_vgid {{\n    vg0 = "{VG}"\n}}\n' in dump
    assert f'pvid_to_vgid {{\n    {PV1} = "{VG}"\n    {PV2} = "{VG}"\n}}\n' in dump
    assert f'device_to_pvid {{\n    2048 = "{PV1}"\n    2064 = "{PV2}"\n}}\n' in dump
    assert dump.endswith(
        f"vgid_to_info {{\n    {VG} = 3\n}}\n\n# VGID to INFO flags mapping\n\nvgid_to_info {{\n    {VG} = 1\n}}\n"
    )


def test_dump_shows_cleared_flags_as_0_and_device_keys_as_low_32_bits(s: Session) -> None:
    created(s)
    s.fields(request("set_vg_info", uuid=VG, version=2))
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2])))
    s.fields(pv_found(PV3, 4294967296 + 7))
    dump = s.dump()

    assert f"INFO flags mapping\n\nvgid_to_info {{\n    {VG} = 0\n}}\n" in dump
    assert f'    7 = "{PV3}"\n' in dump


def test_cached_vg_texts_do_not_outlive_their_vgs(s: Session) -> None:
    """Looking up many VGs that are then removed leaves no text of them behind."""
    s.populate(pv_found(PV1, D1))
    for n in range(200):
        s.fields(vg_update(f"churn{n}", vg_metadata(vgid(1000 + n), 1, [PV1])))
        assert s.fields(request("vg_lookup", uuid=vgid(1000 + n)))["response"] == "OK"
        s.fields(request("vg_remove", uuid=vgid(1000 + n)))
    assert len(s.handler.texts.vg_texts) <= 2 * len(s.state.vgid_to_metadata) + 17


def test_vg_lookup_shows_a_pv_record_changed_since_the_last_lookup(s: Session) -> None:
    """The kept text of a PV's merged record follows the record (a rescan with new flags)."""
    created(s)
    assert pv_section(s.vg_lookup(VG), 0).get_int64("ext_flags") == 1
    assert s.fields(pv_found(PV1, D1, ext_flags=7))["changed"] == 1
    assert pv_section(s.vg_lookup(VG), 0).get_int64("ext_flags") == 7
    s.fields(vg_update("vg0", vg_metadata(VG, 2, [PV1, PV2])))  # a new VG tree, the same records
    assert pv_section(s.vg_lookup(VG), 0).get_int64("ext_flags") == 7
    assert s.fields(pv_found(PV1, D1, ext_flags=3))["changed"] == 1
    assert pv_section(s.vg_lookup(VG), 0).get_int64("ext_flags") == 3

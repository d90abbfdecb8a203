"""The PV uuids a VG lists: the shortcut reads (first-pair id, the strip's own walk) equal get_str's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.cache import strip_device_hints, vg_pvids
from pylvmetad.wire.codec import Node, Section

PV_VALUES: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from(["", "pv-a", "pv-b"]), st.integers(0, 3), st.lists(st.sampled_from(["", "pv-l", 5]), max_size=2)
)
PV_ITEMS = st.lists(st.tuples(st.sampled_from(["id", "device", "status", "dev_size"]), PV_VALUES), max_size=5)
ENTRIES = st.lists(
    st.one_of(
        st.builds(lambda items: ("pv", Section(items)), PV_ITEMS),
        st.tuples(st.just("stray"), st.sampled_from(["x", 1])),
    ),
    max_size=5,
)


def by_getters(metadata: Section) -> list[str]:
    pvs = metadata.section("physical_volumes")
    out: list[str] = []
    for _, pv in pvs.sections() if pvs is not None else ():
        pvid = pv.get_str("id")
        if pvid is not None:
            out.append(pvid)
    return out


@settings(max_examples=400, deadline=None)
@given(entries=ENTRIES, listed=st.booleans())
def test_listed_uuids_are_get_strs_and_the_strip_returns_them(entries: list[tuple[str, Node]], listed: bool) -> None:
    metadata = Section([("physical_volumes", Section(entries))] if listed else [("physical_volumes", "x")])
    assert list(vg_pvids(metadata)) == by_getters(metadata)
    stripped = strip_device_hints(metadata)
    assert stripped == by_getters(metadata) == list(vg_pvids(metadata))
    assert Section([]).items == [] and strip_device_hints(Section([])) == []

"""present_pv_items' shortcut (a str status other than MISSING: the PV's own pairs) is its general rule's result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers.texts import present_pv_items
from pylvmetad.wire.codec import MarkedList, Node, Section, atoms


def general(pv: Section) -> list[tuple[str, Node]]:
    """The rule without the shortcut: the first status's first MISSING word dropped."""
    items = pv.items
    status_at = next((i for i, (k, _) in enumerate(items) if k == "status"), None)
    if status_at is not None:
        status = atoms(items[status_at][1])
        if status and "MISSING" in status:
            status.remove("MISSING")
            items = list(items)
            items[status_at] = ("status", status if len(status) != 1 else status[0])
    return items


words = st.sampled_from(["MISSING", "ALLOCATABLE", "A", ""])
statuses = st.one_of(words, st.integers(), st.lists(words, max_size=3), st.lists(words, max_size=3).map(MarkedList))
pairs = st.lists(st.tuples(st.sampled_from(["id", "status", "flags"]), statuses), max_size=4)


@settings(max_examples=300, deadline=None)
@given(pairs)
def test_present_pv_items_is_the_general_rule(items: list[tuple[str, Node]]) -> None:
    got = present_pv_items(Section(items))
    want = general(Section(items))
    assert got == want and [type(v) for _, v in got] == [type(v) for _, v in want]


def test_examples() -> None:
    assert present_pv_items(Section([("id", "x"), ("status", "ALLOCATABLE")])) == [
        ("id", "x"),
        ("status", "ALLOCATABLE"),
    ]
    assert present_pv_items(Section([("status", "MISSING")])) == [("status", [])]
    assert present_pv_items(Section([("status", ["MISSING", "A"]), ("status", "MISSING")])) == [
        ("status", "A"),
        ("status", "MISSING"),
    ]

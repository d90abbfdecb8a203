"""Request.from_tree reads the five fields as LVM's getters do, whatever the top level holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers import Request
from pylvmetad.wire.codec import Node, Section

FIELD_KEYS = st.sampled_from(["request", "token", "pid", "cmd", "update_timeout", "other", "pvmeta"])
#: pairs before the fields in a padded top level (the fields are then found past them)
PADDING = 64
VALUES: st.SearchStrategy[Node] = st.one_of(
    st.text(max_size=4),
    st.integers(-(1 << 40), 1 << 40),
    st.sampled_from([0, -(1 << 31), (1 << 31) - 1, 1 << 31, -(1 << 31) - 1]),
    st.floats(allow_nan=False, width=32),
    st.lists(st.one_of(st.text(max_size=3), st.integers(-(1 << 33), 1 << 33)), max_size=2),
    st.builds(lambda v: Section([("x", v)]), st.one_of(st.text(max_size=3), st.integers())),
)


def by_getters(tree: Section) -> tuple[str, str, int, str, int]:
    return (
        tree.get_str("request", "NONE") or "NONE",
        tree.get_str("token", "NONE") or "NONE",
        tree.get_int("pid", 0),
        tree.get_str("cmd", "NONE") or "NONE",
        tree.get_int("update_timeout", 0),
    )


@settings(max_examples=500, deadline=None)
@given(pairs=st.lists(st.tuples(FIELD_KEYS, VALUES), max_size=12), padding=st.sampled_from([0, PADDING]))
def test_fields_are_the_getters_answers(pairs: list[tuple[str, Node]], padding: int) -> None:
    """Missing, duplicated (the first wins), empty, out-of-range, list and section values alike."""
    tree = Section([(f"pad{i}", i) for i in range(padding)] + pairs)  # padded: the fields found further on
    req = Request.from_tree(tree)
    assert (req.name, req.token, req.pid, req.cmd, req.update_timeout) == by_getters(tree)
    assert req.tree is tree


def test_fields_from_a_view_and_the_error_kept() -> None:
    tree = Section([("request", "pv_list"), ("pid", 7)])
    view = Section([("request", "vg_list"), ("token", "t")])
    req = Request.from_tree(tree, None, view)
    assert (req.name, req.token, req.pid, req.tree) == ("vg_list", "t", 0, tree)
    assert Request.from_text('request = "x"\n').name == "x"

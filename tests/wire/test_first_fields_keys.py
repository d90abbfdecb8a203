"""first_fields with keys that are equal strs but not the same objects, and the request's own keys.

The C walk compares a pair's key with a field's name by their cached
hashes first (two strs of known, different hashes differ) and reads a
``(section, name)`` field's section from the top-level walk when the
section's name is a plain field too.  Neither may change a value: keys
built afresh (not the interned literals, their hashes not computed yet)
must give what the reference gives, and so must the request keys
(``REQUEST_KEYS``) on request-like trees.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers.dispatch import REQUEST_DEFAULTS, REQUEST_KEYS
from pylvmetad.wire import codec
from pylvmetad.wire.codec import FieldKey, Node, Section
from support.ccodec import required_accelerator

NAMES = ["request", "pvmeta", "metadata", "vgname", "id", "seqno", "device", "token", "pid", "x"]
ATOMS: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from(["", "u", 0, 7, -1, 1 << 40, [], ["a", "b"], 1.5]), st.text(max_size=2)
)


def fresh(text: str) -> str:
    """An equal str that is another object, its hash not computed yet."""
    return "".join(list(text))


def fresh_key(key: FieldKey) -> FieldKey:
    return fresh(key) if type(key) is str else (fresh(key[0]), fresh(key[1]))


@st.composite
def trees(draw: st.DrawFn) -> Section:
    def pairs(depth: int) -> list[tuple[str, Node]]:
        out: list[tuple[str, Node]] = []
        for _ in range(draw(st.integers(0, 6))):
            name = fresh(draw(st.sampled_from(NAMES))) if draw(st.booleans()) else draw(st.sampled_from(NAMES))
            if depth == 0 and draw(st.integers(0, 2)) == 0:
                out.append((name, Section(pairs(1))))
            else:
                out.append((name, draw(ATOMS)))
        return out

    return Section(pairs(0))


def same(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(
        x is y or (type(x) is type(y) and not isinstance(x, Section) and x == y) for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=500, deadline=None)
@given(trees(), st.booleans())
def test_request_keys_fresh_or_not(tree: Section, fresh_keys: bool) -> None:
    c = required_accelerator().first_fields
    keys = tuple(fresh_key(k) for k in REQUEST_KEYS) if fresh_keys else REQUEST_KEYS
    items = tree._items
    assert items is not None
    want = codec._first_fields_py(items, keys, REQUEST_DEFAULTS)
    got = c(items, keys, REQUEST_DEFAULTS)
    assert same(got, want)


def test_a_section_named_by_a_plain_field_and_by_none() -> None:
    c = required_accelerator().first_fields
    md = Section([("id", "V"), ("seqno", 3)])
    tree = Section([("request", "vg_update"), ("metadata", md), ("metadata", Section([("id", "W")]))])
    keys: tuple[FieldKey, ...] = ("metadata", ("metadata", "id"), ("metadata", "seqno"), ("pvmeta", "id"))
    defaults: tuple[str | int | None, ...] = (None, "", -1, "")
    want = (md, "V", 3, None)  # no pvmeta section: the getter is asked
    assert codec._first_fields_py(tree.items, keys, defaults) == want
    assert c(tree.items, keys, defaults) == want
    # no plain "metadata" field: the section is looked up on its own
    assert c(tree.items, keys[1:], defaults[1:]) == want[1:]
    # every plain field found early: the walk stops, the section still read right
    assert c(tree.items, ("request", ("metadata", "id")), ("NONE", "")) == ("vg_update", "V")
    assert c(Section([("request", 1)]).items, ("request", ("request", "id")), (None, "")) == (1, None)

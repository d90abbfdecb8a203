"""same_trees and first_values: the C walks (_ccodec) against their Python references.

``same_trees`` decides whether a pv_found of a known PV may skip storing its
pvmeta (cache.pv_found): it must answer True only for trees that are the same
exactly -- what any reply writes of one it writes of the other -- and both
implementations must give the same answer and build the same lazy children.
``first_values`` reads a request's header fields in one walk
(Request.from_tree): the same values as a first_value per key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import MarkedList, Section
from support.ccodec import required_accelerator
from wire.test_compare_accel import built, lazy_copy, near_pairs, nodes, sections, trees

__all__ = ["sections"]  # the fixture, imported to be used here


def both_same(a: Any, b: Any) -> bool:
    """same_trees both ways on fresh copies: the same answer and the same lazy sections built."""
    c: Callable[[Any, Any], bool] = required_accelerator().same_trees
    pa, pb = copy.deepcopy(a), copy.deepcopy(b)
    python = codec._same_trees_py(pa, pb)
    ca, cb = copy.deepcopy(a), copy.deepcopy(b)
    accelerated = c(ca, cb)
    assert accelerated is python
    assert (built(ca), built(cb)) == (built(pa), built(pb))
    if python:  # the same exactly: equal as trees, and equal by LVM's comparison both ways
        assert a == b and b == a
        assert codec.compare_trees(a, b) == 0 == codec.compare_trees(b, a)
    return python


def test_examples() -> None:
    base = Section([("id", "x"), ("device", 2049), ("sizes", [1, 2]), ("mda0", Section([("size", 4096)]))])
    assert both_same(base, copy.deepcopy(base))
    assert both_same(base, base)
    differing = [
        Section([("id", "x"), ("device", 2050), ("sizes", [1, 2]), ("mda0", Section([("size", 4096)]))]),
        Section([("id", "x"), ("dev", 2049), ("sizes", [1, 2]), ("mda0", Section([("size", 4096)]))]),  # a key
        Section([("id", "x"), ("device", 2049.0), ("sizes", [1, 2]), ("mda0", Section([("size", 4096)]))]),
        Section([("id", "x"), ("device", 2049), ("sizes", MarkedList([1, 2])), ("mda0", Section([("size", 4096)]))]),
        Section([("id", "x"), ("device", 2049), ("sizes", [1]), ("mda0", Section([("size", 4096)]))]),
        Section([("id", "x"), ("device", 2049), ("sizes", [1, 2]), ("mda0", Section([("size", 4097)]))]),
        Section([("id", "x"), ("device", 2049), ("sizes", [1, 2])]),
        Section([("id", "x"), ("device", "2049"), ("sizes", [1, 2]), ("mda0", Section([("size", 4096)]))]),
    ]
    for other in differing:
        assert not both_same(base, other) and not both_same(other, base)
    # a one-atom list is written as a scalar unless it is marked: the types must match
    assert codec.format_tree(Section([("s", [1])])) != codec.format_tree(Section([("s", MarkedList([1]))]))
    assert not both_same(Section([("s", [1])]), Section([("s", MarkedList([1]))]))
    # each of these compares equal by LVM's loose rules, yet is not the same tree
    assert codec.compare_trees(base, differing[1]) == 0 and codec.compare_trees(base, differing[3]) == 0
    assert not both_same(Section([("f", -0.0)]), Section([("f", 0.0)]))  # "%f" writes them apart
    assert both_same(Section([("f", 0.5)]), Section([("f", 0.5)]))
    assert not both_same(Section([("a", True)]), Section([("a", 1)]))  # type: ignore[list-item]


def test_lazy_sections_of_one_text_are_the_same_unparsed() -> None:
    text = codec.format_tree(Section([("device", 2049), ("format", "lvm2")]), 1)
    copied = "".join(list(text))  # an equal text, another object
    assert copied == text and copied is not text
    for fn in (codec._same_trees_py, required_accelerator().same_trees):
        x, y = Section(raw=text), Section(raw=copied)
        assert fn(x, y) and x._items is None and y._items is None  # neither parsed
    lazy = Section(raw=text)
    assert not both_same(lazy, Section(raw=codec.format_tree(Section([("device", 2050)]), 1)))
    assert both_same(lazy, Section([("device", 2049), ("format", "lvm2")]))  # lazy against built: parsed


def test_unknown_shapes_are_not_the_same() -> None:
    class Sub(Section):
        __slots__ = ()

    loose: Any = Section  # built from pairs of any shape, as a careless caller could
    odd: list[tuple[Any, Any]] = [
        (Sub([("a", 1)]), Sub([("a", 1)])),  # a subclass
        (Section([("a", 1)]), [("a", 1)]),  # not a Section
        (loose([("a", object())]), loose([("a", object())])),  # values of no known type
        (loose([["a", 1]]), loose([["a", 1]])),  # a pair that is not a tuple
        (loose([("a", 1, 2)]), loose([("a", 1, 2)])),  # nor a 2-tuple
        (loose([(1, 1)]), loose([(1, 1)])),  # a key that is not a str
    ]
    c = required_accelerator()
    for a, b in odd:
        assert codec._same_trees_py(a, b) is False
        assert c.same_trees(a, b) is False


def test_deep_trees_raise_recursion_error_both_ways() -> None:
    a: Section = Section([("v", 1)])
    b: Section = Section([("v", 1)])
    for _ in range(100_000):
        a, b = Section([("s", a)]), Section([("s", b)])
    c = required_accelerator()
    for fn in (codec._same_trees_py, c.same_trees):
        try:
            fn(a, b)
        except RecursionError:
            continue
        raise AssertionError(f"{fn} walked 100,000 levels")


def test_the_traffics_sections_against_their_copies_and_neighbours(sections: dict[str, list[Section]]) -> None:
    differ = 0
    for group in sections.values():
        for i, a in enumerate(group):
            assert both_same(a, copy.deepcopy(a))
            for b in group[i + 1 : i + 3]:
                differ += not both_same(a, b)
    assert differ > 1000  # distinct texts of one name: (almost) never the same tree


@settings(max_examples=300, deadline=None)
@given(trees, trees)
def test_agree_on_arbitrary_trees(a: Section, b: Section) -> None:
    both_same(a, b)
    assert both_same(a, copy.deepcopy(a))
    assert both_same(a, lazy_copy(a)) == both_same(lazy_copy(a), a)


@settings(max_examples=300, deadline=None)
@given(near_pairs())
def test_agree_on_nearly_equal_trees(pair: tuple[Section, Section]) -> None:
    a, b = pair
    assert both_same(a, b) == both_same(b, a)


# ---------------------------------------------------------------------------
# first_values

KEYS = ("request", "token", "pid", "cmd", "update_timeout")


def both_firsts(items: list[Any], keys: tuple[str, ...] = KEYS) -> tuple[object, ...]:
    python = codec._first_values_py(items, keys)
    assert python == tuple(codec._first_value_py(items, k) for k in keys)
    accelerated = required_accelerator().first_values(items, keys)
    if accelerated is NotImplemented:  # the reference decides: only for pairs that are not (str, value)
        assert any(type(p) is not tuple or len(p) != 2 or type(p[0]) is not str for p in items)
    else:
        assert accelerated == python
        assert all(x is y for x, y in zip(accelerated, python, strict=True))
    assert codec._first_values_c(items, keys) == python
    return python


def test_first_values_examples() -> None:
    items: list[Any] = [("request", "pv_found"), ("pid", 7), ("pid", 8), ("token", "t"), ("x", 1)]
    assert both_firsts(items) == ("pv_found", "t", 7, None, None)
    assert both_firsts([]) == (None,) * 5
    assert both_firsts(items, ()) == ()
    assert both_firsts([("request", "a"), ["odd", 1]]) == ("a", None, None, None, None)
    assert both_firsts([(1, "a"), ("request", "b")]) == ("b", None, None, None, None)
    assert both_firsts([("".join(["requ", "est"]), "built")]) == ("built", None, None, None, None)  # not interned


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([*KEYS, "x", "é", "requests", ""]), nodes), max_size=12),
    st.lists(st.sampled_from([*KEYS, "x", "é"]), unique=True, max_size=6).map(tuple),
)
def test_first_values_agree(items: list[Any], keys: tuple[str, ...]) -> None:
    both_firsts(items, keys)
    both_firsts(items)

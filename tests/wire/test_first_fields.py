"""first_fields: the C walk (``_ccodec.first_fields``) against its Python reference and the getters.

``Request.from_tree`` reads a request's header fields, and the sections and
``pvmeta`` fields pv_found and vg_update read, in one walk: each value is
the getter's answer when it is a plain one (a non-empty str, a 32-bit int,
the default of a missing key) and None ("ask the getter") otherwise.  Both
implementations must give the same values on any tree, and every value that
is not None must be what the getter gives.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import FieldKey, Node, Section
from support.ccodec import required_accelerator

KEYS: tuple[FieldKey, ...] = ("a", "b", "n", "s", ("s", "a"), ("s", "n"), ("s", "x"), ("b", "a"), "s")
DEFAULTS: tuple[str | int | None, ...] = ("NONE", None, 0, None, "", None, 7, "D", None)

ATOMS: st.SearchStrategy[Node] = st.one_of(
    st.text(max_size=3),
    st.integers(-(1 << 40), 1 << 40),
    st.sampled_from([0, -(1 << 31), (1 << 31) - 1, 1 << 31, -(1 << 31) - 1, True]),
    st.floats(allow_nan=False, width=32),
    st.lists(st.one_of(st.text(max_size=2), st.integers(-9, 9)), max_size=2),
)
NAMES = st.sampled_from(["a", "b", "n", "s", "x", "other"])


def section_of(pairs: list[Any], lazy: bool) -> Section:
    if lazy:  # children not built: the reading asks the getter
        return Section(raw='\n\ta="lazy"\n')
    return Section(pairs)


INNER = st.builds(section_of, st.lists(st.tuples(NAMES, ATOMS), max_size=5), st.booleans())
ODD = st.sampled_from([("a",), ("a", 1, 2), (1, 2), ["a", 1], "ab"])  # pairs of another shape
VALUES = st.one_of(ATOMS, INNER)


@st.composite
def trees(draw: st.DrawFn) -> Section:
    pairs: list[Any] = draw(st.lists(st.tuples(NAMES, VALUES), max_size=8))
    if draw(st.integers(0, 5)) == 0:
        pairs.insert(draw(st.integers(0, len(pairs))), draw(ODD))
    if draw(st.integers(0, 5)) == 0:  # an odd pair inside a section
        inner = [(k, v) for k, v in draw(st.lists(st.tuples(NAMES, ATOMS), max_size=3))]
        inner.insert(draw(st.integers(0, len(inner))), draw(ODD))  # type: ignore[arg-type]
        pairs.insert(draw(st.integers(0, len(pairs))), ("s", Section(inner)))
    return Section(pairs)


def getter(tree: Section, key: FieldKey, default: str | int | None) -> object:
    path = key if type(key) is str else "/".join(key)
    if default is None:
        return tree.find(path)
    if type(default) is str:
        return tree.get_str(path) or default
    assert type(default) is int
    return tree.get_int(path, default)


def same(a: Any, b: Any) -> bool:
    """The same values: a section the very same object, anything else of the same type and equal."""
    return len(a) == len(b) and all(
        x is y or (type(x) is type(y) and not isinstance(x, Section) and x == y) for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=600, deadline=None)
@given(trees())
def test_c_and_python_agree_and_match_the_getters(tree: Section) -> None:
    c = required_accelerator().first_fields
    items = tree._items
    assert items is not None
    got = c(items, KEYS, DEFAULTS)
    try:
        python = codec._first_fields_py(items, KEYS, DEFAULTS)
    except (TypeError, ValueError):  # a top-level pair of another shape: the reference's loop raises
        assert got is NotImplemented
        return
    if got is not NotImplemented:
        assert same(got, python)
    assert same(codec.first_fields(items, KEYS, DEFAULTS), python)
    if all(type(p) is tuple and len(p) == 2 and type(p[0]) is str for p in items):
        assert got is not NotImplemented  # only a top-level pair of another shape hands over
        for key, default, value in zip(KEYS, DEFAULTS, python, strict=True):
            if value is not None:
                assert same((value,), (getter(tree, key, default),))
            elif default is not None and type(key) is str:
                # asked for: there is a first value, and not a plain one (a missing key is the default)
                assert codec._first_value_py(items, key) is not None


def test_examples() -> None:
    c = required_accelerator().first_fields
    pv = Section([("device", 2049), ("id", "u")])
    tree = Section([("request", "pv_found"), ("pvmeta", pv), ("pid", 1 << 40), ("cmd", "")])
    keys: tuple[FieldKey, ...] = ("request", "pid", "cmd", "token", "pvmeta", ("pvmeta", "id"), ("pvmeta", "device"))
    defaults: tuple[str | int | None, ...] = ("NONE", 0, "NONE", "NONE", None, "", None)
    want = ("pv_found", None, None, "NONE", pv, "u", 2049)
    assert codec._first_fields_py(tree.items, keys, defaults) == want
    assert c(tree.items, keys, defaults) == want
    lazy = Section([("pvmeta", Section(raw='\n\tid="u"\n'))])
    assert c(lazy.items, keys, defaults)[5] is None  # not built: the getter builds and reads it
    assert codec._first_fields_py(lazy.items, keys, defaults)[5] is None
    assert lazy.get_str("pvmeta/id") == "u"


def test_wrong_arguments_are_refused() -> None:
    c = required_accelerator().first_fields
    with pytest.raises(TypeError):
        c([], ("a",), ())
    with pytest.raises(TypeError):
        c([], (1,), (None,))
    with pytest.raises(TypeError):
        c([], ("a",), (1.5,))
    with pytest.raises(TypeError):
        c([], ("a",) * 17, (None,) * 17)

"""The C tree writer (_ccodec.format_tree) against the Python reference (codec._format_tree_py).

``format_tree`` writes every structured reply (pv_list, vg_lookup, dump); the
accelerator writes a tree of exact str, int, list, MarkedList and Section
values itself and answers None for any other shape, so that the reference
writes the whole tree.  Both must give the same text, raise the same errors
and build the same lazy sections' children (a lazy section's kept text is
echoed only at the depth it was written for; elsewhere its children are
built and written), on every tree of the recorded traffic and on hypothesis
trees with odd keys, escapes, wide characters, marked and one-atom lists,
floats, bools, lazy sections at matching and other depths, and nesting past
the 32-TAB indent cap.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import MarkedList, Node, ParseError, Section, parse
from support.ccodec import required_accelerator
from wire.test_codec import documents
from wire.test_codec_fast import corpus_texts
from wire.test_compare_accel import LAZY_NAMES, built

Writer = Callable[[Any, Any], "str | None"]


def c_format() -> Writer:
    c = required_accelerator()
    c.configure_format(MarkedList)  # a module compiled for the tests is not configured yet
    fn: Writer = c.format_tree
    return fn


def outcome(fn: Callable[[Any, Any], object], tree: Any, depth: Any) -> tuple[object, object]:
    try:
        return fn(tree, depth), built(tree)
    except Exception as e:  # the same error both ways is the point
        return type(e), built(tree)


def handled(node: object) -> bool:
    """Whether the C writer writes ``node`` itself (every value of an exact type it knows)."""
    if type(node) is Section:
        if node.raw is not None and type(node.raw) is not str:
            return False
        if node._items is None:
            return True  # a lazy body (canonical text: it builds to atoms the writer knows)
        return all(type(p) is tuple and len(p) == 2 and type(p[0]) is str and handled(p[1]) for p in node._items)
    if type(node) is list or type(node) is MarkedList:
        return all(type(a) is str or type(a) is int for a in node)
    return type(node) is str or type(node) is int


def agree(tree: Any, depth: Any = 0) -> object:
    """Both writers on fresh copies: the same text (or error) and the same lazy sections built.

    Returns the result; asserts that the C writer wrote the tree itself when
    every value in it is of a type it knows.
    """
    c = c_format()
    pt = copy.deepcopy(tree)
    python = outcome(codec._format_tree_py, pt, depth)
    ct = copy.deepcopy(tree)
    direct = outcome(c, ct, depth)
    if direct[0] is None:  # left to the reference
        plain_depth = type(depth) is int and -(2**63) <= depth < 2**63
        assert not plain_depth or not (handled(tree) if isinstance(tree, Section) else handled(Section(tree)))
        direct = outcome(codec._format_tree_py, ct, depth)
    assert direct == python
    ft = copy.deepcopy(tree)
    assert outcome(codec.format_tree, ft, depth) == python  # the public writer, whichever it uses
    return python[0]


# ---------------------------------------------------------------------------
# examples


def test_examples() -> None:
    tree = Section(
        [
            ("a", 'x"y\\z'),
            ("b k", 1),
            ("c", [1, "s"]),
            ("d", ["o"]),
            ("e", MarkedList(["o"])),
            ("f", []),
            ("f2", MarkedList()),
            ("g", Section([("h", -5), ("i", 2**70), ("j", -(2**63)), ("k", 2**63 - 1)])),
            ("é", " é\u2028😀"),
            ('"q\\', 0),
        ]
    )
    want = (
        'a="x\\"y\\\\z"\n"b k"=1\nc=[1,"s"]\nd="o"\ne=["o"]\nf=[]\nf2=[]\ng {\n\th=-5\n'
        "\ti=1180591620717411303424\n\tj=-9223372036854775808\n\tk=9223372036854775807\n}\n"
        'é=" é\u2028😀"\n"\\"q\\\\"=0\n'
    )
    assert c_format()(tree, 0) == want == agree(tree)
    assert c_format()(tree.items, 0) == want  # the children alone
    assert agree(tree, 2) == "\t\t" + want[:-1].replace("\n", "\n\t\t") + "\n"
    assert c_format()(Section(), 3) == "" == agree(Section([]))


#: each character format_key quotes for (\s is str.isspace(): \x1c-\x1f, \x85, \u2028 ...), and some it does not
ODD_KEYS = [
    "a#b",
    'a"',
    "a!",
    "a=b",
    "a,b",
    "a{",
    "a}",
    "a[",
    "a]",
    "a'",
    "é",
    "ok",
    "a.b-c+d",
    "a/b",
    "a b",
    "a\tb",
    "\x1c",
    "\x1f",
    "",
    "\u3000",
]


@pytest.mark.parametrize("key", [*ODD_KEYS, "\x85", "\xa0", "\u2028", "\x0b"])
def test_keys_are_quoted_as_format_key_quotes_them(key: str) -> None:
    text = c_format()(Section([(key, 1)]), 0)
    assert text == codec.format_key(key) + "=1\n" == agree(Section([(key, 1)]))


def test_indent_stops_at_32_tabs_and_negative_depths_have_none() -> None:
    deep: Section = Section([("v", 1)])
    for _ in range(40):
        deep = Section([("s", deep)])
    text = agree(deep)
    assert isinstance(text, str) and "\n" + "\t" * 32 + "v=1\n" in text and "\t" * 33 not in text
    for depth in (-(2**63), -3, -1, 0, 31, 32, 33, 2**63 - 1):
        assert agree(deep, depth) == codec._format_tree_py(deep, depth)
    assert agree(deep, 2**70) == codec._format_tree_py(deep, 32)  # past 64 bits: left to the reference
    assert agree(deep, -(2**70)) is OverflowError  # "\t" * min(depth, 32) cannot be made
    assert c_format()(Section([("s", Section([("v", 1)]))]), -1) == "s {\nv=1\n}\n"


def test_shapes_it_does_not_write_are_left_to_the_reference() -> None:
    c = c_format()

    class Str(str):
        pass

    class Sub(Section):
        pass

    odd: list[Node] = [
        1.5,
        -0.0,
        True,
        [1, 2.5],
        [True],
        [False, 1],
        Str("x"),
        [Str("x"), "y"],
        Sub([("a", 1)]),
        [Section([("a", 1)]), 1],  # type: ignore[list-item]
        [[1, 2], 3],  # type: ignore[list-item]
        None,  # type: ignore[list-item]
        (1, 2),  # type: ignore[list-item]
    ]
    for value in odd:
        for tree in (Section([("a", value)]), Section([("s", Section([("a", 1), ("b", value)]))])):
            assert c(tree, 0) is None
            agree(tree)
    for items in ([("a", 1, 2)], [("a",)], [["a", 1]], [(1, 1)], [(Str("k"), 1)]):
        assert c(Section(items), 0) is None  # type: ignore[arg-type]
        results: list[object] = []
        for fn in (codec._format_tree_py, codec.format_tree):
            try:
                results.append(fn(Section(items), 0))  # type: ignore[arg-type]
            except Exception as e:  # pairs that do not unpack, a key that is not a str
                results.append(type(e))
        assert results[0] == results[1]
    assert c(Section([("a", 1)]), True) is None  # a bool depth: the reference's "\t" * min(True, 32)
    assert c(Section([("a", 1)]), 1.0) is None
    assert c((("a", 1),), 0) is None  # a tuple of pairs
    lazy = Section(raw="\ta=1\n")
    lazy.raw = Str("\ta=1\n")  # type: ignore[assignment]
    assert c(Section([("s", lazy)]), 0) is None
    assert agree(Section([("s", lazy)]), 1) == "\ts {\n\t\ta=1\n\t}\n"


def test_lazy_sections_are_echoed_only_at_their_depth() -> None:
    body = codec._format_tree_py(Section([("device", 2049), ("format", "lvm2")]), 2)
    for depth in range(4):
        tree = Section([("pv0", Section(raw="\n" + body + "\t"))])  # ends with "\n\t": the text for depth 1
        text = agree(tree, depth)
        assert text == ("\tpv0 {\n" + body + "\t}\n" if depth == 1 else codec._format_tree_py(tree, depth))
        c_tree = Section([("pv0", Section(raw="\n" + body + "\t"))])
        c_format()(c_tree, depth)
        child = c_tree.child("pv0")
        assert isinstance(child, Section) and (child._items is None) == (depth == 1)  # built only to write it
    assert agree(Section([("s", Section(raw=""))]), 0) == "s {\n}\n"
    assert agree(Section([("s", Section(raw="\n"))]), 0) == "s {\n}\n"  # echoed
    assert agree(Section([("s", Section(raw="\n"))]), 1) == "\ts {\n\t}\n"  # built: no children


def test_errors_propagate_as_the_reference_raises_them() -> None:
    c = c_format()
    bad = Section([("s", Section(raw="\ta = {"))])  # a lazy body that does not parse
    with pytest.raises(ParseError):
        codec._format_tree_py(copy.deepcopy(bad), 0)
    with pytest.raises(ParseError):
        c(bad, 0)
    assert agree(bad) is ParseError
    huge = Section([("n", 10**5000)])  # past str()'s digit limit
    assert agree(huge) is ValueError and agree(Section([("n", [1, 10**5000])])) is ValueError
    deep: Section = Section([("v", 1)])
    for _ in range(100_000):
        deep = Section([("s", deep)])
    with pytest.raises(RecursionError):
        c(deep, 0)
    with pytest.raises(RecursionError):
        codec._format_tree_py(deep, 0)


def test_no_references_are_kept_or_lost() -> None:
    c = c_format()
    key, value, raw = "k" + str(id(c)), "v" + str(id(c)), "\n" + str(id(c))
    lazy_text = "\tx=" + str(id(c))  # no line end: built at any depth
    big = 2**80
    trees = [
        Section([(key, value), (key, [value, big]), (key, MarkedList([value])), (key, Section(raw=raw))]),
        Section([(key, value), (key, 1.5)]),  # None
        Section([(key, Section(raw=lazy_text))]),  # depth 0: built
        Section([(key, value), (key, Section(raw="\tx = {"))]),  # an error
    ]
    objects = [key, value, raw, big, lazy_text, *trees]
    for tree in trees:  # once first: lazy children built, the parser's memos filled
        try:
            c(tree, 0)
        except ParseError:
            pass
    before = [sys.getrefcount(o) for o in objects]
    for tree in trees:
        for _ in range(50):
            try:
                c(tree, 0)
            except ParseError:
                pass
    assert [sys.getrefcount(o) for o in objects] == before


def test_format_tree_is_the_accelerators_when_it_is_in_use() -> None:
    if codec._accel is None:
        assert codec._format_tree_accel is None
    else:
        assert codec._format_tree_accel is codec._accel.format_tree


# ---------------------------------------------------------------------------
# the recorded traffic


def test_equal_on_every_tree_of_the_recorded_traffic() -> None:
    c = c_format()
    written = 0
    for text in corpus_texts():
        for lazy in (frozenset(), LAZY_NAMES):
            try:
                tree = parse(text, lazy)
            except ParseError:
                continue
            for depth in (0, 1):  # lazy bodies echoed at 0, built and written at 1
                got = c(tree, depth)  # lazy children built here are built for the reference too
                assert got is not None, text[:200]
                assert got == codec._format_tree_py(tree, depth)
                written += 1
            stack = [(tree, 0)]
            while stack:  # every section at the depth of its place, as the handlers write them
                section, depth = stack.pop()
                assert c(section, depth) == codec._format_tree_py(section, depth)
                stack += [(v, depth + 1) for _, v in section.items if isinstance(v, Section)]
    assert written > 30_000


# ---------------------------------------------------------------------------
# hypothesis trees

odd_keys = st.one_of(
    st.sampled_from([*ODD_KEYS, "id", "status", 'q"', "b\\", "\u2028", "\x85"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=6),
)
texts = st.one_of(st.text('ab"\\é\n\t{}\u2028😀', max_size=6), st.text(max_size=8))
atom_values = st.one_of(
    texts,
    st.integers(-3, 3),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(-2, 2, allow_nan=False),
    st.booleans(),
)
value_nodes: st.SearchStrategy[Node] = st.one_of(
    atom_values,  # type: ignore[arg-type]
    st.lists(atom_values, max_size=3),
    st.lists(atom_values, max_size=3).map(MarkedList),
    st.lists(st.one_of(texts, st.integers()), min_size=1, max_size=1),
)


@st.composite
def lazy_of(draw: st.DrawFn, section: Section) -> Section:
    """``section`` kept as its text for some depth: the one it is written at, or another."""
    depth = draw(st.integers(0, 36))  # of the body: the key's is one less
    if not handled(section):
        return section  # floats, bools: not the writer's own text
    text = "\n" + codec._format_tree_py(section, depth) + "\t" * max(0, min(depth - 1, 32))
    try:
        parse(text) if text.strip() else None
    except ParseError:
        return section  # wide ints, empty keys: no text that reads back
    return Section(raw=text)


def sections_of(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Section]:
    eager = st.lists(st.tuples(odd_keys, children), max_size=4).map(Section)
    return st.one_of(eager, eager.flatmap(lazy_of))


hypothesis_trees = sections_of(st.recursive(value_nodes, sections_of, max_leaves=14))


@settings(max_examples=400, deadline=None)
@given(hypothesis_trees, st.integers(-2, 40))
def test_equal_on_hypothesis_trees(tree: Section, depth: int) -> None:
    agree(tree, depth)
    agree(tree.items, depth)


@st.composite
def deep_trees(draw: st.DrawFn) -> tuple[Section, int]:
    node = draw(hypothesis_trees)
    for key in draw(st.lists(odd_keys, min_size=30, max_size=45)):
        node = Section([(key, node), *draw(st.lists(st.tuples(odd_keys, value_nodes), max_size=2))])
    return node, draw(st.integers(-3, 3))


@settings(max_examples=60, deadline=None)
@given(deep_trees())
def test_equal_on_trees_nested_past_the_indent_cap(case: tuple[Section, int]) -> None:
    agree(*case)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_parse_of_the_c_writers_text_gives_the_tree_back(tree: Section) -> None:
    text = c_format()(tree, 0)
    floats = any(type(v) is float or (isinstance(v, list) and float in map(type, v)) for v in values_of(tree))
    assert (text is None) == floats
    if text is not None:
        assert text == codec._format_tree_py(tree, 0)
        assert parse(text) == tree


def values_of(node: Node) -> list[Node]:
    if isinstance(node, Section):
        return [w for _, v in node.items for w in values_of(v)]
    return [node]

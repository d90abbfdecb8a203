"""The C compare_trees (_ccodec.compare_trees) against the Python reference.

codec._compare_trees_py is LVM's compare_config in Python; the accelerator
walks the trees in C and hands every value pair other than two ints or two
strs back to codec._compare_values.  Both must give the same result, raise
the same errors, and build the same lazy sections' children (a lazy section
is parsed only when its text differs from the other's), on the recorded
traffic and on hypothesis trees.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Node, ParseError, Section
from support.ccodec import accelerator
from support.skips import unavailable
from wire.test_codec_fast import corpus_texts

#: sections the traffic's tests parse lazily (their bodies are kept as text when canonical)
LAZY_NAMES = frozenset(
    {"pvmeta", "mda0", "da0", "ba0", "metadata", "physical_volumes", "logical_volumes", "pv0", "pv1", "segment1"}
)


def c_compare() -> Callable[[Any, Any], int]:
    c: ModuleType | None = accelerator()
    if c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    assert c is not None
    c.configure_compare(codec._compare_values)  # a module compiled for the tests is not configured yet
    fn: Callable[[Any, Any], int] = c.compare_trees
    return fn


def built(node: object) -> object:
    """Which lazy sections have their children built: the trace a comparison leaves."""
    if isinstance(node, Section):
        if node._items is None:
            return ("lazy", node.raw)
        return [(k, built(v)) for k, v in node._items]
    if isinstance(node, list):
        return [built(item) for item in node]
    return node


def outcome(fn: Callable[[Any, Any], int], a: Any, b: Any) -> tuple[object, object]:
    try:
        return fn(a, b), (built(a), built(b))
    except Exception as e:  # the same error both ways is the point
        return type(e), (built(a), built(b))


def agree(a: Any, b: Any) -> int:
    """Both ways on fresh copies (lazy sections unbuilt in each): the same result and trace."""
    c = c_compare()
    pa, pb = copy.deepcopy(a), copy.deepcopy(b)
    python = outcome(codec._compare_trees_py, pa, pb)
    ca, cb = copy.deepcopy(a), copy.deepcopy(b)
    accelerated = outcome(c, ca, cb)
    assert accelerated == python
    result = python[0]
    assert isinstance(result, int)
    return result


# ---------------------------------------------------------------------------
# the recorded traffic


def traffic_sections() -> dict[str, list[Section]]:
    """Every distinct section of the traffic by name, as a lazy parse leaves it (unbuilt)."""
    groups: dict[str, dict[str, Section]] = defaultdict(dict)

    def walk(section: Section, name: str) -> None:
        text = section.raw if section.raw is not None else codec.format_tree(section)
        groups[name].setdefault(("lazy " if section.raw is not None else "") + text, copy.deepcopy(section))
        for key, value in section.items:
            if isinstance(value, Section):
                walk(value, key)

    for text in corpus_texts():
        try:
            walk(codec.parse(text, LAZY_NAMES), "")
        except ParseError:
            continue
    return {name: [d[text] for text in sorted(d)] for name, d in groups.items()}


@pytest.fixture(scope="module")
def sections() -> dict[str, list[Section]]:
    c_compare()
    return traffic_sections()


def test_equal_on_the_traffics_sections_of_one_name(sections: dict[str, list[Section]]) -> None:
    """Each distinct section against its 2 neighbours in text order (nearly equal) and itself."""
    nonzero = zero = 0
    for group in sections.values():
        for i, a in enumerate(group):
            for b in group[i : i + 3]:
                for x, y in ((a, b), (b, a)):
                    if agree(x, y):
                        nonzero += 1
                    else:
                        zero += 1
    assert nonzero > 1000 and zero > 1000  # both outcomes are exercised


def test_equal_on_random_pairs_of_the_traffics_sections(sections: dict[str, list[Section]]) -> None:
    everything = [s for group in sections.values() for s in group]
    rng = random.Random(17)
    for _ in range(3000):
        agree(rng.choice(everything), rng.choice(everything))
    for group in sections.values():
        for _ in range(min(200, len(group))):
            agree(rng.choice(group), rng.choice(group))


def test_a_pv_found_of_a_known_pv_compares_equal_without_parsing_its_pvmeta() -> None:
    c = c_compare()
    text = codec.format_tree(codec.parse("pvmeta { device = 2049 mda0 { ignore = 0 size = 1044480 } }"))
    a, b = codec.parse(text, LAZY_NAMES), codec.parse(text, LAZY_NAMES)
    pa, pb = a.child("pvmeta"), b.child("pvmeta")
    assert isinstance(pa, Section) and isinstance(pb, Section)
    assert pa.raw is not None and pa.raw == pb.raw and pa.raw is not pb.raw
    assert c(pa, pb) == 0 and c(a, b) == 0
    assert pa._items is None and pb._items is None  # equal lazy texts: neither parsed


def test_lazy_bodies_that_differ_are_parsed_and_compared() -> None:
    c = c_compare()

    def pvmeta(body: str) -> Section:
        canonical = codec.format_tree(codec.parse("pvmeta {" + body + "}"))
        section = codec.parse(canonical, LAZY_NAMES).child("pvmeta")
        assert isinstance(section, Section) and section.raw is not None
        return section

    same = pvmeta('\tdevice = 2049\n\tformat = "lvm2"\n')
    larger = pvmeta('\tdevice = 2050\n\tformat = "lvm2"\n')
    longer = pvmeta('\tdevice = 2049\n\tformat = "lvm2"\n\textra = 1\n')
    renamed = pvmeta('\tdev = 2049\n\tfmt = "lvm2"\n')  # keys are not compared
    assert agree(same, larger) == -1 and agree(larger, same) == 1
    assert agree(same, longer) == -1 and agree(longer, same) == 1
    assert agree(same, renamed) == 0
    assert c(same, renamed) == 0 and same._items is not None  # parsed to compare


# ---------------------------------------------------------------------------
# hypothesis trees

atoms = st.one_of(
    st.integers(-3, 3),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.text('ab"é', max_size=3),
    st.floats(-2, 2, allow_nan=False),
    st.sampled_from([0.1, 0.1 + 1e-17, 1e300, -0.0, 0.0]),
)
values = st.one_of(atoms, st.lists(atoms, max_size=3))


def lazy_copy(section: Section) -> Section:
    """The same section kept as its canonical text, as a lazy parse leaves it (when the text
    parses back: ints past 64 bits do not, and stay eager)."""
    text = codec.format_tree(section, 1)
    try:
        codec.parse(text) if text.strip() else None
    except ParseError:
        return section
    return Section(raw=text)


def sections_of(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Section]:
    pairs = st.lists(st.tuples(st.sampled_from(["a", "b", "id"]), children), max_size=4)
    eager = pairs.map(Section)
    return st.one_of(eager, eager.map(lazy_copy))


nodes: st.SearchStrategy[Node] = st.recursive(values, sections_of, max_leaves=12)
trees = sections_of(nodes)


def mutated(draw: st.DrawFn, node: Node) -> Node:
    """``node`` with some of its values redrawn, pairs dropped or added: a nearly equal tree."""
    if isinstance(node, Section):
        items = [(k, mutated(draw, v)) for k, v in node.items if draw(st.integers(0, 9))]
        if draw(st.booleans()) and draw(st.booleans()):
            items.append(("z", draw(nodes)))
        new = Section(items)
        return lazy_copy(new) if draw(st.booleans()) else new
    return draw(values) if not draw(st.integers(0, 3)) else node


@st.composite
def near_pairs(draw: st.DrawFn) -> tuple[Section, Section]:
    a = draw(trees)
    b = mutated(draw, a)
    assert isinstance(b, Section)
    return a, b


@settings(max_examples=250, deadline=None)
@given(trees, trees)
def test_equal_on_arbitrary_trees(a: Section, b: Section) -> None:
    agree(a, b)
    agree(a.items, b.items)


@settings(max_examples=200, deadline=None)
@given(near_pairs())
def test_equal_on_nearly_equal_trees(pair: tuple[Section, Section]) -> None:
    a, b = pair
    agree(a, b)
    agree(b, a)
    assert agree(a, copy.deepcopy(a)) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=4), st.lists(values, max_size=4))
def test_the_value_pairs_are_decided_by_compare_values(xs: list[object], ys: list[object]) -> None:
    a = Section([(f"a{i}", v) for i, v in enumerate(xs)])  # type: ignore[misc]
    b = Section([(f"b{i}", v) for i, v in enumerate(ys)])  # type: ignore[misc]
    expected = next((r for r in (codec._compare_values(x, y) for x, y in zip(xs, ys, strict=False)) if r), None)  # type: ignore[arg-type]
    if expected is None:
        expected = (len(xs) > len(ys)) - (len(xs) < len(ys))
    assert c_compare()(a, b) == expected == agree(a, b)


def test_errors_propagate_as_the_reference_raises_them() -> None:
    weird: list[tuple[Any, Any]] = [
        (Section([("a", None)]), Section([("a", "x")])),  # type: ignore[list-item]  # None orders as a str: < raises
        ([("a", 1)], [("a",)]),  # a pair without a value: IndexError
        ([("a", 1)], [5]),  # not a pair: TypeError
        (Section([("a", 1)]), [("a", 1)]),  # a Section against a list
        ([("a", 1)], "not a list"),
    ]
    c = c_compare()
    for a, b in weird:
        with pytest.raises(Exception) as python:
            codec._compare_trees_py(a, b)
        with pytest.raises(python.type):
            c(a, b)


def test_deep_trees_are_bounded_by_the_recursion_limit() -> None:
    c = c_compare()
    a: Section = Section([("v", 1)])
    for _ in range(100_000):
        a = Section([("s", a)])
    with pytest.raises(RecursionError):
        c(a, a)


def test_compare_trees_is_the_accelerators_when_it_is_in_use() -> None:
    if codec._accel is None:
        assert codec.compare_trees is codec._compare_trees_py
    else:
        assert codec.compare_trees is codec._accel.compare_trees

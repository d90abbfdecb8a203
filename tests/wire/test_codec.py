"""The config-text codec: every syntax element, LVM's value model, errors, round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire.codec import (
    MarkedList,
    ParseError,
    Section,
    Value,
    compare_trees,
    format_simple,
    format_tree,
    format_value,
    parse,
)
from support.paths import conformance_dir

# ---------------------------------------------------------------------------
# syntax elements
# ---------------------------------------------------------------------------


def test_key_value_with_and_without_spaces() -> None:
    tree = parse('a=1\nb = 2\nc ="x"\nd= "y"')
    assert tree.items == [("a", 1), ("b", 2), ("c", "x"), ("d", "y")]


def test_line_breaks_have_no_meaning() -> None:
    assert parse("a=1 b=2").items == [("a", 1), ("b", 2)]


def test_nested_and_empty_sections_keep_order() -> None:
    tree = parse("outer {\n inner {\n }\n z=1\n a=2\n}\nlast=3")
    outer = tree.section("outer")
    assert outer is not None
    assert outer.keys() == ["inner", "z", "a"]
    assert tree.section("outer/inner") is not None
    assert len(tree.section("outer/inner") or Section([("x", 1)])) == 0
    assert tree.keys() == ["outer", "last"]


def test_strings_with_escapes() -> None:
    tree = parse(r'a="q\"uote" b="back\\slash" c="keep\n" d="#not a comment"')
    assert tree.get_str("a") == 'q"uote'
    assert tree.get_str("b") == "back\\slash"
    assert tree.get_str("c") == "keep\\n"  # other escapes stay literal, as in LVM
    assert tree.get_str("d") == "#not a comment"


def test_single_quoted_and_bare_word_values() -> None:
    tree = parse("request=vg_list token='skip'")
    assert tree.get_str("request") == "vg_list"
    assert tree.get_str("token") == "skip"


def test_integers_are_64_bit_signed_with_c_quirks() -> None:
    tree = parse("a=-7 b=+5 c=9223372036854775807 d=-9223372036854775808 e=010 f=08 g=-")
    assert [v for _, v in tree.items] == [-7, 5, 2**63 - 1, -(2**63), 8, 0, 0]


def test_integer_out_of_range_is_an_error_except_creation_time() -> None:
    with pytest.raises(ParseError):
        parse("a=9223372036854775808")
    assert parse("creation_time=99999999999999999999").get_int64("creation_time") == 1527120000


def test_floats() -> None:
    tree = parse("a=2.5 b=.5 c=1.")
    assert tree.items == [("a", 2.5), ("b", 0.5), ("c", 1.0)]
    assert format_tree(parse("a=2.5")) == "a=2.500000\n"


def test_lists_follow_lvms_value_model() -> None:
    tree = parse('one=["a"] two=["a","b"] empty=[] nums=[1, 2, 3] trailing=[1,] strings=["a" "b"]')
    assert tree.child("one") == "a"  # a one-atom list *is* the atom
    assert tree.child("two") == ["a", "b"]
    assert tree.child("empty") == []
    assert tree.child("nums") == [1, 2, 3]
    assert tree.child("trailing") == 1
    assert tree.child("strings") == ["a", "b"]


def test_writer_prints_one_atom_lists_as_scalars_except_marked_lists() -> None:
    assert format_tree(parse('status=["ALLOCATABLE"]')) == 'status="ALLOCATABLE"\n'
    assert format_value(["a", "b"]) == '["a","b"]'
    assert format_value([]) == "[]"
    assert format_value(MarkedList(["MISSING"])) == '["MISSING"]'


def test_comments_are_ignored() -> None:
    tree = parse("# header\na=1 # trailing\n#b=2\nc { # in a section\n d=1\n}")
    assert tree.keys() == ["a", "c"]


def test_uuid_and_number_keys() -> None:
    tree = parse('Rmi91v-g3it-f5xv-XBmP-etBe-EuHO-V4i3px {\n x=1\n}\n2064 = "PV0002"')
    assert tree.keys() == ["Rmi91v-g3it-f5xv-XBmP-etBe-EuHO-V4i3px", "2064"]


def test_path_keys_build_nested_sections() -> None:
    tree = parse("a/b/c=4 a/b/d=5")
    assert tree.get_int64("a/b/c") == 4
    assert tree.get_int64("a/b/d") == 5


def test_duplicate_keys_are_kept_and_first_wins() -> None:
    tree = parse('token="skip" token="other"')
    assert len(tree.items) == 2
    assert tree.get_str("token") == "skip"


def test_nul_ends_the_text() -> None:
    assert parse("a=1\0 garbage {{{").items == [("a", 1)]


def test_getters_follow_lvm() -> None:
    tree = parse('s="" i=4294967296 j=2147483648 f=1.5 l=["x","y"] sec { }')
    assert tree.get_str("s") is None  # empty string reads as absent
    assert tree.get_str_allow_empty("s") == ""
    assert tree.get_int("i", -1) == 0  # low 32 bits
    assert tree.get_int("j", -1) == -(2**31)
    assert tree.get_int("f", -1) == -1  # a float is not an int
    assert tree.get_str("l") == "x"  # a list reads as its first atom
    assert tree.get_str("sec") is None
    assert tree.get_float("f") == 1.5
    assert tree.find("sec/x") is None
    assert tree.find("i/x") is None


# ---------------------------------------------------------------------------
# errors carry their position
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("", 1, 1),
        ("   # only a comment\n", 2, 1),
        ("a = 1\nb", 2, 2),
        ("a = 1\nb c", 2, 3),
        ("a {\n b=1\n", 3, 1),
        ("}", 1, 1),
        ("a = [1 2]", 1, 8),
        ("a = 0x10", 1, 5),
        ("a = [1,", 1, 8),
        ('a = "open', 1, 5),
        ('"" = 1', 1, 1),
        ("a = 1.2.3", 1, 5),
        ("a = }", 1, 5),
    ],
)
def test_errors_report_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(info.value)


# ---------------------------------------------------------------------------
# comparison (LVM's loose compare_config)
# ---------------------------------------------------------------------------
def test_compare_ignores_keys_and_longer_lists_equal_their_prefix() -> None:
    assert compare_trees(parse("a=1"), parse("b=1")) == 0
    assert compare_trees(parse('a=["x","y"]'), parse('a=["x"]')) == 0
    assert compare_trees(parse("a=1"), parse("a=2")) < 0
    assert compare_trees(parse('a="x"'), parse("a=1")) > 0  # int < float < string
    assert compare_trees(parse("a=1 b=2"), parse("a=1")) > 0
    assert compare_trees(parse("a { x=1 }"), parse("a { x=1 }")) == 0
    assert compare_trees(parse("a { x=1 }"), parse("a { x=2 }")) != 0


compared_values = st.one_of(
    st.integers(-3, 3),
    st.text("ab", max_size=2),
    st.floats(-2, 2, allow_nan=False),
    st.lists(st.one_of(st.integers(-3, 3), st.text("ab", max_size=2)), max_size=3),
)


@given(st.lists(compared_values, max_size=4), st.lists(compared_values, max_size=4))
def test_compare_of_values_is_the_first_difference_by_compare_values(xs: list[Value], ys: list[Value]) -> None:
    """compare_trees' inlined int/str case decides as _compare_values does, for every value pair."""
    from pylvmetad.wire.codec import _compare_values

    expected = next((r for r in (_compare_values(x, y) for x, y in zip(xs, ys, strict=False)) if r), None)
    if expected is None:
        expected = (len(xs) > len(ys)) - (len(xs) < len(ys))
    a = Section([(f"a{i}", v) for i, v in enumerate(xs)])
    b = Section([(f"b{i}", v) for i, v in enumerate(ys)])
    assert compare_trees(a, b) == expected
    if xs and ys:  # an empty section's children are not compared
        assert compare_trees(Section([("s", a)]), Section([("s", b)])) == expected


# ---------------------------------------------------------------------------
# lazy sections
# ---------------------------------------------------------------------------
LV_TEXT = """metadata {
\tid="abc"
\tseqno=3
\tlogical_volumes {
\t\tlvol0 {
\t\t\tid="lv-0"
\t\t\tstatus=["READ","WRITE","VISIBLE"]
\t\t\tsegment_count=1
\t\t\tsegment1 {
\t\t\t\tstart_extent=0
\t\t\t\tstripes=["pv0",0]
\t\t\t}
\t\t}
\t}
}
"""


def test_lazy_section_keeps_canonical_text_and_parses_on_demand() -> None:
    lazy = parse(LV_TEXT, frozenset({"logical_volumes"}))
    eager = parse(LV_TEXT)
    lvs = lazy.section("metadata/logical_volumes")
    assert lvs is not None and lvs.raw is not None
    assert lazy == eager
    assert parse(format_tree(lazy)) == eager
    assert lazy.get_str("metadata/logical_volumes/lvol0/id") == "lv-0"


@pytest.mark.parametrize(
    "body",
    [
        'x=["one"]',  # would be rewritten as a scalar
        "x=010",  # octal
        "x=+5",
        "x=bare",  # bare words become strings
        "a/b=1",  # path key
        "x='single'",
        "# comment with { brace\n x=1",
    ],
)
def test_lazy_section_falls_back_to_eager_when_text_is_not_canonical(body: str) -> None:
    text = f"metadata {{\n logical_volumes {{\n {body}\n }}\n}}\n"
    lazy = parse(text, frozenset({"logical_volumes"}))
    assert lazy == parse(text)
    assert parse(format_tree(lazy)) == parse(text)


def test_lazy_head_inside_a_string_is_not_cut() -> None:
    text = 'a="x\nlogical_volumes {\n}"\nb=1\n'
    assert parse(text, frozenset({"logical_volumes"})) == parse(text)


# ---------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.+\-]{0,12}", fullmatch=True)
strings = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9).map(lambda f: float("%f" % f))
atoms = st.one_of(strings, ints, floats)
values: st.SearchStrategy[Value] = st.one_of(atoms, st.just([]), st.lists(atoms, min_size=2, max_size=4))


def sections(depth: int = 3) -> st.SearchStrategy[Section]:
    leaf = st.tuples(keys, values)
    if depth == 0:
        children = st.lists(leaf, max_size=4)
    else:
        children = st.lists(st.one_of(leaf, st.tuples(keys, st.deferred(lambda: sections(depth - 1)))), max_size=4)
    return children.map(Section)


documents = st.lists(st.one_of(st.tuples(keys, values), st.tuples(keys, sections())), min_size=1, max_size=5).map(
    Section
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_parse_of_format_gives_the_tree_back(tree: Section) -> None:
    assert parse(format_tree(tree)) == tree


@settings(max_examples=300, deadline=None)
@given(documents)
def test_format_of_parse_is_a_fixed_point(tree: Section) -> None:
    text = format_tree(tree)
    assert format_tree(parse(text)) == text
    lazy = parse(text, frozenset({k for k, v in tree.items if isinstance(v, Section)}))
    assert format_tree(parse(format_tree(lazy))) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        tree = parse(text)
    except ParseError:
        return
    assert parse(format_tree(tree)) == tree


def test_simple_layout() -> None:
    text = format_simple("failed", [("reason", "need VG UUID"), ("n", 3)])
    assert text == 'response = "failed"\nreason = "need VG UUID"\nn = 3\n'
    assert parse(text).get_str("reason") == "need VG UUID"


def test_every_recorded_request_and_reply_parses() -> None:
    count = 0
    for path in sorted(conformance_dir().glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "request" not in row:
                continue
            for field in ("request", "response"):
                body = row[field][:-4]
                tree = parse(body)
                assert parse(format_tree(tree)) == tree
                count += 1
    assert count > 10000


@given(
    st.lists(
        st.sampled_from(["logical_volumes", "historical_logical_volumes", "lv", " ", "\t", "\n", "{", "x", "_", '"']),
        max_size=30,
    ),
    st.integers(0, 40),
)
def test_the_head_search_starting_at_the_first_name_finds_what_the_regex_finds(parts: list[str], pos: int) -> None:
    from pylvmetad.wire import codec

    text = "".join(parts)
    lazy = frozenset({"logical_volumes", "historical_logical_volumes"})
    head = codec.DEFAULT_PARSER._head(lazy)
    expected = head.search(text, pos)
    found = codec._search_head(head, lazy, text, pos)
    assert (found and (found.span(), found.groups())) == (expected and (expected.span(), expected.groups()))

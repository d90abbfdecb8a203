"""The codec's fast path and lazy sections give the general parser's tree.

``parse`` first tries a findall-based parser for the common subset of the
syntax and keeps canonical ``logical_volumes`` bodies as text; both must be
invisible: same tree (or the same refusal) as the token-by-token parser.
"""

from __future__ import annotations

import json

import pytest

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Node, ParseError, Section, format_tree, parse
from support.paths import conformance_dir

LAZY = frozenset({"logical_volumes", "historical_logical_volumes"})


def expand(node: Node) -> object:
    """A comparable form: sections fully parsed, atoms tagged with their type."""
    if isinstance(node, Section):
        return [(k, expand(v)) for k, v in node.items]
    if isinstance(node, list):
        return ("list", [expand(a) for a in node])
    return (type(node).__name__, node)


def eager(text: str) -> object:
    try:
        return expand(codec._parse_eager(text.split("\0")[0]))
    except (ParseError, RecursionError):
        return "error"


def via_parse(text: str, lazy: frozenset[str]) -> object:
    try:
        return expand(parse(text, lazy))
    except (ParseError, RecursionError):
        return "error"


def corpus_texts() -> list[str]:
    texts = []
    for path in sorted(conformance_dir().glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            for field in ("request", "response"):
                text = record.get(field, "")
                if text.endswith("\n##\n"):
                    texts.append(text[:-4])
    return texts


def test_fast_and_lazy_parses_match_the_general_parser_on_recorded_traffic() -> None:
    fast = lazy_bodies = 0
    for text in corpus_texts():
        want = eager(text)
        assert via_parse(text, frozenset()) == want
        assert via_parse(text, LAZY) == want
        if codec._run(codec.DEFAULT_PARSER._fast(text.split("\0")[0], LAZY)) is not None:
            fast += 1
        if want != "error":
            tree = parse(text, LAZY)
            for _, section in walk(tree):
                if section.raw is not None:
                    lazy_bodies += 1
                    # echoing the body reads back as re-writing its tree
                    if section.raw.strip():
                        assert expand(parse(section.raw)) == expand(parse(format_tree(Section(section.items))))
    assert fast > 0.9 * len(corpus_texts())
    assert lazy_bodies > 100  # real LVM texts do take the lazy path


def walk(section: Section) -> list[tuple[str, Section]]:
    out = []
    for key, child in section.sections():
        out.append((key, child))
        if child.raw is None:
            out.extend(walk(child))
    return out


LV = 'lv0 {\n\t\t\tid="x"\n\t\t\tstatus=["READ","VISIBLE"]\n\t\t\tsegment1 {\n\t\t\t\tstripes=["pv0",0]\n\t\t\t}\n\t\t}'


@pytest.mark.parametrize(
    "body,lazy_kept",
    [
        (f"\n\t\t{LV}\n\t", True),
        ("\n\t", True),  # an empty section as the writer prints it at this depth
        ("\n", False),  # the same tree in another layout: re-written
        ("\n\t\tlv0 {\n\t\t\tx = 1\n\t\t}\n\t", False),  # spaces around "="
        ('\n\t\tlv0 {\n\t\t\tx=["a", "b"]\n\t\t}\n\t', False),  # space after ","
        ("\n    lv0 {\n    }\n\t", False),  # spaces for indentation
        ("\n\t\tlv0 {\n\t\t\tx=1.500000\n\t\t}\n\t", True),  # %f form reads back the same
        ("\n\t\tlv0 {\n\t\t\tx=1.5\n\t\t}\n\t", False),  # would be re-written as 1.500000
        ("\n\t\tlv0 {\n\t\t\tx=0.1234567\n\t\t}\n\t", False),
        ("\n\t\tlv0 {\n\t\t\tx=-0\n\t\t}\n\t", False),
        ("\n\t\tlv0 {\n\t\t\tx=010\n\t\t}\n\t", False),  # octal
        ('\n\t\tlv0 {\n\t\t\tx=["a"]\n\t\t}\n\t', False),  # one-atom list is written as a scalar
        ('\n\t\tlv0 {\n\t\t\tx="a\\nb"\n\t\t}\n\t', False),  # the writer would escape the backslash
        ('\n\t\tlv0 {\n\t\t\tx="a\\"b"\n\t\t}\n\t', True),
        ("\n\t\tlv0 { # comment\n\t\t}\n\t", False),
        ("\n\t\tlv0 {\n\t\t\ta/b=1\n\t\t}\n\t", False),  # path key
        ("\n\t\tlv0 {\n\t\t\tx='q'\n\t\t}\n\t", False),
        ('\n\t\tlv0 {\n\t\t\tx="}"\n\t\t}\n\t', True),  # a brace inside a string
        ("\n" + "a {\n" * 7 + "}\n" * 7, False),  # deeper than LAZY_MAX_DEPTH
    ],
)
def test_lazy_body_kept_only_when_canonical(body: str, lazy_kept: bool) -> None:
    text = f'request="vg_update"\nmetadata {{\n\tid="v"\n\tseqno=3\n\tlogical_volumes {{{body}}}\n}}\ntoken="t"\n'
    for lazy in (LAZY, frozenset()):
        assert via_parse(text, lazy) == eager(text)
    lvs = parse(text, LAZY).section("metadata/logical_volumes")
    assert lvs is not None
    assert (lvs.raw is not None) == lazy_kept


@pytest.mark.parametrize(
    "text",
    [
        'a = 1\nb { c = "x" d = [1, "2"] e = [] f = ["only"] }',
        'a="x"b="y"',  # no whitespace between statements
        "a = -5\nb = 0\nc = 123456789012345678",
        "a = 9223372036854775807",  # 19 digits: general parser
        "a = 99999999999999999999",  # out of range: refused
        "a = 1.5\nb = 007\nc = +3\nd = word\ne = 'sq'",
        'a = [1,]\nb = ["x" "y"]',
        '"quoted key" = 1',
        "a/b/c = 1\na/b/d = 2",
        "a { b = 1",
        "}",
        "a = 1 }",
        "",
        "   \n",
        "# only a comment",
        'x = "unterminated',
        "x = 5abc",
        "logical_volumes {\n\tlv { x = 1 }\n}\nlogical_volumes {\n\ty = 2\n}\n",
        'a = "\nlogical_volumes {\n"\nb = 1',  # the head is inside a string
        "logical_volumes {\n\tx = 1\n",  # unclosed
        "a\0 = 1",
    ],
)
def test_edge_cases_match_the_general_parser(text: str) -> None:
    for lazy in (LAZY, frozenset()):
        assert via_parse(text, lazy) == eager(text), (text, lazy)


def test_memo_of_checked_bodies_returns_what_the_regex_would() -> None:
    body = "\n" + "".join(f'\t\tlv{i} {{\n\t\t\tid="{i}"\n\t\t\tsize={i}\n\t\t}}\n' for i in range(100)) + "\t"
    text = f"metadata {{\n\tlogical_volumes {{{body}}}\n}}\n"
    first = parse(text, LAZY)
    assert (1, body) in codec.DEFAULT_PARSER.verified
    # the same body followed by more text, and a body that extends it: both re-derived correctly
    again = parse(text + 'x = "y"\n', LAZY)
    longer = text.replace("\t}\n}\n", "\t\tz=1\n\t}\n}\n", 1)
    for t in (text, text + 'x = "y"\n', longer):
        assert via_parse(t, LAZY) == eager(t)
    lvs = again.section("metadata/logical_volumes")
    assert lvs is not None and lvs.raw == body
    assert first.section("metadata/logical_volumes") == lvs


def test_comparing_equal_lazy_sections_parses_neither() -> None:
    """pv_found of a PV of a known VG compares its metadata with the stored copy (issue 17's 0.08x row)."""
    body = "\n" + "".join(f'\t\tlv{i} {{\n\t\t\tid="{i}"\n\t\t\tsize={i}\n\t\t}}\n' for i in range(50)) + "\t"
    text = f'metadata {{\n\tid="v"\n\tseqno=3\n\tlogical_volumes {{{body}}}\n}}\n'
    a, b = (parse(text, LAZY).section("metadata") for _ in range(2))
    assert a is not None and b is not None
    assert codec.compare_trees(a, b) == 0
    for tree in (a, b):
        lvs = tree.section("logical_volumes")
        assert lvs is not None and lvs.raw == body and lvs._items is None  # still text
    # a different body is still compared by content
    c = parse(text.replace("size=7\n", "size=8\n"), LAZY).section("metadata")
    assert c is not None and codec.compare_trees(a, c) != 0

"""The accelerator's ``cut_lazy`` cuts a text exactly as ``Parser._cut_lazy_py`` does.

``Parser._cut_lazy`` without the head check (the fast paths') is one C call;
the Python loop beside it is the reference.  Both are run from the same memo
state and must give the same pieces and bodies and leave the same memo
(``Parser.verified``: its order, its depths, its bodies), on every recorded
request and reply (cold and with the memo warmed by the traffic before it)
and under hypothesis: heads in odd layouts (spaces, no space, a space before
the name, a longer name that ends with a lazy one, a head inside a string),
canonical and nearly canonical bodies, several heads, more than eight bodies
that are not canonical (the cut-off), and small memo budgets, so that its
trimming runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Parser
from support.ccodec import accelerator
from wire.test_codec_accel import lazy_bodies, require_accelerator
from wire.test_codec_fast import LAZY, corpus_texts

Cut = tuple[list[str], list[str]]


class SmallMemo(Parser):
    """Budgets small enough that generated bodies fill the memo and get trimmed."""

    VERIFIED_MAX = 2
    VERIFIED_CHARS = 80
    VERIFIED_MIN_CHARS = 4


@contextmanager
def accelerated() -> Iterator[None]:
    saved, codec._accel = codec._accel, accelerator()
    try:
        yield
    finally:
        codec._accel = saved


def same_cuts(reference: Parser, fast: Parser, text: str, lazy: frozenset[str]) -> Cut:
    """Cut ``text`` with both parsers (equal memos before); assert the same result and memo after."""
    assert reference.verified == fast.verified
    want = reference._cut_lazy_py(text, lazy, check_head=False)
    with accelerated():
        assert codec._accel is not None
        direct = codec._accel.cut_lazy(text, tuple(sorted(lazy)), list(fast.verified), *budgets(fast))
        got = fast._cut_lazy(text, lazy, check_head=False)
    if direct is NotImplemented:  # wider characters: the reference ran
        assert any(ord(c) > 255 for c in text + "".join(lazy))
    else:
        assert tuple(direct) == want
    assert (list(got[0]), list(got[1])) == (list(want[0]), list(want[1])), text[:300]
    assert fast.verified == reference.verified
    assert "".join(p + r for p, r in zip(got[0], got[1] + [""], strict=True)) == text
    return got


def budgets(parser: Parser) -> tuple[int, ...]:
    return (
        parser.VERIFIED_MIN_CHARS,
        parser.VERIFIED_CHARS // 2,
        parser.VERIFIED_MAX,
        parser.VERIFIED_CHARS,
        codec.LAZY_MAX_DEPTH,
        codec.LAZY_MAX_CHARS,
    )


def test_the_accelerator_cuts_recorded_traffic_as_the_reference_does() -> None:
    require_accelerator()
    warm_reference, warm_fast = Parser(), Parser()
    small_reference, small_fast = SmallMemo(), SmallMemo()
    bodies = 0
    for text in corpus_texts():
        text = text.split("\0")[0]
        for lazy in (LAZY, frozenset({"logical_volumes"}), frozenset({"physical_volumes", "segment1"})):
            same_cuts(Parser(), Parser(), text, lazy)
        _, raws = same_cuts(warm_reference, warm_fast, text, LAZY)
        same_cuts(warm_reference, warm_fast, text, LAZY)  # again: from the memo
        same_cuts(small_reference, small_fast, text, LAZY)
        bodies += len(raws)
    assert bodies > 100
    assert warm_fast.verified  # the memo was used


head_name = st.sampled_from(
    ["logical_volumes", "historical_logical_volumes", "xlogical_volumes", "logical_volumes_", "lv", "logical"]
)
head_gap = st.sampled_from([" ", " ", " ", "", "  ", "\t", " \t"])
head_indent = st.sampled_from(["", "\t", "\t\t", " ", "\t ", " \t", "x "])


@st.composite
def sections(draw: st.DrawFn) -> str:
    """A head (in the writer's layout, mostly) and a body (canonical, mostly) at some depth."""
    depth = draw(st.integers(0, 3))
    indent = "\t" * depth if draw(st.integers(0, 3)) else draw(head_indent)
    body = draw(lazy_bodies(depth))
    close = "\n" + "\t" * depth + draw(st.sampled_from(["}", "}", "}", " }", ""]))
    return f"{indent}{draw(head_name)}{draw(head_gap)}{{{body}{close}"


filler = st.sampled_from(
    [
        "\n",
        "\t",
        "a=1\n",
        "x {\n",
        "}\n",
        '"\nlogical_volumes {\n"\n',
        'k="logical_volumes {"\n',
        "logical_volumes",
        "logical_volumes{",
        "logical_volumes {",
        "\tlogical_volumes {x",
        "{",
        "}",
        "# logical_volumes {\n",
        "é",
        "\u20ac",
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(sections(), filler, filler), max_size=16))
    return "\n".join(parts) if draw(st.booleans()) else "".join(parts)


names = st.sampled_from(
    [
        LAZY,
        frozenset({"logical_volumes"}),
        frozenset({"logical", "logical_volumes"}),
        frozenset({"lv", "xlogical_volumes", "logical_volumes_"}),
        frozenset({"historical_logical_volumes"}),
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4), names, st.booleans())
def test_the_accelerator_cuts_generated_text_as_the_reference_does(
    texts: list[str], lazy: frozenset[str], small: bool
) -> None:
    require_accelerator()
    make = SmallMemo if small else Parser
    reference, fast = make(), make()
    for text in texts + texts:  # the second round meets the memo the first one left
        same_cuts(reference, fast, text, lazy)


@st.composite
def related_bodies(draw: st.DrawFn) -> tuple[int, list[str]]:
    """A body (a run of chunks of lines) and versions of it with chunks changed, dropped or added."""
    depth = draw(st.integers(0, 2))
    chunk = lazy_bodies(depth)
    chunks = draw(st.lists(chunk, min_size=1, max_size=6))
    versions = ["".join(chunks)]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(chunks)))
        how = draw(st.sampled_from(["change", "change", "drop", "add", "tail"]))
        if how == "change" and at < len(chunks):
            chunks[at] = draw(chunk)
        elif how == "drop" and at < len(chunks):
            del chunks[at]
        elif how == "tail":
            chunks[-1:] = (
                [chunks[-1] + draw(st.sampled_from(["", "\n", "x", "\t}", "0", "7", ",1]"]))] if chunks else []
            )
        else:
            chunks.insert(at, draw(chunk))
        versions.append("".join(chunks))
    return depth, versions


@settings(max_examples=400, deadline=None)
@given(related_bodies(), st.booleans(), st.sampled_from(["}\n", "}", "", " }", "\t}"]))
def test_a_changed_body_is_checked_as_a_new_one(case: tuple[int, list[str]], small: bool, after: str) -> None:
    """Bodies checked against a remembered one (only the lines that differ) end where a full check ends."""
    require_accelerator()
    depth, versions = case
    tabs = "\t" * depth
    reference, fast = (SmallMemo(), SmallMemo()) if small else (Parser(), Parser())
    for body in versions + versions[::-1]:
        text = f"{tabs}logical_volumes {{{body}\n{tabs}{after}"
        same_cuts(reference, fast, text, LAZY)
        start = len(f"{tabs}logical_volumes {{")
        want = codec._lazy_body_end(text, start, depth)  # the whole check, no memo
        assert fast._cut_lazy(text, LAZY, check_head=False)[1] == ([] if want < 0 else [text[start:want]])


def test_a_body_with_one_lv_changed_is_cut_as_a_new_one() -> None:
    require_accelerator()

    def lv(n: int, stamp: int | str) -> str:
        return (
            f'\n\t\tlvol{n} {{\n\t\t\tid="{n:04}"\n\t\t\tcreation_time={stamp}\n\t\t\tname="a\\"\nb"'
            f'\n\t\t\tsegment1 {{\n\t\t\t\tstripes=["pv0",0]\n\t\t\t}}\n\t\t}}'
        )

    reference, fast = Parser(), Parser()
    first: list[tuple[int, int | str]] = [(0, 1), (4, 2), (4, 3), (7, 3)]
    for changed, stamp in first:  # strings that hold what would end a line
        body = "".join(lv(n, stamp if n == changed else 0) for n in range(10))
        body = body.replace('name="a', 'name="\\"\n\t\t}\n\t\tlv {\n').replace("lvol1 {", 'v="\n\tx=1\n"\n\t\tlvol1 {')
        text = f"a {{\n\tlogical_volumes {{{body}\n\t}}\n}}\n"
        assert same_cuts(reference, fast, text, LAZY)[1] == [body + "\n\t"]
    then: list[tuple[int, int | str]] = [(0, 1), (0, 1), (0, 2), (5, 3), (9, 44), (9, 5), (3, -1), (3, "x")]
    for changed, stamp in then:
        body = "".join(lv(n, stamp if n == changed else 0) for n in range(10))
        text = f"a {{\n\tlogical_volumes {{{body}\n\t}}\n}}\n"
        raws = same_cuts(reference, fast, text, LAZY)[1]
        assert raws == ([] if stamp == "x" else [body + "\n\t"])


def test_a_line_that_grows_at_its_end_is_checked_again() -> None:
    """The text agrees with the remembered body up to the "\\n" after a value, exclusive."""
    require_accelerator()
    reference, fast = SmallMemo(), SmallMemo()
    for last in ("1", "12", "1", "12x", "12", "120", '"a"', '"a""'):
        body = f"\n\tn=5\n\tx={last}\n\ty=2"
        raws = same_cuts(reference, fast, f"logical_volumes {{{body}\n}}\n", LAZY)[1]
        assert raws == ([] if last in ("12x", '"a""') else [body + "\n"])


def test_the_cut_stops_after_nine_bodies_that_are_not_canonical() -> None:
    require_accelerator()
    bad = "logical_volumes {\n\tx = 1\n}\n"
    good = "logical_volumes {\n\tx=1\n}\n"
    for misses in (8, 9):
        _, raws = same_cuts(Parser(), Parser(), bad * misses + good, LAZY)
        assert raws == (["\n\tx=1\n"] if misses == 8 else [])


def test_a_head_counts_only_at_the_start_of_its_line() -> None:
    """After a head that is not cut, the search goes on from its brace, in the middle of a line."""
    require_accelerator()
    for text in ("logical_volumes{logical_volumes {\n\tx=1\n}\n", "logical_volumes {logical_volumes {\n\tx=1\n}\n"):
        assert same_cuts(Parser(), Parser(), text, LAZY)[1] == []
    text = "logical_volumes{\nlogical_volumes {\n\tx=1\n}\n"
    assert same_cuts(Parser(), Parser(), text, LAZY)[1] == ["\n\tx=1\n"]


def test_a_remembered_body_is_found_only_at_its_depth_and_before_its_brace() -> None:
    require_accelerator()
    body = "".join(f"\n\t\tlv{n}=1" for n in range(60))
    text = f"a {{\n\tlogical_volumes {{{body}\n\t}}\n}}\n"
    reference, fast = Parser(), Parser()
    _, raws = same_cuts(reference, fast, text, LAZY)
    assert raws == [body + "\n\t"]
    assert fast.verified == [(1, body + "\n\t")]
    # the same characters one level deeper are not the remembered body (its depth differs)
    deeper = text.replace("\n\t", "\n\t\t").replace("a {", "a {\n\tb {") + "}\n"
    same_cuts(reference, fast, deeper, LAZY)
    assert [d for d, _ in fast.verified] == [2, 1]
    # a remembered body followed by more lines is not the body
    longer = text.replace("\n\t}", "\n\t\tlv_extra=2\n\t}")
    _, raws = same_cuts(reference, fast, longer, LAZY)
    assert raws == [body + "\n\t\tlv_extra=2\n\t"]


def test_the_memo_keeps_its_budgets() -> None:
    require_accelerator()
    reference, fast = Parser(), Parser()
    for n in range(3 * Parser.VERIFIED_MAX):
        body = "".join(f"\n\tlv{n}_{k}=1" for k in range(80))
        same_cuts(reference, fast, f"logical_volumes {{{body}\n}}\n", LAZY)
    assert len(fast.verified) == Parser.VERIFIED_MAX
    assert fast.verified[0][1].startswith(f"\n\tlv{3 * Parser.VERIFIED_MAX - 1}_0=1")


def test_the_head_check_keeps_the_reference() -> None:
    """The general path's cut (check_head) tokenises before each head: Python only."""
    require_accelerator()
    text = 'k="\nlogical_volumes {\n\tx=1\n}\n"\n'
    with accelerated():
        assert Parser()._cut_lazy(text, LAZY, check_head=True) == ([text], [])
        assert Parser()._cut_lazy(text, LAZY, check_head=False)[1] == ["\n\tx=1\n"]


class EveryBody(Parser):
    """Every accepted body is remembered, alone: each version is checked against the last accepted one."""

    VERIFIED_MIN_CHARS = 1
    VERIFIED_MAX = 1


@st.composite
def edited_bodies(draw: st.DrawFn) -> tuple[int, list[str]]:
    """A nested body and versions of it with a small edit anywhere: in a line deep in a section,
    in a section's head or closing line, a line added or dropped (canonical or not)."""
    depth = draw(st.integers(0, 2))
    body = draw(lazy_bodies(depth))
    versions = [body]
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(body)))
        marks = [n for n, c in enumerate(body) if c in "{}=\n"]
        if draw(st.booleans()) and marks:  # next to what the check's state turns on
            at = min(len(body), max(0, draw(st.sampled_from(marks)) + draw(st.integers(-2, 1))))
        tabs = "\t" * draw(st.integers(depth, depth + 4))
        piece = draw(
            st.sampled_from(
                [
                    "",
                    "1",
                    "9",
                    "x",
                    "\n",
                    "\t",
                    "}",
                    " {",
                    '"',
                    "=",
                    ",",
                    f"\n{tabs}k=1",
                    f"\n{tabs}}}",
                    f"\n{tabs}s {{\n{tabs}\tv=2\n{tabs}}}",
                ]
            )
        )
        if at < len(body) and body[at].isdigit() and draw(st.booleans()):
            piece = str((int(body[at]) + 1) % 10)  # a number changed in place, as a new seqno or size
        body = body[:at] + piece + body[at + draw(st.integers(0, 3)) :]
        versions.append(body)
    return depth, versions


@settings(max_examples=500, deadline=None)
@given(edited_bodies(), st.sampled_from(["}\n", "}", "", "\t}"]))
def test_a_body_edited_deep_inside_is_checked_as_a_new_one(case: tuple[int, list[str]], after: str) -> None:
    """Against a remembered body the check resumes in the innermost section that differs: the same end."""
    require_accelerator()
    depth, versions = case
    tabs = "\t" * depth
    reference, fast = EveryBody(), EveryBody()
    for body in versions + versions[::-1]:
        text = f"{tabs}logical_volumes {{{body}\n{tabs}{after}"
        start = len(f"{tabs}logical_volumes {{")
        m = codec._lazy_body(depth).match(text, start, start + codec.LAZY_MAX_CHARS + depth + 1)
        raws = same_cuts(reference, fast, text, LAZY)[1]
        assert raws == ([] if m is None else [text[start : m.end()]])


def test_one_changed_line_in_an_lv_is_checked_against_the_remembered_body() -> None:
    """The cases of an LV's line changed in place, its section grown or shrunk, a line's string holding
    what would end a line or section, and an LV added or dropped, each against the body before it."""
    require_accelerator()

    def lv(n: int, extents: int | str, extra: str = "") -> str:
        return (
            f'\n\t\tlvol{n} {{\n\t\t\tid="{n:04}"\n\t\t\tname="a\\"\n\t\t}}\n\t\tb"\n\t\t\tsegment1 {{'
            f'\n\t\t\t\textent_count={extents}\n\t\t\t\tstripes=["pv0",0]{extra}\n\t\t\t}}\n\t\t}}'
        )

    def body(changed: int, extents: int | str, extra: str = "", count: int = 6) -> str:
        return "".join(lv(n, extents if n == changed else 1, extra if n == changed else "") for n in range(count))

    reference, fast = EveryBody(), EveryBody()
    cases = [
        (body(0, 1), True),
        (body(0, 2), True),
        (body(3, 20), True),
        (body(3, 21, "\n\t\t\t\tx=1"), True),  # a line added inside the segment
        (body(3, 21), True),  # and dropped again
        (body(5, 7), True),  # the last LV
        (body(5, 7, count=7), True),  # an LV added at the end
        (body(5, 7, count=5), True),  # two dropped
        (body(2, "x"), False),  # not canonical
        (body(2, "1\n\t\t\t}"), False),  # a closing line too many
        (body(2, "1 {"), False),
        (body(2, 3), True),
    ]
    # one character of a head or a closing line changed (against the body before each)
    base = body(3, 20)
    segment_end = 'extent_count=20\n\t\t\t\tstripes=["pv0",0]\n\t\t\t}'
    for old, new, canonical in [
        ("lvol3 {", "lvol3 x", False),
        ("lvol3 {", "lvol3x {", True),
        ("lvol3 {", "lvol3  {", False),
        ("lvol3 {", "lvol3 {{", False),
        (segment_end, segment_end[:-1] + "x", False),
        (segment_end, segment_end[:-1] + "}}", False),
        (segment_end, segment_end[:-2] + "}", False),
        (segment_end, segment_end[:-1] + "\t}", False),
        (segment_end + "\n\t\t}", segment_end + "\n\t\t} ", False),
    ]:
        assert base.count(old) == 1
        cases += [(base, True), (base.replace(old, new), canonical)]
    for version, canonical in cases:
        text = f"a {{\n\tlogical_volumes {{{version}\n\t}}\n}}\n"
        assert same_cuts(reference, fast, text, LAZY)[1] == ([version + "\n\t"] if canonical else [])

"""The C accelerator (``_ccodec``) gives the pure-Python fast path's results, exactly.

Both are run on the same text and must agree: the same tree (types and
order included), or both None ("not in the subset": the general parser
runs).  The texts are every recorded request and reply (tests/data/
conformance), with and without lazy sections, and hypothesis documents
built from the subset's units with hostile variations (escapes, long and
leading-zero numbers, misplaced commas and braces, comments, quotes).
``PYLVMETAD_PURE_PYTHON=1`` turns the accelerator off; the last test checks
that, and runs the codec's own tests that way, so CI covers both paths.

~15 s, most of it the pure-Python run of the codec tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Parser
from support.ccodec import accelerator
from support.skips import unavailable
from wire.test_codec_fast import LAZY, corpus_texts, eager, expand

REPO = Path(__file__).resolve().parents[2]


def require_accelerator() -> None:
    if accelerator() is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")


def both(text: str, lazy: frozenset[str]) -> tuple[object, object]:
    """(pure-Python fast path, C fast path), each as a comparable form."""
    text = text.split("\0")[0]
    python = codec._run(Parser()._fast(text, lazy))
    saved, codec._accel = codec._accel, accelerator()
    try:
        c = Parser()._accelerated(text, lazy)
    finally:
        codec._accel = saved
    if c is NotImplemented:  # wide characters: the accelerator hands over to Python
        return "n/a", "n/a"
    return (None if python is None else expand(python)), (None if c is None else expand(c))  # type: ignore[arg-type]


def test_the_accelerator_agrees_on_all_recorded_traffic() -> None:
    require_accelerator()
    texts = corpus_texts()
    fast = 0
    for text in texts:
        for lazy in (LAZY, frozenset()):
            python, c = both(text, lazy)
            assert python == c, text[:300]
            fast += python is not None
    assert fast > len(texts)  # most texts do take the fast path


key = st.sampled_from(["a", "id", "lv0", "seqno", "x-1", "k.2", "+", "9", "logical_volumes", "a/b", '"q"'])
blank = st.sampled_from(["", " ", "\n", "\t", "\n\t\t", "  \r\n", "\v\f"])
string = st.text(alphabet="ab \"\\}{\n#=,[]'/é", max_size=12).map(lambda s: '"' + s + '"')
number = st.sampled_from(
    ["0", "-0", "7", "-12", "007", "123456789012345678", "1234567890123456789", "1.5", "5abc", "-"]
)
atom = st.one_of(string, number)
separator = st.sampled_from([",", ", ", " ,", " ", ",,", ""])


@st.composite
def values(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(atom)
    items = draw(st.lists(atom, max_size=5))
    sep = draw(separator)
    return "[" + sep.join(items) + draw(st.sampled_from(["", ",", " "])) + "]"


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 9))
        b1, b2 = draw(blank), draw(blank)
        if kind < 6:
            out.append(f"{b1}{draw(key)}{b2}={draw(blank)}{draw(values())}")
        elif kind < 8 and depth < 3:
            out.append(f"{b1}{draw(key)}{b2}{{{draw(documents(depth + 1))}{draw(blank)}}}")
        else:
            out.append(draw(st.sampled_from(["}", "{", "# c\n", "]", ",", "'s'", "x", "=1"])))
    return "".join(out) + draw(blank)


@settings(max_examples=400, deadline=None)
@given(documents())
def test_the_accelerator_agrees_on_generated_documents(text: str) -> None:
    require_accelerator()
    for lazy in (frozenset(), frozenset({"logical_volumes"})):
        python, c = both(text, lazy)
        assert python == c


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='ab1-0 \n\t"\\{}[],=#', max_size=60))
def test_the_accelerator_agrees_on_arbitrary_text(text: str) -> None:
    require_accelerator()
    python, c = both(text, frozenset())
    assert python == c


def warm_both(parser: Parser, text: str, lazy: frozenset[str]) -> tuple[object, object]:
    """(pure-Python fast path, C fast path through ``parser``, whose memos are warm), comparable."""
    text = text.split("\0")[0]
    python = codec._run(Parser()._fast(text, lazy))
    saved, codec._accel = codec._accel, accelerator()
    try:
        c = parser._accelerated(text, lazy)
    finally:
        codec._accel = saved
    if c is NotImplemented:
        return "n/a", "n/a"
    return (None if python is None else expand(python)), (None if c is None else expand(c))  # type: ignore[arg-type]


def warm_parser() -> Parser:
    """A parser made with the accelerator on, so it has a span memo."""
    saved, codec._accel = codec._accel, accelerator()
    try:
        return Parser()
    finally:
        codec._accel = saved


def test_a_warm_span_memo_gives_the_same_trees_on_recorded_traffic() -> None:
    """One parser through all the traffic, twice: the span memo's hits are what a parse gives."""
    require_accelerator()
    parser = warm_parser()
    assert parser.spans is not None
    texts = corpus_texts()
    for _ in range(2):
        for text in texts:
            for lazy in (LAZY, frozenset()):
                python, c = warm_both(parser, text, lazy)
                assert python == c, text[:300]
    hits, misses = parser.spans.stats()
    assert hits > misses  # the traffic repeats its units: the memo is used
    assert parser.spans.chars() <= Parser.SPAN_MEMO_CHARS


#: one parser for every generated example: spans of earlier examples are in its memo
_WARM: list[Parser] = []


@settings(max_examples=400, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4))
def test_a_warm_span_memo_gives_the_same_trees_on_generated_documents(texts: list[str]) -> None:
    require_accelerator()
    if not _WARM:
        _WARM.append(warm_parser())
    for text in texts + texts:  # each text again once its spans are in the memo
        python, c = warm_both(_WARM[0], text, frozenset())
        assert python == c


@pytest.mark.parametrize(
    ("seen", "text"),
    [
        ("x=12\n", "x=12a=1\n"),  # a number's span seen before, now followed by a word: not the subset
        ("x=12\n", 'x=12"\n'),
        ('x="a"\n', 'x="a\n'),  # unterminated
        ("a {\n}\n", "a=[1,]\n"),
        ('s=["q","q"]\n', 's=["q" "q"]\n'),
        ("x=1\n", "x=1"),
    ],
)
def test_a_span_seen_before_is_still_checked_in_its_place(seen: str, text: str) -> None:
    require_accelerator()
    parser = warm_parser()
    warm_both(parser, seen, frozenset())
    python, c = warm_both(parser, text, frozenset())
    assert python == c


def test_the_span_memo_is_bounded_and_cleared() -> None:
    require_accelerator()
    parser = warm_parser()
    assert parser.spans is not None
    for n in range(200):
        warm_both(parser, "".join(f'k{n}_{i}="{"v" * 60}{i}"\nn{n}_{i}={i}\n' for i in range(100)), frozenset())
    assert 0 < parser.spans.chars() <= Parser.SPAN_MEMO_CHARS
    assert parser.memo_chars() >= parser.spans.chars()
    parser.clear()
    assert parser.spans.chars() == 0


@contextlib.contextmanager
def small_steps(window: int, chunk: int) -> Iterator[None]:
    """The Python fast path with windows of ``window`` characters and string chunks of ``chunk``.

    Long strings are joined ``chunk + 1`` characters a step, by the accelerator's joiner.
    """
    saved = codec._WINDOW_CHARS, codec._STRING_CHUNK, codec._JOIN_CHARS, codec._accel
    codec._WINDOW_CHARS, codec._STRING_CHUNK, codec._JOIN_CHARS = window, chunk, chunk + 1
    codec._accel = accelerator()
    try:
        yield
    finally:
        codec._WINDOW_CHARS, codec._STRING_CHUNK, codec._JOIN_CHARS, codec._accel = saved


def stepped(text: str, lazy: frozenset[str], window: int, chunk: int) -> object:
    """The pure-Python fast path's result with small windows and string chunks (comparable form)."""
    with small_steps(window, chunk):
        tree = codec._run(Parser()._fast(text.split("\0")[0], lazy))
    return None if tree is None else expand(tree)


def agree_at_any_step_size(text: str, lazy: frozenset[str], window: int, chunk: int) -> None:
    """Small steps give the default steps' result, the accelerator's, and the general parser's tree."""
    python, c = both(text, lazy)
    small = stepped(text, lazy, window, chunk)
    assert small == stepped(text, lazy, 1 << 30, 1 << 30)  # one window, one chunk: no cut at all
    if python != "n/a":
        assert small == python == c
    if small is not None and not lazy:
        assert small == eager(text)


def test_windows_and_string_chunks_cut_anywhere_in_recorded_traffic() -> None:
    require_accelerator()
    texts = corpus_texts()[::7]
    for window, chunk in ((1, 2), (13, 3), (200, 5)):
        for text in texts:
            agree_at_any_step_size(text, LAZY, window, chunk)


long_string = st.text(alphabet='ab\\"\n#=é', max_size=60).map(lambda s: '"' + s + '"')


@st.composite
def long_string_documents(draw: st.DrawFn) -> str:
    """Statements and lists of strings with escape runs, longer than the small windows."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        b = draw(blank)
        if draw(st.booleans()):
            out.append(f"{b}{draw(key)}={draw(long_string)}")
        else:
            out.append(
                f"{b}{draw(key)}=[{draw(separator).join(draw(st.lists(st.one_of(long_string, number), max_size=4)))}]"
            )
    return "".join(out) + draw(blank)


@settings(max_examples=400, deadline=None)
@given(documents(), st.integers(1, 40), st.integers(2, 9))
def test_windows_cut_anywhere_in_generated_documents(text: str, window: int, chunk: int) -> None:
    require_accelerator()
    agree_at_any_step_size(text, frozenset(), window, chunk)


@settings(max_examples=400, deadline=None)
@given(long_string_documents(), st.integers(1, 40), st.integers(2, 9))
def test_long_strings_read_in_chunks_anywhere(text: str, window: int, chunk: int) -> None:
    require_accelerator()
    agree_at_any_step_size(text, frozenset(), window, chunk)


def test_a_long_string_is_read_in_bounded_steps() -> None:
    """A string of 1 MB with escape runs: no step reads more than a chunk or a window of it."""
    body = ("a" * 1000 + '\\\\\\a\\"' * 100) * 100
    text = f'request="hello"\nx="{body}"\ny=["{body}",1]\n'
    steps = Parser()._fast(text, frozenset())
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            tree = done.value
            break
        count += 1
    assert tree is not None and expand(tree) == eager(text)
    # each string is read 64 Ki characters a step at most: both take more than 2 x len / 64 Ki steps
    assert count >= 2 * len(body) // codec._STRING_CHUNK


def count_steps(text: str) -> tuple[codec.Section | None, int]:
    steps = Parser()._fast(text, frozenset())
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, count
        count += 1


def test_a_long_ascii_string_is_joined_in_bounded_steps() -> None:
    """A 4 MB string's value is filled _JOIN_CHARS characters a step, not joined in one."""
    require_accelerator()
    saved, codec._accel = codec._accel, accelerator()
    try:
        body = "a" * (4 * codec._JOIN_CHARS) + '\\"' + "b" * 1000
        tree, count = count_steps(f'request="hello"\nx="{body}"\n')
        reading = len(body) // codec._STRING_CHUNK
        assert tree is not None and tree.get_str("x") == body.replace('\\"', '"')
        assert count >= reading + 4  # the chunks read, then at least four steps of joining
        wide = "é" + body  # not ASCII: joined by "".join, in the step that ends the string
        tree, count = count_steps(f'request="hello"\nx="{wide}"\n')
        assert tree is not None and tree.get_str("x") == wide.replace('\\"', '"')
        assert count <= reading + 1
    finally:
        codec._accel = saved


def test_a_nul_in_a_long_text_is_searched_a_chunk_a_step() -> None:
    chunk = codec.NAME_CHUNK * 4
    for text in ("a" * (2 * chunk + 5), "a" * (2 * chunk + 5) + "\0b", "a\0", ""):
        steps = codec._nul_in(text)
        count = 0
        while True:
            try:
                next(steps)
            except StopIteration as done:
                assert done.value == text.find("\0")
                break
            count += 1
        assert count == max(0, (len(text) - 1) // chunk)  # one search of ``chunk`` characters a step


def test_the_joiner_refuses_what_is_not_an_ascii_str() -> None:
    c = accelerator()
    if c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    for parts in (["a", "é"], ["a", b"b"], ["a", 1]):
        with pytest.raises(TypeError):
            c.AsciiJoiner(parts)
    joiner = c.AsciiJoiner(["ab", "", "cde"])
    assert [joiner.step(2), joiner.step(2), joiner.step(9)] == [3, 1, 0]
    assert joiner.result() == "abcde"


def test_pure_python_is_forced_by_the_environment_and_passes_the_codec_tests() -> None:
    env = {**os.environ, codec.PURE_PYTHON_ENV: "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "from pylvmetad.wire import codec; print(codec.ACCELERATED)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"
    tests = ["tests/wire/test_codec.py", "tests/wire/test_codec_fast.py"]  # test_codec_memory runs both paths itself
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]


def lazy_ends(text: str, start: int, depth: int) -> tuple[int, int]:
    """(the regex's end of the lazy body at ``start``, the accelerator's), -1 for none."""
    endpos = start + codec.LAZY_MAX_CHARS + depth + 1
    m = codec._lazy_body(depth).match(text, start, endpos)
    c = accelerator()
    assert c is not None
    return (-1 if m is None else m.end()), c.lazy_body_end(text, start, depth, codec.LAZY_MAX_DEPTH, endpos)


def test_the_accelerator_finds_the_same_lazy_bodies_in_recorded_traffic() -> None:
    require_accelerator()
    head = codec._lazy_head(LAZY)
    bodies = 0
    for text in corpus_texts():
        for m in head.finditer(text):
            depth = len(m.group(1))
            regex, c = lazy_ends(text, m.end(), depth)
            assert regex == c, text[m.start() : m.start() + 300]
            bodies += regex >= 0
    assert bodies > 100


line_key = st.sampled_from(["id", "lv0", "segment1", "a.b", "x-1", "+"])
canonical_value = st.sampled_from(
    ['"x"', '"a\\"b"', '"a\\\\b"', '"a\\nb"', "0", "-0", "12", "-7", "007", "1.500000", "1.5", "-0.000000",
     "1234567890.000000", "[]", '["a","b"]', '["a"]', "[1,2,3]", '["a", "b"]', "5abc", "123456789012345678",
     "1234567890123456789"]
)  # fmt: skip


@st.composite
def lazy_bodies(draw: st.DrawFn, depth: int, level: int = 0) -> str:
    """Lines in the writer's layout (or nearly: a wrong indentation or spacing now and then)."""
    out = []
    ind = depth + level + 1
    for _ in range(draw(st.integers(0, 4))):
        tabs = "\t" * (ind + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1])))
        key = draw(line_key)
        if level < 7 and draw(st.integers(0, 3)) == 0:
            inner = draw(lazy_bodies(depth, level + 1))
            out.append(f"\n{tabs}{key}{draw(st.sampled_from([' {', ' {', '{', '  {']))}{inner}\n{tabs}}}")
        else:
            out.append(f"\n{tabs}{key}{draw(st.sampled_from(['=', '=', '=', ' = ']))}{draw(canonical_value)}")
    return "".join(out)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 3).flatmap(lambda d: st.tuples(st.just(d), lazy_bodies(d))))
def test_the_accelerator_finds_the_same_lazy_bodies_in_generated_text(case: tuple[int, str]) -> None:
    require_accelerator()
    depth, body = case
    head = "\t" * depth + "logical_volumes {"
    text = f"x {{\n{head}{body}\n{chr(9) * depth}}}\n}}\n"
    regex, c = lazy_ends(text, len("x {\n") + len(head), depth)
    assert regex == c


class _Key(str):
    """A str subclass key: compared by Python's == on both paths."""


pair_key = st.one_of(st.sampled_from(["a", "b", "pid", "é", "", "cmd"]), st.sampled_from(["a", "pid"]).map(_Key))
pair_value = st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.tuples(pair_key, pair_value), st.tuples(pair_key, pair_value).map(list)), max_size=8),
    st.sampled_from(["a", "b", "pid", "é", "", "cmd", "x"]),
)
def test_the_accelerators_first_value_is_the_references(items: list[object], key: str) -> None:
    require_accelerator()
    c = accelerator()
    assert c is not None
    got = c.first_value(items, key)
    if got is NotImplemented:  # an item that is not a 2-tuple: the reference decides
        assert any(type(item) is not tuple for item in items)
    else:
        assert got is codec._first_value_py(items, key)  # type: ignore[arg-type]
    saved = codec._first_value_accel
    codec._first_value_accel = c.first_value
    try:
        assert codec._first_value_c(items, key) is codec._first_value_py(items, key)  # type: ignore[arg-type]
    finally:
        codec._first_value_accel = saved


GETTER_PATHS = ("request", "token", "pid", "cmd", "update_timeout", "response", "metadata/seqno", "pvmeta/device", "x")


def test_the_getters_read_the_same_fields_with_and_without_the_accelerator() -> None:
    require_accelerator()
    c = accelerator()
    assert c is not None
    saved = codec._first_value, codec._first_value_accel
    for text in corpus_texts():
        tree = codec._parse_eager(text.split("\0")[0])
        read = []
        for first_value, accel in (
            (codec._first_value_py, codec._first_value_py),
            (codec._first_value_c, c.first_value),
        ):
            codec._first_value, codec._first_value_accel = first_value, accel
            try:
                read.append(
                    [
                        (p, tree.get_str(p), tree.get_int(p, -7), tree.get_int64(p), tree.find(p), tree.child(p))
                        for p in GETTER_PATHS
                    ]
                )
            finally:
                codec._first_value, codec._first_value_accel = saved
        assert read[0] == read[1], text[:300]


def test_get_int_truncates_as_before_on_the_inlined_path() -> None:
    tree = codec.Section([("a", 1 << 31), ("b", -(1 << 31) - 1), ("c", 5), ("d", [7, 8]), ("e", "s"), ("f", True)])
    assert [tree.get_int(k, -1) for k in "abcdefg"] == [-(1 << 31), (1 << 31) - 1, 5, 7, -1, 1, -1]
    assert type(tree.get_int("f", 0)) is int

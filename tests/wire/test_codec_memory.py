"""The codec's memory is bounded for every input shape, and given back afterwards.

Each hostile shape of issue 17 (a long list of small integers, a long string
after a comment, many escapes, many keys, wide and deep sections) is parsed
at a moderate size under ``tracemalloc``, which sees every allocation of the
regex engine and of the objects built.  The peak while parsing, over the
text's size, must stay under the shape's constant (docs in BENCHMARKS.md,
"codec memory"): the tree itself plus bounded scratch, never a per-character
backtracking record (the old tokeniser needed ~150 bytes per character of a
string after a comment, ~470 per character of a list).  After the tree is
dropped nothing of the text may stay behind in the parser's memos.

No wall-clock bound: speed lives in ``bench/codec.py``.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from pylvmetad.wire import codec
from pylvmetad.wire.codec import Parser, Section
from support.ccodec import accelerator
from support.skips import unavailable

LAZY = frozenset({"logical_volumes"})
SIZE = 1_000_000  # characters per shape: big enough that per-character costs dominate
#: characters of request text the memos may hold, whatever was parsed
MEMO_BUDGET = (
    Parser.VERIFIED_CHARS
    + (64 + Parser.SHARED_STR_MAX) * Parser.SHARED_PAIRS_MAX
    + 64 * Parser.SHARED_KEYS_MAX
    + Parser.SPAN_MEMO_CHARS
)


def ints(n: int, atom: str = "1") -> str:
    return ",".join([atom] * n)


#: name -> (text, the allowed peak as a multiple of the text's size)
#: The tree's own cost sets the constant: 8 bytes per list slot (2 characters
#: of "1,"), a string's copy, ~90 bytes per pair and ~150 per section.
SHAPES: dict[str, tuple[str, float]] = {
    "list of small ints": ('request="hello"\nx=[' + ints(SIZE // 2) + "]\n", 6),
    "list of large ints": ('request="hello"\nx=[' + ints(SIZE // 8, "1234567") + "]\n", 8),
    # the general parser (a comment keeps the fast path out): a third of the size, it is slower
    "list after a comment": ('# c\nrequest="hello"\nx=[' + ints(SIZE // 6) + "]\n", 6),
    # a str object is ~50 bytes: 59 per 5 characters of '"ab",'
    "list of strings": ('request="hello"\nx=[' + ",".join(['"ab"'] * (SIZE // 5)) + "]\n", 14),
    "long string": ('request="hello"\nx="' + "a" * SIZE + '"\n', 3),
    "long string after a comment": ('# c\nrequest="hello"\nx="' + "a" * SIZE + '"\n', 3),
    "escapes": ('request="hello"\nx="' + "\\a" * (SIZE // 2) + '"\n', 3),
    "escapes after a comment": ('# c\nrequest="hello"\nx="' + "\\a" * (SIZE // 2) + '"\n', 3),
    "unterminated string": ('request="hello"\nx="' + "\\a" * (SIZE // 2), 3),
    "many keys": ('request="hello"\n' + "".join(f"k{i}=1\n" for i in range(SIZE // 9)), 30),
    "many keys after a comment": ('# c\nrequest="hello"\n' + "".join(f"k{i}=1\n" for i in range(SIZE // 27)), 30),
    "wide sections": ('request="hello"\n' + "".join(f"s{i} {{\n}}\n" for i in range(SIZE // 10)), 30),
    "deep sections": ('request="hello"\n' + ("a {\n" * 120 + "}\n" * 120) * (SIZE // 2880), 40),
    "comments": ('request="hello"\n' + "# a comment line of some length\n" * (SIZE // 32), 1),
    "blanks": ('request="hello"\n' + " " * SIZE + "x=1\n", 1),
    "lazy body": (
        'request="vg_update"\nmetadata {\n\tlogical_volumes {\n'
        + "".join(f'\t\tlv{i} {{\n\t\t\tid="{i}"\n\t\t}}\n' for i in range(SIZE // 30))
        + "\t}\n}\n",
        2,
    ),
}


@pytest.fixture(params=["c", "python"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs on the C accelerator and on the pure-Python fast path."""
    c = accelerator() if request.param == "c" else None
    if request.param == "c" and c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    monkeypatch.setattr(codec, "_accel", c)
    yield request.param


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_peak_memory_of_a_parse_is_bounded_by_the_shapes_constant(shape: str, fast_path: str) -> None:
    text, constant = SHAPES[shape]
    parser = Parser()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            tree: Section | None = parser.parse(text, LAZY)
        except ValueError:  # the unterminated string: refused, still bounded
            tree = None
        peak = tracemalloc.get_traced_memory()[1] - before
        del tree
        memo = parser.memo_chars()
        parser.clear()
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert peak <= constant * len(text) + 256 * 1024, f"{shape}: peak {peak / len(text):.1f}x the text"
    # the tree is gone and nothing but the (bounded) memos referred to the text
    assert after <= 256 * 1024, f"{shape}: {after} bytes kept"
    assert memo <= MEMO_BUDGET


def test_memos_keep_no_long_request_data(fast_path: str) -> None:
    """40 hellos with different long strings (issue 17: 2 GB left resident) leave nothing behind."""
    parser = Parser()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(40):
            tree = parser.parse(f'request="hello"\nx="{chr(65 + n % 26) * 200_000}{n}"\n')
            assert tree.get_str("request") == "hello"
        del tree
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept <= 256 * 1024
    assert parser.memo_chars() <= MEMO_BUDGET


def test_memo_of_checked_bodies_stays_within_its_budget(fast_path: str) -> None:
    parser = Parser()
    for n in range(12):
        lvs = "".join(f'\t\tlv{i} {{\n\t\t\tid="{n}-{i}"\n\t\t}}\n' for i in range(20_000))
        parser.parse(f"metadata {{\n\tlogical_volumes {{\n{lvs}\t}}\n}}\n", LAZY)
    assert len(parser.verified) <= Parser.VERIFIED_MAX
    assert sum(len(raw) for _, raw in parser.verified) <= Parser.VERIFIED_CHARS


def test_steps_yield_between_bounded_pieces_of_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A huge message is parsed in many steps (the server runs one per loop turn).

    The accelerator takes texts up to ACCEL_ONE_STEP in one step; longer ones,
    and every text without it, go a window at a time.
    """
    monkeypatch.setattr(codec, "_accel", None)
    parser = Parser()
    for text in (SHAPES["list of small ints"][0], SHAPES["many keys after a comment"][0]):
        steps = parser.steps(text, LAZY)
        turns = 0
        while True:
            try:
                next(steps)
            except StopIteration as done:
                tree = done.value
                break
            turns += 1
        assert turns >= 2
        assert tree == parser.parse(text, LAZY)

"""``_ccodec.parse_text`` is ``Parser.parse``'s fast path in one call, exactly.

``Parser.parse`` with the accelerator cuts the text at its first NUL, cuts
it around its lazy bodies and builds the tree (``Parser._accelerated``);
``parse_text`` does the three in C, and ``Parser.quick`` binds it for the
dispatcher's hot path.  These tests check, on every recorded request and on
hypothesis documents (NULs, lazy sections, texts outside the subset), that
``parse_text`` gives ``_accelerated``'s result on the NUL-cut text (the same
tree, None or NotImplemented) and leaves the lazy-body memo as it leaves it,
and that ``quick``'s trees are ``parse``'s (and of the pure-Python parser).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec
from pylvmetad.wire.codec import ParseError, Parser, Section
from support.ccodec import accelerator
from wire.test_codec_accel import documents, require_accelerator
from wire.test_codec_fast import LAZY, corpus_texts, expand

LV_BODY = '\n\t\tlv0 {\n\t\t\tid="x"\n\t\t\tstatus=["READ","WRITE"]\n\t\t}\n\t'
VG = 'request="vg_update"\nmetadata {\n\tid="v"\n\tseqno=3\n\tlogical_volumes {' + LV_BODY + "}\n}\n"


def with_accelerator(fn: Callable[[], object]) -> object:
    saved, codec._accel = codec._accel, accelerator()
    try:
        return fn()
    finally:
        codec._accel = saved


def comparable(result: object) -> object:
    return expand(result) if isinstance(result, Section) else result


def fresh() -> Parser:
    parser = with_accelerator(Parser)
    assert isinstance(parser, Parser)
    return parser


def agree(text: str, lazy: frozenset[str]) -> None:
    """parse_text == _accelerated on the NUL-cut text, with fresh parsers; the memos end alike."""
    accel = accelerator()
    assert accel is not None
    one, two = fresh(), fresh()
    names = tuple(sorted(lazy))
    got = accel.parse_text(names, one.pairs, one.keys, one.verified, one.spans, one._limits, text)
    want = with_accelerator(lambda: two._accelerated(text.split("\0")[0], lazy))
    assert comparable(got) == comparable(want)
    assert one.verified == two.verified
    assert one.memo_chars() == two.memo_chars()


def test_parse_text_agrees_on_all_recorded_traffic() -> None:
    require_accelerator()
    for text in [*corpus_texts(), VG, VG + "\0junk {", "a=1\0", "\0", 'x="é"\n']:
        for lazy in (LAZY, frozenset()):
            agree(text, lazy)


@settings(max_examples=300, deadline=None)
@given(documents(), st.sampled_from(["", "\0", "\0x=1", "\0}"]), st.booleans())
def test_parse_text_agrees_on_generated_documents(text: str, tail: str, lazy: bool) -> None:
    require_accelerator()
    agree(text + tail, frozenset({"logical_volumes"}) if lazy else frozenset())


def parse_or_error(parse: Callable[[], Section]) -> object:
    try:
        return expand(parse())
    except (ParseError, RecursionError) as exc:
        return type(exc).__name__


def check_quick(parser: Parser, text: str, lazy: frozenset[str]) -> None:
    quick = with_accelerator(lambda: parser.quick(lazy))
    assert callable(quick)
    tree = quick(text)
    whole = with_accelerator(lambda: parse_or_error(lambda: parser.parse(text, lazy)))
    pure = parse_or_error(lambda: codec._run(Parser().steps(text.split("\0")[0], lazy)))
    assert whole == pure
    if isinstance(tree, Section):  # quick's tree is parse()'s; anything else means "ask parse()"
        assert expand(tree) == whole
    else:
        assert tree is None or tree is NotImplemented


def test_quick_gives_parses_trees_on_recorded_traffic() -> None:
    require_accelerator()
    parser = fresh()
    for text in [*corpus_texts()[:400], VG, "a=1\0b", "x=1.5\n", "", "x={"]:
        check_quick(parser, text, LAZY)


@settings(max_examples=200, deadline=None)
@given(documents(), st.sampled_from(["", "\0", "\0x=1"]))
def test_quick_gives_parses_trees_on_generated_documents(text: str, tail: str) -> None:
    require_accelerator()
    check_quick(fresh(), text + tail, frozenset({"logical_volumes"}))


def test_quick_without_the_accelerator_always_asks_parse() -> None:
    saved, codec._accel = codec._accel, None
    try:
        quick = Parser().quick(LAZY)
    finally:
        codec._accel = saved
    assert quick('request="hello"\n') is None


def test_parse_text_refuses_wrong_arguments() -> None:
    require_accelerator()
    accel = accelerator()
    assert accel is not None
    parser = fresh()
    with pytest.raises(TypeError):
        accel.parse_text((), parser.pairs, parser.keys, parser.verified, parser.spans, (1, 2), "a=1")
    with pytest.raises(TypeError):
        accel.parse_text((), parser.pairs, parser.keys, parser.verified, parser.spans, parser._limits, b"a=1")

"""Sans-I/O framing: messages split on the terminator, bounded buffers."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire import codec, framing
from pylvmetad.wire.framing import (
    TERMINATOR,
    Framer,
    MessageTooLarge,
    decode,
    decode_steps,
    encode_reply,
    encode_request,
)
from support.ccodec import accelerator
from support.skips import unavailable


def test_one_message() -> None:
    assert Framer().feed(b'request="hello"\n\n##\n') == [b'request="hello"\n']


def test_terminator_may_use_the_bodys_last_newline() -> None:
    assert Framer().feed(b'request="dump"\n##\n') == [b'request="dump"']


def test_partial_then_complete() -> None:
    f = Framer()
    assert f.feed(b"a=1\n#") == []
    assert f.pending == 5
    assert f.feed(b"#\n") == [b"a=1"]
    assert f.pending == 0


def test_pipelined_messages_are_split_in_order() -> None:
    assert Framer().feed(b"a=1\n##\nb=2\n##\nc=") == [b"a=1", b"b=2"]


def test_limit_raises_before_buffering_more() -> None:
    f = Framer(max_message=10)
    f.feed(b"12345")
    with pytest.raises(MessageTooLarge) as info:
        f.feed(b"678901")
    assert info.value.limit == 10
    assert f.pending == 0


def test_limit_does_not_apply_to_complete_messages_under_it() -> None:
    f = Framer(max_message=10)
    assert f.feed(b"123\n##\n456\n##\n") == [b"123", b"456"]


def test_encoders_end_with_a_blank_line_and_terminator() -> None:
    assert encode_reply('response = "OK"\n') == b'response = "OK"\n\n##\n'
    assert encode_request("a=1") == b"a=1\n\n##\n"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=50).filter(lambda b: b"\n##\n" not in b and not b.endswith(b"\n#")), max_size=6),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
)
def test_any_chunking_gives_the_same_messages(bodies: list[bytes], cuts: list[int]) -> None:
    # a body ending in "\n#" would fuse with the terminator; LVM bodies never do
    wire = b"".join(b + b"\n##\n" for b in bodies)
    f = Framer()
    got: list[bytes] = []
    pos = 0
    for cut in cuts * (len(wire) // max(sum(cuts), 1) + 1):
        got += f.feed(wire[pos : pos + cut])
        pos += cut
        if pos >= len(wire):
            break
    got += f.feed(wire[pos:])
    assert got == bodies


@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"#")), min_size=1, max_size=4))
def test_one_read_gives_what_byte_by_byte_gives(bodies: list[bytes]) -> None:
    """The one-message shortcut (first "#" in the final terminator) agrees with the general loop."""
    wire = b"".join(b + b"\n##\n" for b in bodies)
    whole = Framer().feed(wire)
    f = Framer()
    split = [m for i in range(len(wire)) for m in f.feed(wire[i : i + 1])]
    assert whole == split


# -- long messages: handed over, not copied; decoded in steps -------------------
LONG = b'request="hello"\nx="' + b"a" * framing.HAND_OVER_MIN + b'"\n'


def test_a_long_message_alone_in_the_buffer_is_handed_over_as_the_buffer() -> None:
    f = Framer()
    half = len(LONG) // 2
    assert f.messages(LONG[:half]) == []
    held = f._buf
    [message] = f.messages(LONG[half:] + b"\n##\n")
    assert message is held and isinstance(message, bytearray)  # the buffer itself: no copy
    assert message == LONG
    assert f.pending == 0 and f._buf is not held  # a new buffer for the next message
    assert f.messages(b"a=1\n##\n") == [b"a=1"]
    assert message == LONG  # unchanged by the framer's later use


def test_feed_gives_bytes_for_a_long_message_too() -> None:
    f = Framer()
    f.feed(LONG[:10])
    [message] = f.feed(LONG[10:] + b"\n##\n")
    assert type(message) is bytes and message == LONG


def test_a_long_message_followed_by_more_is_copied_and_the_rest_kept() -> None:
    f = Framer()
    f.messages(LONG[:10])
    got = f.messages(LONG[10:] + b"\n##\nb=2\n##\nc=")
    assert got == [LONG, b"b=2"] and all(type(m) is bytes for m in got)
    assert f.pending == 2
    f2 = Framer()
    f2.messages(b"a=1\n##\n" + LONG[:10])
    got = f2.messages(LONG[10:] + b"\n##\n")  # the long one starts the buffer only after a cut
    assert got == [LONG]


def test_a_short_message_is_never_handed_over() -> None:
    f = Framer()
    f.messages(b"a=")
    [message] = f.messages(b"1\n##\n")
    assert type(message) is bytes


def drive(steps: Generator[None, None, str]) -> tuple[str, int]:
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, count
        count += 1


@pytest.fixture
def with_accelerator() -> Iterator[None]:
    c = accelerator()
    if c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    saved, codec._accel = codec._accel, c
    try:
        yield
    finally:
        codec._accel = saved


@pytest.mark.usefixtures("with_accelerator")
def test_an_ascii_message_is_decoded_a_chunk_a_step() -> None:
    message = bytearray(b"k=1\n" * (framing.DECODE_CHUNK + 7))  # a little over 4 chunks
    text, steps = drive(decode_steps(message))
    assert text == decode(message) and type(text) is str
    assert steps == len(message) // framing.DECODE_CHUNK  # one step per chunk, the last returns
    assert text.isascii()


@pytest.mark.usefixtures("with_accelerator")
def test_a_message_with_a_byte_past_ascii_is_decoded_as_decode_does() -> None:
    for tail in (b"\xc3\xa9", b"\xff\xfe", b"\xf0\x9f\x98\x80"):
        message = b"a" * (3 * framing.DECODE_CHUNK) + tail + b"b" * 100
        text, steps = drive(decode_steps(message))
        assert text == decode(message)
        assert steps == 3  # three ASCII chunks, then the rest in one go


def test_without_the_accelerator_a_message_is_decoded_in_one_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_accel", None)
    message = b"x" * (2 * framing.DECODE_CHUNK + 1)
    assert drive(decode_steps(message)) == (decode(message), 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_the_ascii_decoder_agrees_with_decode(data: bytes, chunk: int) -> None:
    c = accelerator()
    if c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    decoder = c.AsciiDecoder(bytearray(data))
    while (left := decoder.step(chunk)) > 0:
        pass
    if left < 0:
        assert not data.isascii()
        with pytest.raises(ValueError):
            decoder.result()
    else:
        assert data.isascii() and decoder.result() == decode(data)


def test_whole_takes_only_one_whole_message_with_nothing_buffered() -> None:
    """Framer.whole (the server's fast path): exactly one message, no "#" of its own, an empty buffer."""
    framer = Framer()
    assert framer.whole(b'request="hello"\n' + TERMINATOR) == b'request="hello"\n'
    assert framer.whole(b'a="#"\n' + TERMINATOR) is None  # a "#" of its own: the general loop
    assert framer.whole(b"a=1\n" + TERMINATOR + b"b=2\n" + TERMINATOR) is None  # two messages
    assert framer.whole(b"a=1\n") is None  # no terminator
    assert framer.feed(b"x=") == []
    assert framer.whole(b"1\n" + TERMINATOR) is None  # something buffered: the rest goes to feed
    assert framer.feed(b"1\n" + TERMINATOR) == [b"x=1\n"]
    assert framer.pending == 0

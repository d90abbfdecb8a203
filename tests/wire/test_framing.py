"""Sans-I/O framing: messages split on the terminator, bounded buffers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.wire.framing import Framer, MessageTooLarge, encode_reply, encode_request


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

"""Bad input against a real daemon (docs/protocol.md §8).

Each row is raw bytes a client writes, and the replies it must get.  The
daemon holds a small VG throughout; its ``dump`` must be byte-identical
before and after every row (none of them may change the cache), and the
daemon must still answer afterwards.  Run with ``-s`` to print the table of
inputs and the replies they got.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pylvmetad.wire.codec import parse
from support.daemon import DaemonProcess, RawConnection, start_daemon


@dataclass
class Row:
    name: str
    data: bytes
    #: per expected reply: fields that must have these values
    replies: list[dict[str, str | int]] = field(default_factory=list)
    #: the client hangs up after writing (no reply expected)
    hang_up: bool = False


def msg(body: str | bytes) -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    return raw + b"\n\n##\n"


MISMATCH_NONE: dict[str, str | int] = {"response": "token_mismatch", "received": "NONE"}
SKIP = 'token="skip"\n'
VG_BODY = 'vgname="vg9"\nmetadata {\n\tid="VG9-zzzz"\n\tseqno=%s\n\tphysical_volumes {\n\t}\n}'

ROWS = [
    Row("unparsable text", msg("this is { not config"), [MISMATCH_NONE]),
    Row("empty message", b"\n##\n", [MISMATCH_NONE]),
    Row("only a comment", msg("# nothing here"), [MISMATCH_NONE]),
    Row("unterminated string", msg('request="hello'), [MISMATCH_NONE]),
    Row("missing token", msg('request="vg_list"'), [MISMATCH_NONE]),
    Row("token not a string", msg('request="vg_list"\ntoken=5'), [MISMATCH_NONE]),
    Row(
        "unknown request",
        msg('request="format_disk"\n' + SKIP),
        [{"response": "failed", "reason": "request not implemented"}],
    ),
    Row(
        "pv_gone_by_pvid",
        msg('request="pv_gone_by_pvid"\n' + SKIP),
        [{"response": "failed", "reason": "request not implemented"}],
    ),
    Row("no request field", msg(SKIP), [{"response": "failed", "reason": "request not implemented"}]),
    Row(
        "vg_update without metadata/id",
        msg('request="vg_update"\n' + SKIP + 'vgname="vg9"\nmetadata {\n\tseqno=1\n}'),
        [{"response": "failed", "reason": "vg_update: need VG UUID"}],
    ),
    Row(
        "vg_update without vgname",
        msg('request="vg_update"\n' + SKIP + 'metadata {\n\tid="VG9-zzzz"\n\tseqno=1\n}'),
        [{"response": "failed", "reason": "vg_update: need VG name"}],
    ),
    Row(
        "vg_update without seqno",
        msg('request="vg_update"\n' + SKIP + 'vgname="vg9"\nmetadata {\n\tid="VG9-zzzz"\n}'),
        [{"response": "failed", "reason": "vg_update: need VG seqno"}],
    ),
    Row(
        "vg_update seqno 0",
        msg('request="vg_update"\n' + SKIP + VG_BODY % 0),
        [{"response": "failed", "reason": "vg_update: failed metadata update"}],
    ),
    Row(
        "vg_update seqno -3",
        msg('request="vg_update"\n' + SKIP + VG_BODY % -3),
        [{"response": "failed", "reason": "vg_update: need VG seqno"}],
    ),
    Row(
        "vg_update seqno as string",
        msg('request="vg_update"\n' + SKIP + VG_BODY % '"5"'),
        [{"response": "failed", "reason": "vg_update: need VG seqno"}],
    ),
    Row(
        "vg_update metadata not a section",
        msg('request="vg_update"\n' + SKIP + 'vgname="vg9"\nmetadata="VG9-zzzz"'),
        [{"response": "failed", "reason": "vg_update: need VG UUID"}],
    ),
    Row(
        "vg_remove without uuid",
        msg('request="vg_remove"\n' + SKIP),
        [{"response": "failed", "reason": "need VG UUID"}],
    ),
    Row(
        "pv_lookup without uuid or device",
        msg('request="pv_lookup"\n' + SKIP),
        [{"response": "failed", "reason": "need PVID or device"}],
    ),
    Row(
        "pv_found without pvmeta",
        msg('request="pv_found"\n' + SKIP),
        [{"response": "failed", "reason": "Ignore PV without PV metadata"}],
    ),
    Row(
        "pv_found pvmeta without id",
        msg('request="pv_found"\n' + SKIP + "pvmeta {\n\tdevice=7\n}"),
        [{"response": "failed", "reason": "Ignore PV without PV UUID"}],
    ),
    Row("set_vg_info without version", msg('request="set_vg_info"\n' + SKIP + 'uuid="VG9-zzzz"'), [{"response": "OK"}]),
    Row("NUL byte ends the text", msg(b'request="hello"\0garbage {{{'), [{"response": "OK", "protocol": "lvmetad"}]),
    Row("NUL byte first", msg(b'\0request="hello"'), [MISMATCH_NONE]),
    Row(
        "invalid UTF-8 in a value",
        msg(b'request="vg_lookup"\n' + SKIP.encode() + b'name="\xff\xfe\xc3("'),
        [{"response": "unknown", "reason": "VG not found"}],
    ),
    Row("invalid UTF-8 as the request name", msg(b'request="\xffhello"\n' + SKIP.encode()), [{"response": "failed"}]),
    Row("integer beyond int64", msg('request="vg_list"\n' + SKIP + "pid=9223372036854775808"), [MISMATCH_NONE]),
    Row("integer of 5000 digits", msg('request="vg_list"\n' + SKIP + "pid=" + "9" * 5000), [MISMATCH_NONE]),
    Row(
        "integer beyond int32 in pid (truncated)",
        msg('request="vg_list"\n' + SKIP + "pid=4294967297"),
        [{"response": "OK"}],
    ),
    Row("hexadecimal integer", msg('request="vg_list"\n' + SKIP + "pid=0x10"), [MISMATCH_NONE]),
    Row("100000 nested sections", msg("a {\n" * 100000), [MISMATCH_NONE]),
    Row("100000 nested sections, closed", msg('request="hello"\n' + "a {" * 100000 + "}" * 100000), [MISMATCH_NONE]),
    Row(
        "200 nested sections in pvmeta",
        msg('request="pv_found"\n' + SKIP + "pvmeta {\n" + "a {" * 200 + "}" * 201),
        [MISMATCH_NONE],
    ),
    Row("path key 100000 deep", msg('request="hello"\n' + "a/" * 100000 + "b=1"), [MISMATCH_NONE]),
    Row("bare words and single quotes", msg("request=vg_list\ntoken='skip'"), [{"response": "OK"}]),
    Row(
        "two messages in one write",
        msg('request="hello"') + msg('request="vg_lookup"\n' + SKIP + 'uuid="VG9-zzzz"'),
        [{"response": "OK", "protocol": "lvmetad"}, {"response": "OK", "name": "vg9"}],
    ),
    Row("1000 messages in one write", msg('request="hello"') * 1000, [{"response": "OK"}] * 1000),
    Row(
        "terminator inside a quoted string",
        msg('request="hello"\nx="a\n##\nb"'),
        [MISMATCH_NONE, MISMATCH_NONE],
    ),
    Row(
        "disconnect mid-message",
        b'request="vg_update"\n' + SKIP.encode() + (VG_BODY % 7).encode()[:-10],
        hang_up=True,
    ),
    Row("disconnect right after a whole request", msg('request="vg_remove"\n' + SKIP + 'uuid="nope"'), hang_up=True),
]
RECORD: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def loaded_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon holding one VG and one PV, shared by every row."""
    d = start_daemon(tmp_path_factory.mktemp("bad-input"))
    try:
        with RawConnection(d.socket_path) as c:
            pv = 'request="pv_found"\n' + SKIP + 'pvmeta {\n\tdevice=2049\n\tid="PV9-zzzz"\n\tformat="lvm2"\n}\n'
            assert parse(c.request(pv)).get_str("response") == "OK"
            vg = VG_BODY.replace("\t}\n}", '\t\tpv0 {\n\t\t\tid="PV9-zzzz"\n\t\t}\n\t}\n}') % 3
            assert parse(c.request('request="vg_update"\n' + SKIP + vg)).get_str("response") == "OK"
        yield d
    finally:
        assert d.stop() == 0, d.log()
        if RECORD:
            width = max(len(n) for n, _ in RECORD)
            print("\n\nbad input -> reply")
            for name, reply in RECORD:
                print(f"  {name:<{width}}  {reply}")


def summary(reply: str) -> str:
    tree = parse(reply)
    return ", ".join(f"{k}={v!r}" for k, v in tree.items if k in ("response", "reason", "received", "protocol", "name"))


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_bad_input(loaded_daemon: DaemonProcess, row: Row) -> None:
    path = loaded_daemon.socket_path
    with RawConnection(path) as c:
        before = c.request('request="dump"')
    got: list[str] = []
    with RawConnection(path, timeout=30) as c:
        c.send_raw(row.data)
        if not row.hang_up:
            got = [c.read_reply() for _ in row.replies]
    for expected, reply in zip(row.replies, got, strict=True):
        tree = parse(reply)
        for key, value in expected.items():
            actual = tree.get_int64(key) if isinstance(value, int) else tree.get_str(key)
            assert actual == value, f"{key}: {actual!r} != {value!r} in {reply!r}"
    shown = summary(got[0]) if got else "(no reply: client gone)"
    if len(got) > 1:
        shown += f" (+{len(got) - 1} more: {summary(got[-1])})" if len(got) > 2 else f"; then {summary(got[1])}"
    RECORD.append((row.name, shown))
    with RawConnection(path) as c:
        assert parse(c.request('request="hello"')).get_str("response") == "OK"
        assert c.request('request="dump"') == before, "the cache changed"
    assert loaded_daemon.proc.poll() is None


def test_invalid_utf8_is_stored_and_returned_byte_for_byte(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    try:
        with RawConnection(d.socket_path) as c:
            c.send_raw(msg(b'request="pv_found"\n' + SKIP.encode() + b'pvmeta {\n\tdevice=5\n\tid="PV\xff\xfe"\n}'))
            assert b'response = "OK"' in c.read_reply().encode()
            c.send_raw(msg('request="pv_list"\n' + SKIP))
            raw = b""
            while not raw.endswith(b"\n##\n"):
                raw += c.sock.recv(65536)
            assert b'id="PV\xff\xfe"' in raw
    finally:
        assert d.stop() == 0

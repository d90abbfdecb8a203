"""The reply memo (pylvmetad.metad.handlers.memo): the same bytes as without it, always.

* A state machine drives two handlers with the same random requests, one
  through ``handle_bytes`` (memo on) and one through ``handle_text`` (no
  memo), and holds them to byte-identical replies: reads repeated with the
  very same bytes (so the memo answers them), every kind of write, token
  updates with timeouts and a clock that moves, set_vg_info and
  set_global_info invalidation.
* Each kind of change is shown to empty the memo and to be visible in the
  next reply of a read that was kept before it.
* The budget (entries, bytes, long messages and replies) is held.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pylvmetad.metad.cache import CacheState
from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.handlers.memo import MEMO_MAX_MESSAGE, ReplyMemo
from pylvmetad.metad.metrics import Metrics
from pylvmetad.shell.server import Connection, Peer, Server
from pylvmetad.wire.codec import Section, format_tree
from pylvmetad.wire.framing import decode, encode_reply, encode_request
from pylvmetad.wire.replies import ok

PEER = Peer(1, None)
VGS = {"VG0-aaaa": "vg0", "VG1-bbbb": "vg1"}
PVS = {"PV0-aaaa": 1798, "PV1-bbbb": 1799, "PV2-cccc": 2048}
TOKENS = ("skip", "filter:1", "update in progress")
PIDS = (0, 11, 12)


def message(name: str, *fields: tuple[str, object], token: str = "skip", pid: int = 11) -> bytes:
    items: list[tuple[str, object]] = [("request", name), ("token", token), ("pid", pid), ("cmd", "lvs"), *fields]
    return encode_request(format_tree(Section(items)))[: -len(b"\n##\n")]  # type: ignore[arg-type]


def metadata(vgid: str, seqno: int, pvids: list[str]) -> Section:
    pvs = Section(
        [(f"pv{i}", Section([("id", p), ("device", PVS[p]), ("status", "ALLOCATABLE")])) for i, p in enumerate(pvids)]
    )
    return Section([("id", vgid), ("seqno", seqno), ("status", ["READ", "WRITE"]), ("physical_volumes", pvs)])


def pvmeta(pvid: str, ignore: int = 0) -> Section:
    return Section(
        [
            ("device", PVS[pvid]),
            ("dev_size", 67108864),
            ("format", "lvm2"),
            ("id", pvid),
            ("mda0", Section([("ignore", ignore), ("start", 4096), ("size", 1044480)])),
        ]
    )


#: every read the machine sends, each always with the same bytes
READS: list[bytes] = [
    message(name, *fields, token=token, pid=pid)
    for token in TOKENS
    for pid in (11, 12)
    for name, fields in [
        ("hello", ()),
        ("get_global_info", ()),
        ("vg_list", ()),
        ("pv_list", ()),
        ("vg_lookup", (("uuid", "VG0-aaaa"),)),
        ("vg_lookup", (("name", "vg1"),)),
        ("vg_lookup", (("uuid", "VG0-aaaa"), ("name", "vg0"))),
        ("pv_lookup", (("uuid", "PV0-aaaa"),)),
        ("pv_lookup", (("device", 1799),)),
    ]
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoAgainstPlain(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.memo = RequestHandler(CacheState(clock=self.clock), daemon_pid=7)
        self.plain = RequestHandler(CacheState(clock=self.clock), daemon_pid=7)
        self.hits_before = 0

    def send(self, data: bytes) -> bool:
        """Send to both; whether the memo handler gave the encoding (kept or served)."""
        reply, encoded = self.memo.handle_bytes(data, PEER)
        if encoded is not None:
            assert encoded == encode_reply(reply.body)
        want = self.plain.handle_text(decode(data))
        assert reply == want, (data, reply.body, want.body)
        return encoded is not None

    @rule(data=st.sampled_from(READS), times=st.integers(1, 3))
    def read(self, data: bytes, times: int) -> None:
        kept = self.send(data)
        for _ in range(times - 1):
            hits = self.memo.memo.hits
            served = self.send(data)
            assert self.memo.memo.hits == hits + kept  # a kept reply is served the next time
            kept = served

    @rule(
        vgid=st.sampled_from(sorted(VGS)),
        seqno=st.integers(1, 4),
        pvids=st.lists(st.sampled_from(sorted(PVS)), min_size=1, max_size=2, unique=True),
        token=st.sampled_from(TOKENS),
    )
    def vg_update(self, vgid: str, seqno: int, pvids: list[str], token: str) -> None:
        self.send(message("vg_update", ("vgname", VGS[vgid]), ("metadata", metadata(vgid, seqno, pvids)), token=token))

    @rule(
        pvid=st.sampled_from(sorted(PVS)),
        vgid=st.sampled_from([None, *sorted(VGS)]),
        seqno=st.integers(1, 4),
        ignore=st.integers(0, 1),
    )
    def pv_found(self, pvid: str, vgid: str | None, seqno: int, ignore: int) -> None:
        fields: list[tuple[str, object]] = [("pvmeta", pvmeta(pvid, ignore))]
        if vgid is not None:
            fields += [("vgname", VGS[vgid]), ("metadata", metadata(vgid, seqno, [pvid]))]
        self.send(message("pv_found", *fields))

    @rule(pvid=st.sampled_from(sorted(PVS)))
    def pv_gone(self, pvid: str) -> None:
        self.send(message("pv_gone", ("uuid", pvid)))

    @rule(vgid=st.sampled_from(sorted(VGS)))
    def vg_remove(self, vgid: str) -> None:
        self.send(message("vg_remove", ("uuid", vgid)))

    @rule(vgid=st.sampled_from(sorted(VGS)))
    def vg_clear_outdated_pvs(self, vgid: str) -> None:
        self.send(message("vg_clear_outdated_pvs", ("vgid", vgid)))

    @rule()
    def pv_clear_all(self) -> None:
        self.send(message("pv_clear_all"))

    @rule(vgid=st.sampled_from(sorted(VGS)), version=st.integers(0, 6), by_name=st.booleans())
    def set_vg_info(self, vgid: str, version: int, by_name: bool) -> None:
        where = ("name", VGS[vgid]) if by_name else ("uuid", vgid)
        self.send(message("set_vg_info", where, ("version", version)))

    @rule(invalid=st.integers(-1, 1), disable=st.integers(-1, 1), reason=st.sampled_from(["", "DIRECT", "DUPLICATES"]))
    def set_global_info(self, invalid: int, disable: int, reason: str) -> None:
        self.send(
            message(
                "set_global_info", ("global_invalid", invalid), ("global_disable", disable), ("disable_reason", reason)
            )
        )

    @rule(token=st.sampled_from(TOKENS), pid=st.sampled_from(PIDS), timeout=st.sampled_from([2, 0, 1, 3]))
    def token_update(self, token: str, pid: int, timeout: int) -> None:
        self.send(message("token_update", ("update_timeout", timeout), token=token, pid=pid))

    @rule(seconds=st.integers(1, 3))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += seconds

    @rule(data=st.sampled_from(READS), seconds=st.integers(1, 3))
    def read_as_time_passes(self, data: bytes, seconds: int) -> None:
        self.send(data)
        self.clock.now += seconds
        self.send(data)

    @invariant()
    def memo_is_used_and_bounded(self) -> None:
        memo = self.memo.memo
        assert len(memo) <= memo.max_entries and memo.size <= memo.max_bytes


MemoAgainstPlain.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_memo_gives_the_replies_of_the_plain_handler = MemoAgainstPlain.TestCase


# ---------------------------------------------------------------------------
# each kind of change empties the memo, and the next read shows it
# ---------------------------------------------------------------------------
def filled() -> RequestHandler:
    handler = RequestHandler(daemon_pid=7)
    for data in (
        message("pv_found", ("pvmeta", pvmeta("PV0-aaaa"))),
        message("pv_found", ("pvmeta", pvmeta("PV1-bbbb"))),
        message("vg_update", ("vgname", "vg0"), ("metadata", metadata("VG0-aaaa", 1, ["PV0-aaaa"]))),
        message("vg_update", ("vgname", "vg1"), ("metadata", metadata("VG1-bbbb", 1, ["PV1-bbbb"]))),
        message(
            "pv_found",
            ("pvmeta", pvmeta("PV0-aaaa")),
            ("vgname", "vg0"),
            ("metadata", metadata("VG0-aaaa", 1, ["PV0-aaaa"])),
        ),
    ):
        assert handler.handle_bytes(data, PEER)[0].response == "OK"
    return handler


LOOKUP = message("vg_lookup", ("uuid", "VG0-aaaa"))
GLOBAL = message("get_global_info")
CHANGES: list[tuple[str, bytes, bytes]] = [
    ("vg_update", message("vg_update", ("vgname", "vg0"), ("metadata", metadata("VG0-aaaa", 2, ["PV0-aaaa"]))), LOOKUP),
    ("vg_remove", message("vg_remove", ("uuid", "VG0-aaaa")), LOOKUP),
    ("pv_gone", message("pv_gone", ("uuid", "PV0-aaaa")), message("pv_lookup", ("uuid", "PV0-aaaa"))),
    ("pv_found", message("pv_found", ("pvmeta", pvmeta("PV2-cccc"))), message("pv_list")),
    ("pv_clear_all", message("pv_clear_all"), message("vg_list")),
    ("set_vg_info", message("set_vg_info", ("uuid", "VG0-aaaa"), ("version", 5)), LOOKUP),
    ("set_global_info", message("set_global_info", ("global_invalid", 1)), message("vg_list")),
    (
        "set_global_info disable",
        message("set_global_info", ("global_disable", 1), ("disable_reason", "DIRECT")),
        GLOBAL,
    ),
    ("token_update begin", message("token_update", token="update in progress", pid=12), GLOBAL),
    ("token_update finish", message("token_update", token="filter:9", pid=0), message("vg_list", token="filter:9")),
]


@pytest.mark.parametrize(("kind", "change", "read"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_kind_of_change_empties_the_memo_and_shows_in_the_next_read(kind: str, change: bytes, read: bytes) -> None:
    handler = filled()
    if kind == "token_update finish":
        handler.handle_bytes(message("token_update", token="update in progress", pid=0), PEER)
    before, data = handler.handle_bytes(read, PEER)
    assert data is not None  # kept
    assert handler.handle_bytes(read, PEER)[0] is before  # and served
    hits = handler.memo.hits
    handler.handle_bytes(change, PEER)
    assert len(handler.memo) == 0
    after, _ = handler.handle_bytes(read, PEER)
    assert handler.memo.hits == hits
    assert after.body != before.body
    assert after == RequestHandler(handler.state, daemon_pid=7).handle_text(decode(read))


def test_a_change_made_to_the_cache_directly_is_caught_by_the_generation() -> None:
    handler = filled()
    first, _ = handler.handle_bytes(LOOKUP, PEER)
    handler.state.vg_remove("VG0-aaaa")  # not through a request
    again, _ = handler.handle_bytes(LOOKUP, PEER)
    assert again.response == "unknown" and first.response == "OK"


def test_get_global_info_is_not_kept_while_an_update_runs_and_its_cancel_is_seen() -> None:
    clock = Clock()
    handler = RequestHandler(CacheState(clock=clock), daemon_pid=7)
    handler.handle_bytes(message("token_update", ("update_timeout", 2), token="update in progress", pid=12), PEER)
    running, data = handler.handle_bytes(GLOBAL, PEER)
    assert data is None and 'token = "update in progress"' in running.body
    clock.now += 5
    cancelled, _ = handler.handle_bytes(GLOBAL, PEER)
    assert 'token = "none"' in cancelled.body  # the expired update was cancelled
    again, data = handler.handle_bytes(GLOBAL, PEER)
    assert again == cancelled and data is not None  # idle again: kept


def test_replies_that_failed_and_requests_that_write_are_not_kept() -> None:
    handler = filled()
    handler.handle_bytes(message("vg_lookup"), PEER)  # no uuid, no name: unknown, kept
    assert len(handler.memo) == 1
    reply, data = handler.handle_bytes(message("dump"), PEER)
    assert data is None and len(handler.memo) == 0
    reply, data = handler.handle_bytes(message("no_such_request"), PEER)
    assert reply.response == "failed" and data is None and len(handler.memo) == 0


# ---------------------------------------------------------------------------
# the budget
# ---------------------------------------------------------------------------
def test_long_messages_are_not_kept() -> None:
    handler = filled()
    long = message("vg_lookup", ("uuid", "VG0-aaaa"), ("padding", "x" * MEMO_MAX_MESSAGE))
    assert len(long) > MEMO_MAX_MESSAGE
    reply, data = handler.handle_bytes(long, PEER)
    assert reply.response == "OK" and data is None and len(handler.memo) == 0


def test_the_memo_keeps_its_entry_and_byte_budget_dropping_the_oldest() -> None:
    memo = ReplyMemo(max_entries=3, max_bytes=100)
    reply = ok("hello")
    for i in range(5):
        memo.put(b"m%d" % i, reply, b"r" * 10, stamp=1)
    assert list(memo.entries) == [b"m2", b"m3", b"m4"]
    memo.put(b"big", reply, b"r" * 90, stamp=1)  # 93 bytes: only it fits
    assert list(memo.entries) == [b"big"] and memo.size == 93
    memo.put(b"huge", reply, b"r" * 200, stamp=1)  # never fits
    assert list(memo.entries) == [b"big"]
    assert memo.get(b"big", stamp=1) is not None
    assert memo.get(b"big", stamp=2) is None and len(memo) == 0 and memo.size == 0


# ---------------------------------------------------------------------------
# through the server: written bytes and statistics as without the memo
# ---------------------------------------------------------------------------
class Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def serve(handler: object) -> tuple[Connection, Sink, Metrics, Callable[[], None]]:
    assert isinstance(handler, RequestHandler)
    metrics = Metrics(handler.state)
    sock = socket.socket(socket.AF_UNIX)
    server = Server(handler, sock, observer=metrics.observe)
    metrics.attach_server(server)
    sink = Sink()
    connection = Connection(server)
    connection.connection_made(sink)  # type: ignore[arg-type]
    return connection, sink, metrics, sock.close


def test_a_memo_hit_is_written_and_counted_as_the_request_it_answers() -> None:
    handler = filled()
    connection, sink, metrics, close = serve(handler)
    try:
        for _ in range(3):
            connection.data_received(LOOKUP + b"\n##\n")
        assert handler.memo.hits == 2
        want = encode_reply(RequestHandler(handler.state, daemon_pid=7).handle_text(decode(LOOKUP)).body)
        assert sink.written == [want] * 3
        assert sum(metrics.snapshot().requests["vg_lookup"].responses.values()) == 3
        assert connection.server.stats.bytes_out == 3 * len(want)
    finally:
        close()


def test_write_replies_kept_by_the_handler_come_with_their_encoding_and_stay_bounded() -> None:
    """pv_found's kept replies and vg_update's OK skip the server's encode; the bytes are the same."""
    handler = filled()
    for data in (
        message("pv_found", ("pvmeta", pvmeta("PV1-bbbb"))),
        message("vg_update", ("vgname", "vg0"), ("metadata", metadata("VG0-aaaa", 2, ["PV0-aaaa"]))),
    ):
        reply, encoded = handler.handle_bytes(data, PEER)
        assert reply.response == "OK"
        assert encoded == encode_reply(reply.body)
    # many distinct pv_found replies (one VG name each): the kept encodings stay bounded and right
    for i in range(200):
        vgid, name = f"VGX-{i:04d}", f"vgx{i}"
        data = message(
            "pv_found", ("pvmeta", pvmeta("PV2-cccc")), ("vgname", name), ("metadata", metadata(vgid, 1, ["PV2-cccc"]))
        )
        reply, encoded = handler.handle_bytes(data, PEER)
        assert reply.response == "OK", reply.body
        assert encoded is None or encoded == encode_reply(reply.body)
    assert len(handler._encoded) <= 2 * 64 + 2
    for reply, data in handler._encoded.values():
        assert data == encode_reply(reply.body)

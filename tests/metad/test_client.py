"""pylvmetad.client against a real pylvmetad, and against fake peers for the failure paths."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.client import (
    DEFAULT_SOCKET,
    UPDATE_IN_PROGRESS,
    AsyncClient,
    Client,
    ConnectionLost,
    DaemonNotRunning,
    LvmetadError,
    LvmetadTimeout,
    MultipleVGs,
    NotFound,
    ProtocolError,
    RequestFailed,
    TokenMismatch,
    TokenUpdating,
    check_ok,
)
from pylvmetad.wire.codec import Section, parse
from pylvmetad.wire.framing import TERMINATOR
from support.daemon import DaemonProcess

VGID = "VG0001-aaaa-bbbb-cccc-dddd-eeee-000001"
VGID2 = "VG0002-aaaa-bbbb-cccc-dddd-eeee-000002"
PV1 = "PV0001-bbbb-cccc-dddd-eeee-ffff-111111"
PV2 = "PV0002-bbbb-cccc-dddd-eeee-ffff-222222"
DEV1 = 1792
DEV2 = 1808
HELLO_OK = 'response = "OK"\nprotocol = "lvmetad"\nversion = 1\n'


# ---------------------------------------------------------------------------
# Realistic request bodies (shapes of conformance/basic.jsonl)
# ---------------------------------------------------------------------------
def pvmeta(pvid: str, device: int, mda_ignore: int = 0) -> Section:
    """A pvmeta section as pvscan sends it for a PV with one metadata area."""
    return parse(
        f'device={device}\ndev_size=131072\nformat="lvm2"\nlabel_sector=1\nid="{pvid}"\n'
        f"ext_version=2\next_flags=0\n"
        f"mda0 {{\nignore={mda_ignore}\nstart=4096\nsize=1044480\nfree_sectors=0\n}}\n"
        "da0 {\noffset=1048576\nsize=0\n}\nba0 {\noffset=0\nsize=0\n}\n"
    )


def vg_metadata(vgid: str, seqno: int, pvids: list[str], extra: str = "") -> Section:
    """VG metadata as vgcreate writes it, one PV section per pvid."""
    pvs = "".join(
        f'pv{i} {{\nid="{pvid}"\ndevice="/dev/loop{i}"\nstatus="ALLOCATABLE"\nflags=[]\n'
        f"dev_size=131072\npe_start=2048\npe_count=15\n}}\n"
        for i, pvid in enumerate(pvids)
    )
    return parse(
        f'id="{vgid}"\nseqno={seqno}\nformat="lvm2"\nstatus=["RESIZEABLE","READ","WRITE"]\nflags=[]\n'
        f"extent_size=8192\nmax_lv=0\nmax_pv=0\nmetadata_copies=0\n{extra}"
        f"physical_volumes {{\n{pvs}}}\n"
    )


def populate(client: Client, token: str = "filter:1") -> None:
    """The population sequence of pvscan --cache: one PV holding a one-PV VG "vg1"."""
    client.token_update(UPDATE_IN_PROGRESS)
    client.pv_clear_all()
    client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 1, [PV1]))
    client.token_update(token)


# ---------------------------------------------------------------------------
# A fake peer: a plain listening socket run by a thread from a script
# ---------------------------------------------------------------------------
HANG = "<hang>"  # read the request, never answer
CLOSE = "<close>"  # read the request, close the connection


class FakeDaemon:
    """Accepts one connection and answers each request with the next scripted reply.

    It records the request texts, so a test can see what the client put on
    the wire.  After the script (or at HANG) it waits until ``stop()``: the
    test controls every step, nothing sleeps.
    """

    def __init__(self, path: Path, script: list[str]) -> None:
        self.path = str(path)
        self.script = script
        self.requests: list[str] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)
        self.listener.settimeout(30)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_message(self, conn: socket.socket) -> str | None:
        buf = b""
        while not buf.endswith(TERMINATOR):
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        return buf[: -len(TERMINATOR)].decode()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            for reply in self.script:
                try:
                    request = self._read_message(conn)
                except OSError:
                    return
                if request is None:
                    return
                self.requests.append(request)
                if reply == CLOSE:
                    return
                if reply == HANG:
                    break
                conn.sendall(reply.encode() + b"\n##\n")
            self.stopped.wait(30)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[list[FakeDaemon]]:
    """Make fakes with ``make_fake(tmp_path, script)``; every one is stopped after the test."""
    made: list[FakeDaemon] = []
    yield made
    for f in made:
        f.stop()


def make_fake(made: list[FakeDaemon], path: Path, script: list[str]) -> FakeDaemon:
    f = FakeDaemon(path, script)
    made.append(f)
    return f


# ---------------------------------------------------------------------------
# Connection and handshake
# ---------------------------------------------------------------------------
def test_hello_handshake_and_reply(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        assert client.connected
        reply = client.hello()
        assert reply.get_str("protocol") == "lvmetad"
        assert reply.get_int64("version") == 1
    assert not client.connected


def test_connects_lazily_on_first_request(daemon: DaemonProcess) -> None:
    client = Client(daemon.socket_path)
    try:
        assert not client.connected
        assert client.get_global_info().get_str("token") == "none"
        assert client.connected
    finally:
        client.close()


def test_socket_path_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LVM_LVMETAD_SOCKET", raising=False)
    assert Client().socket_path == DEFAULT_SOCKET == "/run/lvm/lvmetad.socket"
    monkeypatch.setenv("LVM_LVMETAD_SOCKET", "/tmp/elsewhere.socket")
    assert Client().socket_path == "/tmp/elsewhere.socket"
    assert Client("/explicit").socket_path == "/explicit"


def test_daemon_not_running_names_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "nothing-here.socket")
    with pytest.raises(DaemonNotRunning) as info:
        Client(path).connect()
    message = str(info.value)
    assert path in message and "not running" in message and "\n" not in message
    assert info.value.socket_path == path
    assert isinstance(info.value, LvmetadError)


def test_socket_file_without_listener_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "stale.socket"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: connect is refused
    with pytest.raises(DaemonNotRunning, match=r"stale\.socket"):
        Client(str(path)).pv_list()


def test_wrong_protocol_in_hello_is_a_protocol_error(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "other.socket", ['response = "OK"\nprotocol = "lvmpolld"\nversion = 1\n'])
    client = Client(peer.path, timeout=5)
    with pytest.raises(ProtocolError, match="lvmpolld"):
        client.connect()
    assert not client.connected
    assert peer.requests == ['request="hello"\n']


def test_every_request_carries_token_pid_cmd_update_timeout(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "f.socket", [HELLO_OK, 'response = "OK"\n', 'response = "OK"\n'])
    with Client(peer.path, pid=4242, cmd="vgscan", update_timeout=7) as client:
        client.vg_lookup(name="vg1")
        client.token = "filter:99"
        client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 1, [PV1]))
    hello, lookup, found = (parse(r) for r in peer.requests)
    assert hello.keys() == ["request"]  # hello is bare, as LVM's daemon_open sends it
    assert lookup.keys() == ["request", "name", "token", "update_timeout", "pid", "cmd"]
    assert lookup.get_str("request") == "vg_lookup" and lookup.get_str("name") == "vg1"
    assert (lookup.get_str("token"), lookup.get_int64("pid"), lookup.get_str("cmd")) == ("skip", 4242, "vgscan")
    assert lookup.get_int64("update_timeout") == 7
    assert found.keys() == ["request", "pvmeta", "vgname", "metadata", "token", "update_timeout", "pid", "cmd"]
    assert found.section("pvmeta") == pvmeta(PV1, DEV1)
    assert found.get_str("metadata/id") == VGID
    assert found.get_str("token") == "filter:99"


def test_default_pid_is_ours() -> None:
    assert Client("/x").pid == os.getpid()


def test_a_value_holding_the_terminator_is_refused_before_sending(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        with pytest.raises(ValueError, match="terminator"):
            client.vg_lookup(name="x\n##\ny")
        # nothing was sent: the connection is still in step
        assert client.vg_list().get_str("response") == "OK"


# ---------------------------------------------------------------------------
# Typed requests against pylvmetad
# ---------------------------------------------------------------------------
def test_population_protocol(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path, pid=5001, cmd="pvscan") as client:
        started = client.token_update(UPDATE_IN_PROGRESS)
        assert (started.get_str_allow_empty("prev_token"), started.get_int64("update_pid")) == ("", 5001)
        assert client.token == UPDATE_IN_PROGRESS
        info = client.get_global_info()
        assert (info.get_str("token"), info.get_str("update_cmd"), info.get_int64("update_pid")) == (
            UPDATE_IN_PROGRESS,
            "pvscan",
            5001,
        )
        assert client.pv_clear_all().get_str("response") == "OK"
        found = client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 3, [PV1]))
        assert found.to_python() == {
            "response": "OK",
            "status": "complete",
            "changed": 1,
            "vgid": VGID,
            "vgname": "vg1",
            "seqno_before": 3,
            "seqno_after": 3,
        }
        orphan = client.pv_found(pvmeta(PV2, DEV2))
        assert (orphan.get_str("status"), orphan.get_str("vgid")) == ("orphan", "#orphan")
        finished = client.token_update("filter:1")
        assert (finished.get_str("prev_token"), finished.get_int64("update_pid")) == (UPDATE_IN_PROGRESS, 0)
        assert client.token == "filter:1"
        assert client.get_global_info().get_str("token") == "filter:1"


def test_pv_lookup_list_and_gone(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        by_uuid = client.pv_lookup(uuid=PV1)
        assert by_uuid.get_int64("physical_volume/device") == DEV1
        assert by_uuid.get_str("physical_volume/vgid") == VGID
        assert client.pv_lookup(device=DEV1).get_str("physical_volume/id") == PV1
        listed = client.pv_list().section("physical_volumes")
        assert listed is not None and listed.keys() == [PV1]
        assert listed.get_str(f"{PV1}/vgname") == "vg1"

        assert client.pv_gone(device=DEV1).get_str("response") == "OK"
        with pytest.raises(NotFound) as info:
            client.pv_lookup(uuid=PV1)
        assert (info.value.response, info.value.reason) == ("unknown", "PV not found")
        with pytest.raises(NotFound, match="device not in cache"):
            client.pv_gone(device=DEV1)
        with pytest.raises(NotFound, match="PVID does not exist"):
            client.pv_gone(uuid=PV2)
        # its only PV is gone, so the VG went with it
        with pytest.raises(NotFound):
            client.vg_lookup(uuid=VGID)


def test_vg_lookup_list_update_and_remove(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        looked_up = client.vg_lookup(uuid=VGID, name="vg1")
        assert looked_up.get_str("name") == "vg1"
        assert looked_up.get_int64("metadata/seqno") == 1
        # pvmeta merged into the present PV, device hint from the sender stripped
        assert looked_up.get_int64("metadata/physical_volumes/pv0/device") == DEV1
        assert client.vg_lookup(name="vg1").get_str("metadata/id") == VGID
        assert client.vg_list().get_str(f"volume_groups/{VGID}/name") == "vg1"

        assert client.vg_update("vg1", vg_metadata(VGID, 2, [PV1])).get_str("response") == "OK"
        assert client.vg_lookup(uuid=VGID).get_int64("metadata/seqno") == 2

        assert client.vg_remove(VGID).get_str("response") == "OK"
        with pytest.raises(NotFound) as info:
            client.vg_lookup(uuid=VGID)
        assert info.value.reason == "VG not found"
        orphan = client.pv_lookup(uuid=PV1).section("physical_volume")
        assert orphan is not None and orphan.child("vgid") is None and orphan.child("vgname") is None
        assert client.vg_list().section("volume_groups") == Section()


def test_set_vg_info_marks_the_vg_invalid_until_updated(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        assert client.set_vg_info(5, uuid=VGID).get_str("response") == "OK"
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") == Section()
        client.vg_update("vg1", vg_metadata(VGID, 5, [PV1]))
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") is None
        client.set_vg_info(0, name="vg1")  # version 0: invalidate unconditionally, found by name
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") is not None


def test_outdated_pvs_and_clear(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 2, [PV1, PV2]))
        older = client.pv_found(pvmeta(PV2, DEV2), vgname="vg1", metadata=vg_metadata(VGID, 1, [PV1, PV2]))
        assert (older.get_str("status"), older.get_int64("seqno_after")) == ("complete", 2)
        outdated = client.vg_lookup(uuid=VGID).section("metadata/outdated_pvs")
        assert outdated is not None and outdated.keys() == [PV2]
        assert client.vg_clear_outdated_pvs(VGID).get_str("response") == "OK"
        assert client.vg_lookup(uuid=VGID).section("metadata/outdated_pvs") is None


def test_global_info_flags(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        client.set_global_info(global_invalid=True)
        assert client.get_global_info().get_int64("global_invalid") == 1
        assert client.pv_list().section("global_invalid") == Section()
        client.set_global_info(global_disable=1, disable_reason="REPAIR")
        info = client.get_global_info()
        assert (info.get_int64("global_disable"), info.get_str("disable_reason")) == (1, "REPAIR,")
        assert info.get_int64("daemon_pid") == daemon.proc.pid
        client.set_global_info(global_invalid=0, global_disable=0)
        info = client.get_global_info()
        assert (info.get_int64("global_invalid"), info.get_str("disable_reason")) == (0, "none")


def test_dump_and_stats(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        text = client.dump()
        assert text.startswith("# VG METADATA\n")
        assert f'    {VGID} = "vg1"' in text
        stats = client.stats()
        assert stats.get_str("response") == "OK"
        # the daemon answered the dump on the same connection: it still works
        assert client.hello().get_int64("version") == 1


# ---------------------------------------------------------------------------
# Every response type as its exception
# ---------------------------------------------------------------------------
def test_call_returns_any_reply_and_check_ok_raises_request_failed(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        reply = client.call("vg_remove")  # no uuid
        assert reply.to_python() == {"response": "failed", "reason": "need VG UUID"}
        with pytest.raises(RequestFailed) as info:
            check_ok("vg_remove", reply)
        assert (info.value.response, info.value.reason, info.value.reply) == ("failed", "need VG UUID", reply)
        assert client.call("no_such_request").get_str("reason") == "request not implemented"


def test_duplicate_pv_raises_request_failed(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        client.pv_found(pvmeta(PV1, DEV1))
        with pytest.raises(RequestFailed, match="Ignore duplicate PV") as info:
            client.pv_found(pvmeta(PV1, DEV2))
        assert info.value.reply is not None and info.value.reply.get_str("response") == "failed"
        assert client.get_global_info().get_str("disable_reason") == "DUPLICATES,"


def test_missing_vg_raises_not_found(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client, pytest.raises(NotFound) as info:
        client.vg_lookup(name="nosuchvg")
    assert (info.value.response, info.value.reason) == ("unknown", "VG not found")


def test_wrong_token_raises_token_mismatch(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        populate(client, token="filter:1")
        client.token = "filter:2"
        with pytest.raises(TokenMismatch) as info:
            client.pv_list()
        err = info.value
        assert (err.expected, err.received, err.update_pid) == ("filter:1", "filter:2", 0)
        assert err.reason == "another command has populated the cache"
        client.token = "skip"
        assert client.pv_list().get_str("response") == "OK"


def test_second_updater_raises_token_updating(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path, pid=7001) as first, Client(daemon.socket_path, pid=7002) as second:
        first.token_update(UPDATE_IN_PROGRESS)
        with pytest.raises(TokenUpdating) as info:
            second.token_update(UPDATE_IN_PROGRESS)
        assert (info.value.expected, info.value.update_pid) == (UPDATE_IN_PROGRESS, 7001)
        assert second.token == "skip"  # a refused token_update does not become ours
        # the first updater's finish is refused for the second (not the updater) ...
        with pytest.raises(TokenMismatch) as mismatch:
            second.token_update("filter:1")
        assert mismatch.value.update_pid == 7001
        # ... and accepted for the first
        assert first.token_update("filter:1").get_int64("update_pid") == 0


def test_shared_vg_name_raises_multiple(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path) as client:
        client.vg_update("shared", vg_metadata(VGID, 1, [PV1]))
        client.vg_update("shared", vg_metadata(VGID2, 1, [PV2]))
        with pytest.raises(MultipleVGs) as info:
            client.vg_lookup(name="shared")
        assert (info.value.response, info.value.reason) == ("multiple", "Multiple VGs found with same name")
        assert client.vg_lookup(uuid=VGID2).get_str("name") == "shared"


# ---------------------------------------------------------------------------
# Timeouts and broken connections (fake peers)
# ---------------------------------------------------------------------------
def test_hello_timeout(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "mute.socket", [HANG])
    client = Client(peer.path, connect_timeout=0.2)
    with pytest.raises(LvmetadTimeout, match=r"mute\.socket") as info:
        client.connect()
    assert isinstance(info.value, TimeoutError)
    assert not client.connected


def test_reply_timeout_drops_the_connection(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "slow.socket", [HELLO_OK, HANG])
    client = Client(peer.path, timeout=0.2)
    try:
        client.connect()
        with pytest.raises(LvmetadTimeout, match=r"did not reply within 0\.2 s"):
            client.pv_list()
        # a late reply would be taken for the next request's: the connection is gone
        assert not client.connected
        assert [parse(r).get_str("request") for r in peer.requests] == ["hello", "pv_list"]
    finally:
        client.close()


def test_daemon_closing_mid_exchange_is_connection_lost(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "closing.socket", [HELLO_OK, CLOSE])
    with Client(peer.path) as client:
        with pytest.raises(ConnectionLost, match="closed the connection"):
            client.vg_list()
        assert not client.connected


def test_unparsable_reply_is_a_protocol_error(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "garbage.socket", [HELLO_OK, "response = {{{"])
    with Client(peer.path) as client, pytest.raises(ProtocolError, match="unparsable"):
        client.vg_list()


def test_unexpected_response_value_is_an_lvmetad_error(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    peer = make_fake(fake, tmp_path / "odd.socket", [HELLO_OK, 'response = "weird"\nreason = "why"\n'])
    with Client(peer.path) as client, pytest.raises(LvmetadError) as info:
        client.vg_list()
    assert type(info.value) is LvmetadError
    assert (info.value.response, info.value.reason) == ("weird", "why")


# ---------------------------------------------------------------------------
# AsyncClient
# ---------------------------------------------------------------------------
def test_async_client_against_pylvmetad(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(daemon.socket_path, pid=8001) as client:
            assert (await client.hello()).get_int64("version") == 1
            await client.token_update(UPDATE_IN_PROGRESS)
            await client.pv_clear_all()
            found = await client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 1, [PV1]))
            assert found.get_str("status") == "complete"
            await client.token_update("filter:1")
            assert client.token == "filter:1"
            # concurrent tasks on one connection are serialised, each gets its own reply
            vg, pvs, vgs = await asyncio.gather(client.vg_lookup(uuid=VGID), client.pv_list(), client.vg_list())
            assert vg.get_str("name") == "vg1"
            assert pvs.section(f"physical_volumes/{PV1}") is not None
            assert vgs.get_str(f"volume_groups/{VGID}/name") == "vg1"
            assert (await client.pv_lookup(device=DEV1)).get_str("physical_volume/id") == PV1
            await client.vg_update("vg1", vg_metadata(VGID, 2, [PV1]))
            await client.set_vg_info(9, uuid=VGID)
            assert (await client.vg_lookup(name="vg1")).section("vg_invalid") is not None
            await client.set_global_info(global_invalid=1)
            assert (await client.get_global_info()).get_int64("global_invalid") == 1
            assert VGID in await client.dump()
            assert (await client.stats()).get_str("response") == "OK"
            await client.vg_clear_outdated_pvs(VGID)
            assert (await client.call("vg_remove")).get_str("reason") == "need VG UUID"
            with pytest.raises(NotFound):
                await client.vg_lookup(name="nosuchvg")
            client.token = "filter:other"
            with pytest.raises(TokenMismatch):
                await client.vg_list()
            client.token = "skip"
            await client.pv_gone(uuid=PV1)
            await client.vg_remove(VGID)
            with pytest.raises(NotFound):
                await client.pv_lookup(uuid=PV1)
        assert not client.connected

    asyncio.run(scenario())


#: every typed request, with arguments (name, args, kwargs)
TYPED_CALLS: list[tuple[str, tuple[object, ...], dict[str, object]]] = [
    ("hello", (), {}),
    ("token_update", (UPDATE_IN_PROGRESS,), {"update_timeout": 30}),
    ("pv_clear_all", (), {}),
    ("pv_found", (pvmeta(PV1, DEV1),), {"vgname": "vg1", "metadata": vg_metadata(VGID, 1, [PV1])}),
    ("pv_gone", (), {"device": DEV1}),
    ("pv_lookup", (PV1,), {}),
    ("pv_list", (), {}),
    ("vg_update", ("vg1", vg_metadata(VGID, 2, [PV1])), {}),
    ("vg_remove", (VGID,), {}),
    ("vg_lookup", (), {"name": "vg1"}),
    ("vg_list", (), {}),
    ("vg_clear_outdated_pvs", (VGID,), {}),
    ("set_global_info", (), {"global_invalid": True, "disable_reason": "DIRECT"}),
    ("get_global_info", (), {}),
    ("set_vg_info", (7,), {"uuid": VGID}),
    ("dump", (), {}),
    ("stats", (), {}),
]


def test_both_clients_share_one_definition_of_the_typed_requests(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    """The 17 typed requests are defined once, and both clients put the same bytes on the wire."""
    names = [name for name, _, _ in TYPED_CALLS]
    assert len(names) == 17
    for cls in (Client, AsyncClient):
        assert not set(names) & set(vars(cls)), f"{cls.__name__} redefines a typed request"
    script = [HELLO_OK] + ['response = "OK"\n'] * len(TYPED_CALLS)
    sync_peer = make_fake(fake, tmp_path / "sync.socket", script)
    async_peer = make_fake(fake, tmp_path / "async.socket", script)
    with Client(sync_peer.path, pid=4242) as client:
        for name, args, kwargs in TYPED_CALLS:
            getattr(client, name)(*args, **kwargs)
        sync_token = client.token

    async def scenario() -> str:
        async with AsyncClient(async_peer.path, pid=4242) as client:
            for name, args, kwargs in TYPED_CALLS:
                await getattr(client, name)(*args, **kwargs)
            return client.token

    async_token = asyncio.run(scenario())
    assert sync_token == async_token == UPDATE_IN_PROGRESS  # token_update's token became the client's
    assert len(sync_peer.requests) == len(script)
    assert sync_peer.requests == async_peer.requests
    assert [parse(text).get_str("request") for text in sync_peer.requests[1:]] == names


def test_async_client_not_running_and_timeout(tmp_path: Path, fake: list[FakeDaemon]) -> None:
    missing = str(tmp_path / "absent.socket")
    peer = make_fake(fake, tmp_path / "slow.socket", [HELLO_OK, HANG])

    async def scenario() -> None:
        with pytest.raises(DaemonNotRunning, match=r"absent\.socket"):
            await AsyncClient(missing).connect()
        client = AsyncClient(peer.path, timeout=0.2)
        try:
            with pytest.raises(LvmetadTimeout):
                await client.pv_list()
            assert not client.connected
        finally:
            await client.close()

    asyncio.run(scenario())

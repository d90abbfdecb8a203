"""pylvmetactl: the original lvmetactl's commands and output, plus --json, stats and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metad.test_client import (
    DEV1,
    DEV2,
    HELLO_OK,
    PV1,
    PV2,
    VGID,
    VGID2,
    FakeDaemon,
    make_fake,
    populate,
    pvmeta,
    vg_metadata,
)
from pylvmetad.client import UPDATE_IN_PROGRESS, Client
from pylvmetad.metad.ctl import dump_to_tables, format_set_reply, format_stats, main
from pylvmetad.wire.codec import Section, parse
from support.daemon import DaemonProcess
from support.lvm_requests import EMPTY_DUMP

COMMANDS = [
    "dump",
    "pv_list",
    "vg_list",
    "get_global_info",
    "vg_lookup_name",
    "vg_lookup_uuid",
    "pv_lookup_uuid",
    "set_global_invalid",
    "set_global_disable",
    "set_vg_version",
    "vg_lock_type",
    "stats",
]


# a dump (docs/protocol.md §5), plus a second VG sharing the name "vg0"
EXAMPLE_DUMP = """# VG METADATA

aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001 {
\tid="aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
\tseqno=5
\tstatus=["RESIZEABLE","READ","WRITE"]
\tphysical_volumes {
\t\tpv0 {
\t\t\tid="PV0001-bbbb-cccc-dddd-eeee-ffff-111111"
\t\t\tstatus="ALLOCATABLE"
\t\t}
\t}
}
bbbbbb-bbbb-cccc-dddd-eeee-ffff-000002 {
\tid="bbbbbb-bbbb-cccc-dddd-eeee-ffff-000002"
\tseqno=1
}

# PV METADATA

PV0001-bbbb-cccc-dddd-eeee-ffff-111111 {
\tdevice=2048
\tid="PV0001-bbbb-cccc-dddd-eeee-ffff-111111"
\tmda0 {
\t\tignore=0
\t}
}
PV0002-bbbb-cccc-dddd-eeee-ffff-222222 {
\tdevice=2064
\tid="PV0002-bbbb-cccc-dddd-eeee-ffff-222222"
}

# VGID to VGNAME mapping

vgid_to_vgname {
    aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001 = "vg0"
    bbbbbb-bbbb-cccc-dddd-eeee-ffff-000002 = "vg0"
}

# VGID to outdated PVs mapping

aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001 {
\tpv_list=["PV0002-bbbb-cccc-dddd-eeee-ffff-222222"]
\tvgid="aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
}

# VGNAME to VGID mapping

vgname_to_vgid {
    vg0 = "bbbbbb-bbbb-cccc-dddd-eeee-ffff-000002"
    vg0 = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
}

# PVID to VGID mapping

pvid_to_vgid {
    PV0001-bbbb-cccc-dddd-eeee-ffff-111111 = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
    PV0002-bbbb-cccc-dddd-eeee-ffff-222222 = "#orphan"
}

# DEVICE to PVID mapping

device_to_pvid {
    2064 = "PV0002-bbbb-cccc-dddd-eeee-ffff-222222"
    -5 = "PV0001-bbbb-cccc-dddd-eeee-ffff-111111"
}

# VGID to INFO version mapping

vgid_to_info {
    aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001 = 7
}

# VGID to INFO flags mapping

vgid_to_info {
    aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001 = 1
}
"""


@pytest.fixture
def fakes() -> Iterator[list[FakeDaemon]]:
    """Fake peers made by a test, all stopped after it."""
    made: list[FakeDaemon] = []
    yield made
    for f in made:
        f.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------
def test_dump_to_tables_empty() -> None:
    tables = dump_to_tables(EMPTY_DUMP)
    assert tables == {
        "vgid_to_metadata": {},
        "pvid_to_pvmeta": {},
        "vgid_to_vgname": {},
        "vgid_to_outdated_pvs": {},
        "vgname_to_vgid": {},
        "pvid_to_vgid": {},
        "device_to_pvid": {},
        "vgid_to_info": {},
    }


def test_dump_to_tables_every_table() -> None:
    a, b = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001", "bbbbbb-bbbb-cccc-dddd-eeee-ffff-000002"
    p1, p2 = "PV0001-bbbb-cccc-dddd-eeee-ffff-111111", "PV0002-bbbb-cccc-dddd-eeee-ffff-222222"
    tables = dump_to_tables(EXAMPLE_DUMP)
    assert tables["vgid_to_metadata"] == {
        a: {
            "id": a,
            "seqno": 5,
            "status": ["RESIZEABLE", "READ", "WRITE"],
            "physical_volumes": {"pv0": {"id": p1, "status": "ALLOCATABLE"}},
        },
        b: {"id": b, "seqno": 1},
    }
    assert tables["pvid_to_pvmeta"] == {
        p1: {"device": 2048, "id": p1, "mda0": {"ignore": 0}},
        p2: {"device": 2064, "id": p2},
    }
    assert tables["vgid_to_vgname"] == {a: "vg0", b: "vg0"}
    assert tables["vgid_to_outdated_pvs"] == {a: [p2]}
    assert tables["vgname_to_vgid"] == {"vg0": [a, b]}  # repeated key kept, sorted
    assert tables["pvid_to_vgid"] == {p1: a, p2: "#orphan"}
    assert tables["device_to_pvid"] == {"2064": p2, "-5": p1}
    assert tables["vgid_to_info"] == {a: {"version": 7, "flags": 1}}


def test_dump_to_tables_reads_flags_as_hex() -> None:
    text = EMPTY_DUMP.replace(
        "vgid_to_info {\n}\n\n# VGID to INFO flags", "vgid_to_info {\n    X = 16\n}\n\n# VGID to INFO flags"
    )
    text = text[: text.rindex("vgid_to_info {")] + "vgid_to_info {\n    X = 10\n}\n"
    assert dump_to_tables(text)["vgid_to_info"] == {"X": {"version": 16, "flags": 16}}


def test_format_stats_groups_nested_sections() -> None:
    reply = parse(
        'response="OK"\nuptime=3\n'
        "requests {\n\ttotal=12\n\tpv_found {\n\t\tcount=10\n\t\tp99_seconds=0.5\n\t}\n}\n"
        'cache {\n\tpvs=2\n\tlongest_name_here=["a","b"]\n\ttoken=""\n}\nempty {\n}\n'
    )
    assert format_stats(reply) == (
        "uptime  3\n"
        "\n"
        "requests\n"
        "  total  12\n"
        "\n"
        "requests/pv_found\n"
        "  count        10\n"
        "  p99_seconds  0.5\n"
        "\n"
        "cache\n"
        "  pvs                2\n"
        "  longest_name_here  a, b\n"
        '  token              ""\n'
        "\n"
        "empty\n"
        "  (none)\n"
    )
    assert format_stats(parse('response="OK"\n')) == "(no figures)\n"


def test_format_set_reply_matches_lvmetactl() -> None:
    assert format_set_reply(parse('response = "OK"\n')) == 'response "OK" status "" reason ""\n'
    failed = parse('response = "failed"\nreason = "request not implemented"\n')
    assert format_set_reply(failed) == 'response "failed" status "" reason "request not implemented"\n'


# ---------------------------------------------------------------------------
# Commands against pylvmetad
# ---------------------------------------------------------------------------
RAW_COMMANDS = [
    (["get_global_info"], "get_global_info", {}),
    (["pv_list"], "pv_list", {}),
    (["vg_list"], "vg_list", {}),
    (["vg_lookup_name", "vg1"], "vg_lookup", {"name": "vg1"}),
    (["vg_lookup_uuid", VGID], "vg_lookup", {"uuid": VGID}),
    (["pv_lookup_uuid", PV1], "pv_lookup", {"uuid": PV1}),
]


@pytest.mark.parametrize(("argv", "request_name", "fields"), RAW_COMMANDS, ids=[c[0][0] for c in RAW_COMMANDS])
def test_raw_commands_print_the_reply_as_lvmetactl(
    daemon: DaemonProcess,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    request_name: str,
    fields: dict[str, str],
) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        expected = client.call_text(request_name, None, **fields)
    code, out, err = run(capsys, "--socket", daemon.socket_path, *argv)
    assert (code, err) == (0, "")
    assert out == expected + "\n"  # printf("%s\n", reply.buffer.mem)
    assert out.startswith(('response = "OK"\n', 'response="OK"\n'))

    code, out, err = run(capsys, *argv, "--json", "--socket", daemon.socket_path)
    assert (code, err) == (0, "")
    assert json.loads(out) == parse(expected).to_python()


def test_lookup_of_missing_vg_exits_1_with_reason(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--socket", daemon.socket_path, "vg_lookup_name", "nosuchvg")
    assert code == 1
    assert out == 'response = "unknown"\nreason = "VG not found"\n\n'
    assert err == "pylvmetactl: vg_lookup: lvmetad answered 'unknown': VG not found\n"


def test_set_global_invalid_and_disable(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    sock = ["--socket", daemon.socket_path]
    assert run(capsys, *sock, "set_global_invalid", "1") == (0, 'response "OK" status "" reason ""\n', "")
    assert run(capsys, *sock, "set_global_disable", "1") == (0, 'response "OK" status "" reason ""\n', "")
    with Client(daemon.socket_path) as client:
        info = client.get_global_info()
        assert (info.get_int64("global_invalid"), info.get_int64("global_disable")) == (1, 1)
        assert info.get_str("disable_reason") == "DIRECT,"
    code, out, _ = run(capsys, *sock, "--json", "set_global_invalid", "0")
    assert (code, json.loads(out)) == (0, {"response": "OK"})
    run(capsys, *sock, "set_global_disable", "0")
    with Client(daemon.socket_path) as client:
        info = client.get_global_info()
        assert (info.get_int64("global_invalid"), info.get_str("disable_reason")) == (0, "none")


def test_set_global_flag_rejects_other_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["set_global_invalid", "2"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_set_vg_version(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    sock = ["--socket", daemon.socket_path]
    with Client(daemon.socket_path) as client:
        populate(client)
        assert run(capsys, *sock, "set_vg_version", VGID, "-", "5") == (0, 'response "OK" status "" reason ""\n', "")
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") is not None
        client.vg_update("vg1", vg_metadata(VGID, 5, [PV1]))
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") is None
        assert run(capsys, *sock, "set_vg_version", "-", "vg1", "0")[0] == 0  # by name, unconditional
        assert client.vg_lookup(uuid=VGID).section("vg_invalid") is not None


def test_set_vg_version_needs_uuid_or_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--socket", str(tmp_path / "unused"), "set_vg_version", "-", "-", "3"])
    assert info.value.code == 2
    assert "name or uuid required" in capsys.readouterr().err


def test_vg_lock_type(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    sock = ["--socket", daemon.socket_path]
    with Client(daemon.socket_path) as client:
        client.vg_update("shared_vg", vg_metadata(VGID, 1, [PV1], extra='lock_type="sanlock"\n'))
        client.vg_update("local_vg", vg_metadata(VGID2, 1, [PV2]))
    assert run(capsys, *sock, "vg_lock_type", VGID) == (0, "lock_type sanlock\n", "")
    assert run(capsys, *sock, "vg_lock_type", VGID2) == (0, "no lock_type\n", "")
    code, out, _ = run(capsys, *sock, "--json", "vg_lock_type", VGID)
    assert (code, json.loads(out)) == (0, {"response": "OK", "lock_type": "sanlock"})
    code, out, err = run(capsys, *sock, "vg_lock_type", "no-such-uuid")
    assert (code, out) == (1, "no metadata\n")
    assert "VG not found" in err


def test_dump_raw_is_the_reply_text(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        expected = client.dump()
    code, out, err = run(capsys, "--socket", daemon.socket_path, "dump")
    assert (code, out, err) == (0, expected + "\n", "")


def test_dump_json_has_every_table_sorted(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(daemon.socket_path) as client:
        # a VG "vg1" on PV1 (seqno 2) whose other PV, PV2, holds older metadata
        client.pv_found(pvmeta(PV1, DEV1), vgname="vg1", metadata=vg_metadata(VGID, 2, [PV1, PV2]))
        client.pv_found(pvmeta(PV2, DEV2), vgname="vg1", metadata=vg_metadata(VGID, 1, [PV1, PV2]))
        # a second VG with the same name, and an invalidation record for the first
        client.vg_update("vg1", vg_metadata(VGID2, 1, []))
        client.set_vg_info(7, uuid=VGID)
    code, out, err = run(capsys, "--socket", daemon.socket_path, "dump", "--json")
    assert (code, err) == (0, "")
    tables = json.loads(out)
    assert out == json.dumps(tables, indent=2, sort_keys=True) + "\n"  # one document, keys sorted
    assert sorted(tables) == sorted(
        [
            "vgid_to_metadata",
            "pvid_to_pvmeta",
            "vgid_to_vgname",
            "vgid_to_outdated_pvs",
            "vgname_to_vgid",
            "pvid_to_vgid",
            "device_to_pvid",
            "vgid_to_info",
        ]
    )
    assert sorted(tables["vgid_to_metadata"]) == [VGID, VGID2]
    assert tables["vgid_to_metadata"][VGID]["seqno"] == 2
    # device hints are stripped from stored metadata
    assert "device" not in tables["vgid_to_metadata"][VGID]["physical_volumes"]["pv0"]
    assert tables["pvid_to_pvmeta"][PV2]["device"] == DEV2
    assert tables["vgid_to_vgname"] == {VGID: "vg1", VGID2: "vg1"}
    assert tables["vgid_to_outdated_pvs"] == {VGID: [PV2]}
    assert tables["vgname_to_vgid"] == {"vg1": sorted([VGID, VGID2])}
    assert tables["pvid_to_vgid"] == {PV1: VGID, PV2: VGID}
    assert tables["device_to_pvid"] == {str(DEV1): PV1, str(DEV2): PV2}
    assert tables["vgid_to_info"] == {VGID: {"version": 7, "flags": 1}}


def test_stats_table_and_json(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(daemon.socket_path) as client:
        populate(client)
        reply = client.stats()
    code, out, err = run(capsys, "--socket", daemon.socket_path, "stats")
    assert (code, err) == (0, "")
    assert "response" not in out
    headers = {line for line in out.splitlines() if line and not line.startswith(" ")}
    for name, _ in reply.sections():  # every section the daemon reports has a group
        assert any(h == name or h.startswith(name + "/") for h in headers), name
    code, out, err = run(capsys, "--socket", daemon.socket_path, "stats", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["response"] == "OK"


def test_stats_refused_by_a_daemon_without_it(
    tmp_path: Path, fakes: list[FakeDaemon], capsys: pytest.CaptureFixture[str]
) -> None:
    # the C daemon answers unknown requests this way
    peer = make_fake(
        fakes, tmp_path / "c.socket", [HELLO_OK, 'response = "failed"\nreason = "request not implemented"\n']
    )
    code, out, err = run(capsys, "--socket", peer.path, "stats")
    assert (code, out) == (1, "")
    assert err == "pylvmetactl: stats: lvmetad answered 'failed': request not implemented\n"
    request = parse(peer.requests[1])
    assert (request.get_str("request"), request.get_str("token")) == ("stats", "skip")


def test_requests_carry_token_skip(tmp_path: Path, fakes: list[FakeDaemon], capsys: pytest.CaptureFixture[str]) -> None:
    peer = make_fake(fakes, tmp_path / "c.socket", [HELLO_OK, 'response = "OK"\n'])
    assert run(capsys, "--socket", peer.path, "set_global_disable", "1")[0] == 0
    sent = parse(peer.requests[1])
    assert sent.get_str("request") == "set_global_info"
    assert (sent.get_int64("global_disable"), sent.get_str("disable_reason")) == (1, "DIRECT")
    assert (sent.get_str("token"), sent.get_str("cmd")) == ("skip", "pylvmetactl")
    assert sent.get_int64("pid") == os.getpid()


def test_token_update_in_progress_does_not_block_ctl(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(daemon.socket_path, pid=9001) as updater:
        updater.token_update(UPDATE_IN_PROGRESS)
        code, out, _ = run(capsys, "--socket", daemon.socket_path, "--json", "get_global_info")
    assert code == 0
    assert json.loads(out)["token"] == UPDATE_IN_PROGRESS


# ---------------------------------------------------------------------------
# Usage, help and the not-running case
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pylvmetactl {command} ")
    assert "--json" in out and "--socket" in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: pylvmetactl" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_not_running(where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "no.socket")
    argv = ["--socket", path, "vg_list"] if where == "before" else ["vg_list", "--socket", path]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (3, "")
    assert err == f"pylvmetactl: lvmetad is not running: cannot connect to {path}: No such file or directory\n"


def test_console_entry_point_uses_environment_socket(daemon: DaemonProcess) -> None:
    env = {**os.environ, "LVM_LVMETAD_SOCKET": daemon.socket_path}
    result = subprocess.run(
        [sys.executable, "-m", "pylvmetad.metad.ctl", "get_global_info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert f"daemon_pid = {daemon.proc.pid}\n" in result.stdout
    reply = parse(result.stdout)
    assert isinstance(reply, Section) and reply.get_str("token") == "none"

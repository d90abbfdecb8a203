"""The token protocol (docs/protocol.md §4), without sockets.

``token_update`` is tested as the state machine of docs/protocol.md §4, one table
row per transition; then the two gates every other request passes, the
cancellation of an abandoned update by ``get_global_info`` (driven by a fake
clock) and the length limits on the token and the updater's command name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pylvmetad.wire.codec import parse
from support.lvm_requests import (
    FILTER,
    IP,
    MISMATCH_REASON,
    OTHER_FILTER,
    STALE_UPDATER_REASON,
    Session,
    checked_session,
    new_session,
    pv_found,
    pvid,
    request,
)

UPDATER = 100
OTHER = 200


@pytest.fixture
def s() -> Iterator[Session]:
    yield from checked_session()


def token_fields(session: Session) -> tuple[str, int, str, int, int]:
    t = session.state.tokens
    return t.token, t.update_pid, t.update_cmd, t.update_begin, t.update_timeout


# ---------------------------------------------------------------------------
# token_update: the state machine, row by row
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One transition: daemon state, the token_update sent, what comes back."""

    name: str
    daemon_token: str  # "" (fresh), FILTER (populated) or IP (update running, by UPDATER)
    running_timeout: int  # update_timeout the running updater recorded (IP only)
    elapsed: float  # seconds since the running update began
    sent_token: str
    sent_pid: int
    reply: dict[str, object]
    token_after: str
    pid_after: int


ROWS = [
    Row("start from fresh", "", 0, 0, IP, OTHER, {"response": "OK", "prev_token": "", "update_pid": OTHER}, IP, OTHER),
    Row(
        "start from populated",
        FILTER,
        0,
        0,
        IP,
        OTHER,
        {"response": "OK", "prev_token": FILTER, "update_pid": OTHER},
        IP,
        OTHER,
    ),
    Row(
        "IP to IP within the timeout: token_updating",
        IP,
        10,
        9,
        IP,
        OTHER,
        {"response": "token_updating", "expected": IP, "update_pid": UPDATER, "reason": MISMATCH_REASON},
        IP,
        UPDATER,
    ),
    Row(
        "IP to IP by the updater itself within the timeout: token_updating too",
        IP,
        10,
        0,
        IP,
        UPDATER,
        {"response": "token_updating", "expected": IP, "update_pid": UPDATER, "reason": MISMATCH_REASON},
        IP,
        UPDATER,
    ),
    Row(
        "IP to IP at exactly the timeout: takeover",
        IP,
        10,
        10,
        IP,
        OTHER,
        {"response": "OK", "prev_token": IP, "update_pid": OTHER},
        IP,
        OTHER,
    ),
    Row(
        "IP to IP after the timeout: takeover",
        IP,
        10,
        60,
        IP,
        OTHER,
        {"response": "OK", "prev_token": IP, "update_pid": OTHER},
        IP,
        OTHER,
    ),
    Row(
        "IP to IP with a recorded timeout 0: takeover at once",
        IP,
        0,
        0,
        IP,
        OTHER,
        {"response": "OK", "prev_token": IP, "update_pid": OTHER},
        IP,
        OTHER,
    ),
    Row(
        "IP to IP with a negative recorded timeout: never expires (unsigned compare)",
        IP,
        -1,
        10**6,
        IP,
        OTHER,
        {"response": "token_updating", "expected": IP, "update_pid": UPDATER, "reason": MISMATCH_REASON},
        IP,
        UPDATER,
    ),
    Row(
        "finish by the updater",
        IP,
        10,
        1,
        FILTER,
        UPDATER,
        {"response": "OK", "prev_token": IP, "update_pid": 0},
        FILTER,
        0,
    ),
    Row(
        "finish by the updater after its timeout (nobody cancelled it)",
        IP,
        10,
        100,
        FILTER,
        UPDATER,
        {"response": "OK", "prev_token": IP, "update_pid": 0},
        FILTER,
        0,
    ),
    Row(
        "finish by another pid: token_mismatch",
        IP,
        10,
        1,
        FILTER,
        OTHER,
        {
            "response": "token_mismatch",
            "expected": IP,
            "received": FILTER,
            "update_pid": UPDATER,
            "reason": MISMATCH_REASON,
        },
        IP,
        UPDATER,
    ),
    Row(
        "non-IP to non-IP: no-op",
        FILTER,
        0,
        0,
        OTHER_FILTER,
        OTHER,
        {"response": "OK", "prev_token": "", "update_pid": 0},
        FILTER,
        0,
    ),
    Row(
        "fresh to a filter: no-op, the token stays empty",
        "",
        0,
        0,
        FILTER,
        OTHER,
        {"response": "OK", "prev_token": "", "update_pid": 0},
        "",
        0,
    ),
    Row(
        "same filter again: no-op",
        FILTER,
        0,
        0,
        FILTER,
        OTHER,
        {"response": "OK", "prev_token": "", "update_pid": 0},
        FILTER,
        0,
    ),
]


def bring_to(session: Session, token: str, timeout: int) -> None:
    """Put the daemon token in the row's start state, by the protocol itself."""
    if token in (IP, FILTER):
        assert session.token_update(IP, pid=UPDATER, update_timeout=timeout).get_str("response") == "OK"
    if token == FILTER:
        assert session.token_update(FILTER, pid=UPDATER).get_str("response") == "OK"
    assert session.state.tokens.token == token


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_token_update_transition(s: Session, row: Row) -> None:
    bring_to(s, row.daemon_token, row.running_timeout)
    s.clock.advance(row.elapsed)

    reply = s.token_update(row.sent_token, pid=row.sent_pid, update_timeout=7)

    assert reply.to_python() == row.reply
    assert s.state.tokens.token == row.token_after
    assert s.state.tokens.update_pid == row.pid_after


def test_start_records_the_update_bookkeeping(s: Session) -> None:
    s.clock.now = 5000.7
    s.send('request="token_update"\n', token=IP, pid=321, cmd="pvscan")

    assert token_fields(s) == (IP, 321, "pvscan", 5000, 10)
    info = s.fields(request("get_global_info"), token="skip")
    assert (info["token"], info["update_cmd"], info["update_pid"], info["update_begin"], info["update_timeout"]) == (
        IP,
        "pvscan",
        321,
        5000,
        10,
    )


def test_takeover_replaces_the_bookkeeping_with_the_new_updater(s: Session) -> None:
    s.send('request="token_update"\n', token=IP, pid=UPDATER, cmd="first")
    s.clock.advance(11)
    s.update_timeout = 30
    s.send('request="token_update"\n', token=IP, pid=OTHER, cmd="second")

    assert token_fields(s) == (IP, OTHER, "second", int(s.clock.now), 30)


def test_finish_clears_the_bookkeeping(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    s.token_update(FILTER, pid=UPDATER)

    assert token_fields(s) == (FILTER, 0, "", 0, 0)


def test_finish_without_a_token_field_sets_the_literal_none(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    reply = s.handler.handle_text(f'request="token_update"\npid={UPDATER}\n')

    assert reply.response == "OK"
    assert s.state.tokens.token == "NONE"


def test_token_update_is_never_gated(s: Session) -> None:
    s.populate()  # daemon token is FILTER now
    reply = s.token_update(IP, pid=OTHER)  # carries a token that differs from the daemon's

    assert reply.get_str("response") == "OK"


def test_full_population_sequence_prev_tokens_and_pids(s: Session) -> None:
    """Checklist D.4: prev_token "" then "update in progress"; update_pid = pid then 0."""
    first = s.token_update(IP)
    s.fields('request="pv_clear_all"\n', token=IP)
    s.fields(pv_found(pvid(1), 2048), token=IP)
    last = s.token_update(FILTER)

    assert first.to_python() == {"response": "OK", "prev_token": "", "update_pid": s.pid}
    assert last.to_python() == {"response": "OK", "prev_token": IP, "update_pid": 0}
    assert s.state.tokens.token == FILTER


# ---------------------------------------------------------------------------
# the token gate and the stale-updater gate
# ---------------------------------------------------------------------------
def test_mismatch_on_a_fresh_daemon_without_token(s: Session) -> None:
    reply = s.handler.handle_text('request="vg_list"\n')

    assert parse(reply.body).to_python() == {
        "response": "token_mismatch",
        "expected": "",
        "received": "NONE",
        "update_pid": 0,
        "reason": MISMATCH_REASON,
    }


def test_mismatch_reply_fields_after_population(s: Session) -> None:
    s.populate()
    reply = s.fields(request("pv_list"), token=OTHER_FILTER)

    assert reply == {
        "response": "token_mismatch",
        "expected": FILTER,
        "received": OTHER_FILTER,
        "update_pid": 0,
        "reason": MISMATCH_REASON,
    }


@pytest.mark.parametrize("token_line", ["token=5\n", 'token=""\n', ""])
def test_missing_empty_or_non_string_token_reads_as_none(s: Session, token_line: str) -> None:
    s.populate()
    reply = s.handler.handle_text('request="vg_list"\n' + token_line)

    assert reply.response == "token_mismatch"
    assert reply.body.count('received = "NONE"') == 1


def test_mismatch_during_an_update_names_the_updater(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    reply = s.fields(request("vg_list"), token=FILTER, pid=OTHER)

    assert reply == {
        "response": "token_mismatch",
        "expected": IP,
        "received": FILTER,
        "update_pid": UPDATER,
        "reason": MISMATCH_REASON,
    }


@pytest.mark.parametrize(
    "name",
    ["pv_list", "vg_list", "get_global_info", "set_global_info", "set_vg_info", "pv_clear_all", "vg_lookup"],
)
def test_skip_bypasses_the_token_gate(s: Session, name: str) -> None:
    s.populate()
    reply = s.send(request(name), token="skip")

    assert reply.response != "token_mismatch"


def test_skip_is_served_during_an_update(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    assert s.send(request("vg_list"), token="skip", pid=OTHER).response == "OK"


def test_gate_refuses_every_request_including_global_info_and_unknown_names(s: Session) -> None:
    s.populate()
    for name in ("pv_list", "get_global_info", "set_global_info", "set_vg_info", "pv_clear_all", "no_such_request"):
        assert s.send(request(name), token=OTHER_FILTER).response == "token_mismatch", name


def test_dump_is_exempt_from_the_token_gate(s: Session) -> None:
    s.populate()
    reply = s.send(request("dump"), token=OTHER_FILTER)

    assert reply.body.startswith("# VG METADATA\n")


@pytest.mark.parametrize("name", ["pv_list", "dump"])  # dump is token-exempt, but not updater-exempt
def test_stale_updater_gate(s: Session, name: str) -> None:
    s.token_update(IP, pid=UPDATER)
    reply = s.fields(request(name), token=IP, pid=OTHER)

    assert reply == {
        "response": "token_mismatch",
        "expected": IP,
        "received": IP,
        "update_pid": UPDATER,
        "reason": STALE_UPDATER_REASON,
    }


def test_update_in_progress_token_without_pid_is_served(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    reply = s.handler.handle_text(f'request="vg_list"\ntoken="{IP}"\n')

    assert reply.response == "OK"


def test_update_in_progress_token_from_the_updater_is_served(s: Session) -> None:
    s.token_update(IP, pid=UPDATER)
    assert s.send(request("pv_clear_all"), token=IP, pid=UPDATER).response == "OK"


def test_update_in_progress_with_updater_pid_zero_serves_any_pid(s: Session) -> None:
    s.handler.handle_text(f'request="token_update"\ntoken="{IP}"\nupdate_timeout=10\n')  # no pid: update_pid 0
    assert s.state.tokens.update_pid == 0

    assert s.send(request("vg_list"), token=IP, pid=OTHER).response == "OK"


def test_taken_over_updater_is_locked_out(s: Session) -> None:
    """docs/protocol.md §4: after a takeover the old updater's requests and its finish are refused."""
    s.token_update(IP, pid=UPDATER, update_timeout=5)
    s.clock.advance(5)
    assert s.token_update(IP, pid=OTHER).get_str("response") == "OK"

    assert s.fields(pv_found(pvid(1), 2048), token=IP, pid=UPDATER)["reason"] == STALE_UPDATER_REASON
    assert s.token_update(FILTER, pid=UPDATER).get_str("response") == "token_mismatch"
    assert s.state.pvid_to_pvmeta == {}
    assert s.token_update(FILTER, pid=OTHER).to_python() == {"response": "OK", "prev_token": IP, "update_pid": 0}


# ---------------------------------------------------------------------------
# get_global_info cancels an abandoned update
# ---------------------------------------------------------------------------
def global_info(session: Session) -> dict[str, object]:
    return session.fields(request("get_global_info"), token="skip")


def test_get_global_info_leaves_a_young_update_alone(s: Session) -> None:
    s.token_update(IP, pid=UPDATER, update_timeout=10)
    s.clock.advance(9.9)

    info = global_info(s)

    assert info["token"] == IP
    assert info["update_pid"] == UPDATER
    assert s.state.tokens.token == IP


def test_get_global_info_cancels_an_expired_update(s: Session) -> None:
    """Checklist D.7, with a fake clock instead of a 2 s sleep."""
    s.update_timeout = 1
    s.send('request="token_update"\n', token=IP, pid=UPDATER, cmd="pvscan")
    s.clock.advance(2)

    info = global_info(s)

    assert info == {
        "response": "OK",
        "global_invalid": 0,
        "global_disable": 0,
        "disable_reason": "none",
        "daemon_pid": 777,
        "token": "none",
        "update_cmd": "",
        "update_pid": 0,
        "update_begin": 0,
        "update_timeout": 0,
    }
    assert token_fields(s) == ("", 0, "", 0, 0)
    # the cancelled updater: its requests are refused with expected "", its finish is a no-op
    late = s.fields(request("pv_clear_all"), token=IP, pid=UPDATER)
    assert (late["response"], late["expected"], late["received"]) == ("token_mismatch", "", IP)
    finish = s.token_update(FILTER, pid=UPDATER)
    assert finish.to_python() == {"response": "OK", "prev_token": "", "update_pid": 0}
    assert global_info(s)["token"] == "none"


def test_cancellation_happens_exactly_at_the_timeout(s: Session) -> None:
    s.token_update(IP, pid=UPDATER, update_timeout=3)
    s.clock.advance(3)

    assert global_info(s)["token"] == "none"


def test_update_with_timeout_zero_is_never_cancelled(s: Session) -> None:
    s.token_update(IP, pid=UPDATER, update_timeout=0)
    s.clock.advance(10**6)

    assert global_info(s)["token"] == IP


def test_only_get_global_info_cancels(s: Session) -> None:
    s.token_update(IP, pid=UPDATER, update_timeout=1)
    s.clock.advance(100)
    s.send(request("vg_list"), token="skip")
    s.send(request("dump"), token="skip")

    assert s.state.tokens.token == IP


def test_get_global_info_is_itself_gated(s: Session) -> None:
    s.token_update(IP, pid=UPDATER, update_timeout=1)
    s.clock.advance(100)
    reply = s.send(request("get_global_info"), token=FILTER)

    assert reply.response == "token_mismatch"
    assert s.state.tokens.token == IP  # a refused request cancels nothing


# ---------------------------------------------------------------------------
# length limits
# ---------------------------------------------------------------------------
def test_token_is_truncated_to_127_bytes() -> None:
    session = new_session()
    long_token = "filter:" + "9" * 200
    session.token_update(IP)
    session.token_update(long_token)

    assert session.state.tokens.token == long_token[:127]
    assert len(session.state.tokens.token.encode()) == 127
    # a client using the long token never matches again; the first 127 bytes do
    assert session.send(request("vg_list"), token=long_token).response == "token_mismatch"
    assert session.send(request("vg_list"), token=long_token[:127]).response == "OK"
    assert global_info(session)["token"] == long_token[:127]


def test_token_of_exactly_127_bytes_is_kept() -> None:
    session = new_session()
    token = "f" * 127
    session.token_update(IP)
    session.token_update(token)

    assert session.state.tokens.token == token


def test_update_cmd_is_truncated_to_31_bytes(s: Session) -> None:
    cmd = "c" * 40
    s.send('request="token_update"\n', token=IP, pid=UPDATER, cmd=cmd)

    assert s.state.tokens.update_cmd == cmd[:31]
    assert global_info(s)["update_cmd"] == cmd[:31]


def test_update_cmd_defaults_to_none_literal_when_absent(s: Session) -> None:
    s.handler.handle_text(f'request="token_update"\ntoken="{IP}"\npid={UPDATER}\n')

    assert global_info(s)["update_cmd"] == "NONE"

"""The token table of pylvmetad.metad.tokens: complete, and true of the daemon.

Every row of ``TRANSITIONS`` is driven through the request handler from a
state in the row's phase with a request that meets its guard.  The code
follows the table's *action*, so what is checked against the daemon is the
rest of the row: the reply's response word is the one that action means,
the request reached the row (the state was in its phase) and the daemon ends
in the row's *next phase*, which no code reads.  What each action must be is
pinned down independently, row by row of docs/protocol.md §4, in
test_token_protocol.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pylvmetad.metad.tokens import TRANSITIONS, Action, Event, Guard, Phase, phase_of
from support.lvm_requests import FILTER, IP, Session, new_session

UPDATER = 100
OTHER = 200
TIMEOUT = 10

#: the guards each (phase, event) can meet; the table must name exactly these
EXPECTED_GUARDS = {
    (Phase.IDLE, Event.BEGIN): {Guard.ANY},
    (Phase.IDLE, Event.FINISH): {Guard.ANY},
    (Phase.IDLE, Event.QUERY): {Guard.ANY},
    # no STALE_UPDATER while idle: update_pid is 0 then (an invariant of the cache)
    (Phase.IDLE, Event.REQUEST): {Guard.MATCHING, Guard.MISMATCHED},
    (Phase.UPDATING, Event.BEGIN): {Guard.LIVE, Guard.EXPIRED},
    (Phase.UPDATING, Event.FINISH): {Guard.OWNER, Guard.NOT_OWNER},
    (Phase.UPDATING, Event.QUERY): {Guard.LIVE, Guard.EXPIRED},
    (Phase.UPDATING, Event.REQUEST): {Guard.MATCHING, Guard.MISMATCHED, Guard.STALE_UPDATER},
}

#: the response word each action answers with (SERVE/CANCEL: the request's own OK)
RESPONSE = {
    Action.START: "OK",
    Action.REFUSE_UPDATING: "token_updating",
    Action.FINISH: "OK",
    Action.REFUSE_NOT_OWNER: "token_mismatch",
    Action.IGNORE: "OK",
    Action.CANCEL: "OK",
    Action.SERVE: "OK",
    Action.REFUSE_MISMATCH: "token_mismatch",
    Action.REFUSE_STALE: "token_mismatch",
}


def test_every_phase_and_event_has_exactly_its_guards() -> None:
    named: dict[tuple[Phase, Event], set[Guard]] = {}
    for phase, event, guard in TRANSITIONS:
        named.setdefault((phase, event), set()).add(guard)
    assert named == EXPECTED_GUARDS


@dataclass(frozen=True)
class Case:
    """A state in the row's phase and a request meeting its guard."""

    setup: Callable[[Session], None]
    send: Callable[[Session], str]


def idle(s: Session) -> None:
    s.populate(token=FILTER)


def updating(elapsed: float) -> Callable[[Session], None]:
    def setup(s: Session) -> None:
        s.populate(token=FILTER)
        assert s.token_update(IP, pid=UPDATER, update_timeout=TIMEOUT).get_str("response") == "OK"
        s.clock.advance(elapsed)

    return setup


def send_token_update(token: str, pid: int) -> Callable[[Session], str]:
    return lambda s: s.send('request="token_update"\n', token=token, pid=pid).response


def send(name: str, token: str, pid: int) -> Callable[[Session], str]:
    return lambda s: s.send(f'request="{name}"\n', token=token, pid=pid).response


LIVE, EXPIRED = updating(TIMEOUT / 2), updating(TIMEOUT + 1)
CASES: dict[tuple[Phase, Event, Guard], Case] = {
    (Phase.IDLE, Event.BEGIN, Guard.ANY): Case(idle, send_token_update(IP, UPDATER)),
    (Phase.UPDATING, Event.BEGIN, Guard.LIVE): Case(LIVE, send_token_update(IP, OTHER)),
    (Phase.UPDATING, Event.BEGIN, Guard.EXPIRED): Case(EXPIRED, send_token_update(IP, OTHER)),
    (Phase.IDLE, Event.FINISH, Guard.ANY): Case(idle, send_token_update("filter:9", OTHER)),
    (Phase.UPDATING, Event.FINISH, Guard.OWNER): Case(LIVE, send_token_update("filter:9", UPDATER)),
    (Phase.UPDATING, Event.FINISH, Guard.NOT_OWNER): Case(LIVE, send_token_update("filter:9", OTHER)),
    (Phase.IDLE, Event.QUERY, Guard.ANY): Case(idle, send("get_global_info", FILTER, OTHER)),
    (Phase.UPDATING, Event.QUERY, Guard.LIVE): Case(LIVE, send("get_global_info", IP, UPDATER)),
    (Phase.UPDATING, Event.QUERY, Guard.EXPIRED): Case(EXPIRED, send("get_global_info", IP, UPDATER)),
    (Phase.IDLE, Event.REQUEST, Guard.MATCHING): Case(idle, send("vg_list", FILTER, OTHER)),
    (Phase.IDLE, Event.REQUEST, Guard.MISMATCHED): Case(idle, send("vg_list", "filter:9", OTHER)),
    (Phase.UPDATING, Event.REQUEST, Guard.MATCHING): Case(LIVE, send("vg_list", IP, UPDATER)),
    (Phase.UPDATING, Event.REQUEST, Guard.MISMATCHED): Case(LIVE, send("vg_list", FILTER, OTHER)),
    (Phase.UPDATING, Event.REQUEST, Guard.STALE_UPDATER): Case(LIVE, send("dump", IP, OTHER)),
}


def test_every_row_has_a_case() -> None:
    assert set(CASES) == set(TRANSITIONS)


@pytest.mark.parametrize("row", list(TRANSITIONS), ids=lambda r: "-".join(x.name for x in r))
def test_row_is_what_the_daemon_does(row: tuple[Phase, Event, Guard]) -> None:
    action, next_phase = TRANSITIONS[row]
    s = new_session(pid=UPDATER)
    case = CASES[row]
    case.setup(s)
    assert phase_of(s.state.tokens) is row[0]
    assert case.send(s) == RESPONSE[action]
    assert phase_of(s.state.tokens) is next_phase
    assert s.state.check_invariants() == []


@pytest.mark.parametrize("name", ["pv_found", "vg_update", "get_global_info", "dump", "vg_lookup"])
@pytest.mark.parametrize("held", ["", FILTER, "skip"])
def test_a_matching_token_while_idle_is_what_the_table_says(name: str, held: str) -> None:
    """decide's shortcut for the common request (its token is the daemon's, no update running) reads the table."""
    from pylvmetad.metad.cache import TokenState
    from pylvmetad.metad.tokens import decide

    gate, _ = TRANSITIONS[(Phase.IDLE, Event.REQUEST, Guard.MATCHING)]
    expected = TRANSITIONS[(Phase.IDLE, Event.QUERY, Guard.ANY)][0] if name == "get_global_info" else gate
    for pid in (0, UPDATER):

        def no_clock() -> int:
            raise AssertionError("the clock is not read")

        assert decide(TokenState(token=held), name, held, pid, no_clock) is expected

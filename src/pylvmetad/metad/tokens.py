"""The token protocol (docs/protocol.md §4) as one table.

Rules of this module:

* :data:`TRANSITIONS` is the whole protocol: for each (phase, event, guard) it
  names the action and the phase after it.  Nothing else decides what a
  token-related request does; :func:`decide` only classifies a request into
  an event and a guard and reads the table.
* No state is changed here: :func:`decide` is a pure function of the token
  state, the request's token fields and the time.  The cache applies the
  action (:meth:`~pylvmetad.metad.cache.CacheState.apply_token_action`),
  so every change of what the daemon holds stays in ``cache`` (its rule 1);
  the handlers turn the action into a reply.

Theory of operation
-------------------
The daemon is in one of two phases: ``IDLE`` (its token is a filter hash,
``""`` when fresh, or anything a client set) or ``UPDATING`` (the token is
``"update in progress"`` and ``update_pid`` names the command populating
the cache).  Three kinds of request touch the token, the *events*:

* ``BEGIN``: ``token_update`` to ``"update in progress"``;
* ``FINISH``: ``token_update`` to any other token;
* ``QUERY``: ``get_global_info``, which cancels an update past its timeout;

and every other request (``REQUEST``) passes the gate first.  A *guard* is
the one fact about the request or the clock a transition depends on.

The irregular cases, kept exactly as the C daemon has them:

* ``FINISH`` while ``IDLE`` changes nothing and answers OK with
  ``prev_token = ""``: a token is only ever set by ending an update.
* ``BEGIN`` while ``UPDATING`` takes the update over once it is *expired*,
  where expired compares the elapsed time and the timeout as unsigned
  64-bit numbers, so a timeout of 0 has always expired.  ``QUERY`` cancels
  only when ``update_begin`` and ``update_timeout`` are both non-zero
  (:data:`Guard.EXPIRED` means different things for the two events; the
  classifier computes each).
* The gate refuses a request carrying ``"update in progress"`` from a pid
  other than the updater's (the *stale updater*, one that was taken over)
  even for the token-exempt ``dump`` and ``stats``; a pid of 0 on either
  side is never stale.
* ``hello`` is answered before any of this and never gated; ``dump`` and
  ``stats`` pass the token comparison whatever they carry, and so does the
  token ``"skip"``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from .protocol import SKIP_TOKEN, UPDATE_IN_PROGRESS

if TYPE_CHECKING:
    from .cache import TokenState  # the cache imports this module

#: requests answered whatever the token (``stats`` is ours, read-only like dump)
TOKEN_EXEMPT = frozenset({"dump", "stats"})


class Phase(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    IDLE = "idle"
    UPDATING = "updating"


class Event(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    BEGIN = "token_update to 'update in progress'"
    FINISH = "token_update to another token"
    QUERY = "get_global_info"
    REQUEST = "any other request (the gate)"


class Guard(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    ANY = "always"
    LIVE = "the running update is within its timeout"
    EXPIRED = "the running update outlived its timeout"
    OWNER = "sent by the updater (same pid)"
    NOT_OWNER = "sent by another pid"
    MATCHING = "token equal to the daemon's, 'skip', or a token-exempt request"
    MISMATCHED = "any other token"
    STALE_UPDATER = "'update in progress' from a pid other than the updater's"


class Action(Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code

    START = "record the new updater; OK, prev_token = the old token"
    REFUSE_UPDATING = "token_updating: another update is running"
    FINISH = "set the token, clear the updater; OK, prev_token = 'update in progress'"
    REFUSE_NOT_OWNER = "token_mismatch: only the updater may finish"
    IGNORE = "nothing changes; OK, prev_token = ''"
    CANCEL = "token becomes '', the updater is forgotten"
    SERVE = "pass on to the request's handler"
    REFUSE_MISMATCH = "token_mismatch: the cache was populated for another token"
    REFUSE_STALE = "token_mismatch: this updater was taken over"


#: (phase, event, guard) -> (action, phase after it): the whole protocol
TRANSITIONS: dict[tuple[Phase, Event, Guard], tuple[Action, Phase]] = {
    (Phase.IDLE, Event.BEGIN, Guard.ANY): (Action.START, Phase.UPDATING),
    (Phase.UPDATING, Event.BEGIN, Guard.LIVE): (Action.REFUSE_UPDATING, Phase.UPDATING),
    (Phase.UPDATING, Event.BEGIN, Guard.EXPIRED): (Action.START, Phase.UPDATING),  # take-over
    (Phase.IDLE, Event.FINISH, Guard.ANY): (Action.IGNORE, Phase.IDLE),
    (Phase.UPDATING, Event.FINISH, Guard.OWNER): (Action.FINISH, Phase.IDLE),
    (Phase.UPDATING, Event.FINISH, Guard.NOT_OWNER): (Action.REFUSE_NOT_OWNER, Phase.UPDATING),
    (Phase.IDLE, Event.QUERY, Guard.ANY): (Action.SERVE, Phase.IDLE),
    (Phase.UPDATING, Event.QUERY, Guard.LIVE): (Action.SERVE, Phase.UPDATING),
    (Phase.UPDATING, Event.QUERY, Guard.EXPIRED): (Action.CANCEL, Phase.IDLE),
    (Phase.IDLE, Event.REQUEST, Guard.MATCHING): (Action.SERVE, Phase.IDLE),
    (Phase.IDLE, Event.REQUEST, Guard.MISMATCHED): (Action.REFUSE_MISMATCH, Phase.IDLE),
    (Phase.UPDATING, Event.REQUEST, Guard.MATCHING): (Action.SERVE, Phase.UPDATING),
    (Phase.UPDATING, Event.REQUEST, Guard.MISMATCHED): (Action.REFUSE_MISMATCH, Phase.UPDATING),
    (Phase.UPDATING, Event.REQUEST, Guard.STALE_UPDATER): (Action.REFUSE_STALE, Phase.UPDATING),
}


def phase_of(tokens: TokenState) -> Phase:
    return Phase.UPDATING if tokens.token == UPDATE_IN_PROGRESS else Phase.IDLE


# module-level names of the members the per-request path uses: reading a
# member off its Enum class costs a descriptor call per access
_IDLE, _UPDATING = Phase.IDLE, Phase.UPDATING
_MATCHING, _MISMATCHED, _STALE = Guard.MATCHING, Guard.MISMATCHED, Guard.STALE_UPDATER
_SERVE = Action.SERVE


def _gate_guard(tokens: TokenState, name: str, token: str, pid: int) -> Guard:
    if token == UPDATE_IN_PROGRESS and tokens.update_pid and pid and pid != tokens.update_pid:
        return _STALE
    if token == tokens.token or token == SKIP_TOKEN or name in TOKEN_EXEMPT:
        return _MATCHING
    return _MISMATCHED


def _update_guard(tokens: TokenState, event: Event, pid: int, now: Callable[[], int]) -> Guard:
    """The guard of BEGIN, FINISH and QUERY while UPDATING (the irregular cases of the module doc)."""
    if event is Event.FINISH:
        return Guard.OWNER if pid == tokens.update_pid else Guard.NOT_OWNER
    if event is Event.BEGIN:
        return Guard.EXPIRED if tokens.update_expired(now()) else Guard.LIVE
    expired = tokens.update_begin and tokens.update_timeout and tokens.update_expired(now())
    return Guard.EXPIRED if expired else Guard.LIVE


#: the REQUEST rows of the table, by (phase, guard): the gate runs for every request
_GATE: dict[tuple[Phase, Guard], Action] = {
    (phase, guard): action for (phase, event, guard), (action, _) in TRANSITIONS.items() if event is Event.REQUEST
}


def decide(tokens: TokenState, name: str, token: str, pid: int, now: Callable[[], int]) -> Action:
    """The action :data:`TRANSITIONS` names for this request; nothing is changed.

    ``now`` is called only when a guard depends on the time.
    """
    held = tokens.token
    if token == held and held != UPDATE_IN_PROGRESS and name != "token_update":
        # the common request, read off the table: IDLE, MATCHING (a token that is not
        # "update in progress" is never a stale updater's) -> SERVE, and get_global_info's
        # QUERY while IDLE -> SERVE too (tests/metad/test_token_table.py checks it)
        return _SERVE
    phase = _UPDATING if held == UPDATE_IN_PROGRESS else _IDLE
    if name == "token_update":
        event = Event.BEGIN if token == UPDATE_IN_PROGRESS else Event.FINISH
    else:
        # every other request passes the gate; get_global_info may then cancel
        action = _GATE[(phase, _gate_guard(tokens, name, token, pid))]
        if name != "get_global_info" or action is not _SERVE:
            return action
        event = Event.QUERY
    guard = Guard.ANY if phase is _IDLE else _update_guard(tokens, event, pid, now)
    return TRANSITIONS[(phase, event, guard)][0]

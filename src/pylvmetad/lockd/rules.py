"""The tables: a lockspace's life (§9) and the verdict on a lock request (§4.4 passes 6-10).

Rules of this module:

* Everything that decides *whether* something may happen lives in these
  two tables, with the few irregular cases written out beside them.  The
  core (:mod:`.core`) looks the answer up and carries it out; it never
  re-derives a rule.
* No I/O, no state: keys in, verdicts out.

Theory of operation
-------------------
A lockspace is born by ``start_vg`` and lives through PREPARING (quick
checks), STARTING (joining the lock manager, the slow part), STARTED, and
possibly KILLED, then STOPPING and DONE.  :data:`LOCKSPACE_TABLE` maps
``(state, event)`` to ``(next state, reply)``: a reply of ``None`` means
"accepted, carry on"; a number is the immediate ``op_result``.  ABSENT is
the state of a name with no lockspace.

A lock request (mode sh or ex) on a resource is first judged against the
locks the host already holds on it: the requesting client's own transient
lock, and the resource's persistent lock (at most one, owned by nobody).
:data:`LOCK_TABLE` maps ``(persistent request?, own lock, persistent lock)``
-- each lock described by its relation to the requested mode -- to a
:class:`Verdict`.  Only QUEUE requests go on to the lock manager, in the
queue order of §4.4 passes 11-14 (sh requests share, ex requests wait for
every local holder, FIFO for ex).
"""

from __future__ import annotations

import enum

from .protocol import EAGAIN, EALREADY, EEXIST, ENOLS, ESTALE, ESTARTING


class Ls(enum.Enum):
    """States of a lockspace (§9)."""

    ABSENT = "absent"
    PREPARING = "preparing"
    STARTING = "starting"
    STARTED = "started"
    KILLED = "killed"
    FAILED = "failed"
    STOPPING = "stopping"
    DONE = "done"


class LsEvent(enum.Enum):
    START = "start_vg"  # a start_vg request
    ROUTE = "route"  # any request addressed to the lockspace (lock, update, free, ...)
    STOP = "stop"  # stop_vg, free_vg (hosts check passed), rename_vg_before, drop_vg, stop_all
    PREPARED = "prepared"
    PREPARE_FAILED = "prepare_failed"
    JOINED = "joined"
    JOIN_FAILED = "join_failed"
    KILL = "kill_vg"
    LEFT = "left"  # the lock manager's lockspace was left; every reply sent
    REAP = "reap"


_: None = None
S = Ls
E = LsEvent
#: (state, event) -> (next state or None for "unchanged", reply or None for "accepted")
LOCKSPACE_TABLE: dict[tuple[Ls, LsEvent], tuple[Ls | None, int | None]] = {
    (S.ABSENT, E.START): (S.PREPARING, _),
    (S.ABSENT, E.ROUTE): (_, ENOLS),
    (S.ABSENT, E.STOP): (_, ENOLS),
    (S.ABSENT, E.KILL): (_, ENOLS),
    (S.PREPARING, E.START): (_, ESTARTING),
    (S.PREPARING, E.ROUTE): (_, ESTARTING),
    (S.PREPARING, E.STOP): (_, ESTARTING),
    (S.PREPARING, E.KILL): (_, ESTARTING),
    (S.PREPARING, E.PREPARED): (S.STARTING, _),
    (S.PREPARING, E.PREPARE_FAILED): (S.FAILED, _),
    (S.STARTING, E.START): (_, ESTARTING),
    (S.STARTING, E.ROUTE): (_, ESTARTING),
    (S.STARTING, E.STOP): (_, ESTARTING),
    (S.STARTING, E.KILL): (_, ESTARTING),
    (S.STARTING, E.JOINED): (S.STARTED, _),
    (S.STARTING, E.JOIN_FAILED): (S.FAILED, _),
    (S.STARTED, E.START): (_, EEXIST),
    (S.STARTED, E.ROUTE): (_, _),
    (S.STARTED, E.STOP): (S.STOPPING, _),
    (S.STARTED, E.KILL): (S.KILLED, _),
    (S.KILLED, E.START): (_, EEXIST),
    (S.KILLED, E.ROUTE): (_, _),  # then per op: KILLED_REFUSES
    (S.KILLED, E.STOP): (S.STOPPING, _),
    (S.KILLED, E.KILL): (_, _),
    (S.FAILED, E.START): (_, EAGAIN),
    (S.FAILED, E.ROUTE): (_, ESTALE),
    (S.FAILED, E.STOP): (_, ESTALE),
    (S.FAILED, E.KILL): (_, ESTALE),
    (S.FAILED, E.REAP): (S.ABSENT, _),
    (S.STOPPING, E.START): (_, EAGAIN),
    (S.STOPPING, E.ROUTE): (_, ESTALE),
    (S.STOPPING, E.STOP): (_, ESTALE),
    (S.STOPPING, E.KILL): (_, ESTALE),
    (S.STOPPING, E.LEFT): (S.DONE, _),
    (S.DONE, E.START): (S.PREPARING, _),  # a new lockspace of the same name
    (S.DONE, E.ROUTE): (_, ENOLS),
    (S.DONE, E.STOP): (_, ENOLS),
    (S.DONE, E.KILL): (_, ENOLS),
    (S.DONE, E.REAP): (S.ABSENT, _),
}
del S, E, _

# Irregular cases, beside the table:
# * STOP in STARTED is refused with EBUSY while LV locks are held, unless ``force``
#   (stop_vg; the core checks before looking up the table).
# * STOP while PREPARING/STARTING: lvmlockd defers the stop until the join ends;
#   we answer ESTARTING (lvm only stops started lockspaces).
# * In KILLED, requests of the ops below are answered EVGKILLED (§3.18): lock
#   requests with mode other than un, enable_gl, disable_gl, vg_update,
#   rename_vg_before, find_free_lock.
#: lockspace states whose lockspace still counts as present for NO_LOCKSPACES (§1.4)
LISTED = frozenset(s for s in Ls if s is not Ls.ABSENT)


def lockspace_step(state: Ls, event: LsEvent) -> tuple[Ls, int | None]:
    """Look up one step; an event the table does not list for a state is a bug."""
    next_state, reply = LOCKSPACE_TABLE[state, event]
    return (next_state or state), reply


class Rel(enum.Enum):
    """An existing lock seen from a request: absent, same mode, or sh (WEAKER) / ex (STRONGER)."""

    NONE = "none"
    SAME = "same"
    WEAKER = "weaker"  # the lock is sh, the request ex
    STRONGER = "stronger"  # the lock is ex, the request sh


class Verdict(enum.Enum):
    ALREADY = "already"  # -114: nothing changes
    PIGGYBACK = "piggyback"  # 0 without recording anything: a persistent lock covers it
    INCOMPATIBLE = "incompatible"  # -17
    MAKE_PERSISTENT = "make_persistent"  # the client's transient lock becomes the persistent one
    CONVERT_OWN = "convert_own"  # convert the client's transient lock
    CONVERT_PERSISTENT = "convert_persistent"  # convert the persistent lock
    QUEUE = "queue"  # a new lock: wait for local holders, then the lock manager


#: the reply each immediate verdict gives
VERDICT_RESULT = {
    Verdict.ALREADY: EALREADY,
    Verdict.PIGGYBACK: 0,
    Verdict.INCOMPATIBLE: EEXIST,
    Verdict.MAKE_PERSISTENT: 0,
}

_N, _S, _W, _X = Rel.NONE, Rel.SAME, Rel.WEAKER, Rel.STRONGER
_ALL = (_N, _S, _W, _X)
_OTHER = (_W, _X)


def _rows() -> dict[tuple[bool, Rel, Rel], Verdict]:
    v = Verdict
    table: dict[tuple[bool, Rel, Rel], Verdict] = {}
    # (persistent request?, own transient lock(s), persistent lock(s), verdict), first row wins
    rows: list[tuple[bool, tuple[Rel, ...], tuple[Rel, ...], Verdict]] = [
        # transient requests (passes 6, 8, 10)
        (False, (_S,), _ALL, v.ALREADY),
        (False, (_N, _W, _X), (_S, _X), v.PIGGYBACK),
        (False, (_N, _W, _X), (_W,), v.INCOMPATIBLE),
        (False, (_N,), (_N,), v.QUEUE),
        (False, _OTHER, (_N,), v.CONVERT_OWN),
        # persistent requests (passes 7, 9, 10)
        (True, _ALL, (_S,), v.ALREADY),
        (True, _ALL, _OTHER, v.CONVERT_PERSISTENT),
        (True, (_S,), (_N,), v.MAKE_PERSISTENT),
        (True, _OTHER, (_N,), v.INCOMPATIBLE),
        (True, (_N,), (_N,), v.QUEUE),
    ]
    for persistent, owns, plks, verdict in rows:
        for own in owns:
            for plk in plks:
                table.setdefault((persistent, own, plk), verdict)
    return table


#: (persistent request?, the client's transient lock, the persistent lock) -> verdict
LOCK_TABLE: dict[tuple[bool, Rel, Rel], Verdict] = _rows()
assert len(LOCK_TABLE) == 2 * 4 * 4, "every combination has a verdict"

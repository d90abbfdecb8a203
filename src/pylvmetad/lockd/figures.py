"""What pylvmlockd's core counts about itself: the state object the metrics read.

Rules of this module:

* No I/O, no module-level state: one :class:`LockdFigures` per daemon, handed
  to :class:`~.core.Lockd` (which makes one when none is given).  The core
  calls its methods at the events they name; :mod:`.metrics` (the shell side:
  Prometheus, the connection figures) only reads it.
* Written only by the event loop; read from the metrics thread through
  copies taken with one C-level call each (:func:`~pylvmetad.shell.metrics.copied`),
  as pylvmetad's figures are (see :mod:`pylvmetad.metad.metrics` for why that
  is safe without locks).
* Every key is bounded: op, resource type, mode and result come from fixed
  tables (an unknown result code counts as ``other``), lock-manager calls are
  named by the core.  A client cannot grow the label set.
* Histograms share pylvmetad's bucket bounds (``shell.metrics.BUCKET_BOUNDS``,
  10 µs to 10 s, then +Inf).

Theory of operation
-------------------
A request is counted once, when it is answered (``replied``), by op, resource
type, mode and result.  Its time from arrival to reply is a *lock wait* when it
is a granted ``sh``/``ex`` lock request: it includes queueing behind local
holders, the lock manager's acquire and EAGAIN retries.  A lock's *hold* runs
from the moment the core adds it to a resource (``granted``) to the moment the
core removes it (``released``: an unlock, the owner's disconnect, a lockspace
stop), whatever conversions happened in between; the mode recorded is the one
it had when released.  Locks held *now* are not counted here: the metrics read
them from the core's resources when asked.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable

from ..shell.metrics import BUCKET_BOUNDS
from . import protocol as P
from .protocol import Mode, Op, Rt

#: result codes by name, as counted (``ok`` for 0 and the positive results of running_lm)
RESULT_NAMES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(P).items()
    if name.startswith("E") and name.isupper() and isinstance(value, int) and value < 0
}
OTHER_RESULT = "other"
#: the lock-manager calls the core reports on
LM_CALLS = (
    "acquire",
    "release",
    "convert",
    "prepare",
    "join",
    "leave",
    "init_vg",
    "init_lv",
    "free_lv",
    "write_gl",
    "rename_vg",
    "find_free_lock",
)
#: how a lockspace ended (the core's stop kinds)
STOP_KINDS = ("stop", "free", "drop")


def result_name(result: int) -> str:
    if result >= 0:
        return "ok"
    return RESULT_NAMES.get(result, OTHER_RESULT)


def op_name(op: Op) -> str:
    return P.OP_NAMES.get(op, OTHER_RESULT)


def _new_buckets() -> list[int]:
    return [0] * (len(BUCKET_BOUNDS) + 1)


class Histogram:
    """Bucket counts and sum of one distribution (written only by the event loop)."""

    __slots__ = ("buckets", "sum")

    def __init__(self) -> None:
        self.buckets = _new_buckets()
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(BUCKET_BOUNDS, seconds)] += 1
        self.sum += seconds


class LockdFigures:
    """pylvmlockd's counters and histograms, fed by the core (see the module doc)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: the clock durations are measured with (monotonic seconds)
        self.now = clock
        self.started = clock()
        #: answered requests by (op, resource type, mode, result)
        self.requests: dict[tuple[str, str, str, str], int] = {}
        #: request-to-grant times of sh/ex lock requests by (resource type, mode)
        self.waits: dict[tuple[str, str], Histogram] = {}
        #: grant-to-release times by (resource type, mode at release)
        self.holds: dict[tuple[str, str], Histogram] = {}
        #: lock requests that queued behind another local holder
        self.local_waits = 0
        #: acquires the lock manager refused with EAGAIN and the core retried
        self.retries = 0
        #: acquires refused with EAGAIN for good (held on another host, retries spent)
        self.refused_by_other_host = 0
        #: locks granted (added to a resource)
        self.granted = 0
        #: invalidations sent to the local lvmetad, by request name
        self.invalidations: dict[str, int] = {"set_vg_info": 0, "set_global_info": 0}
        #: invalidations whose sending failed (lvmetad down, ...), by request name
        self.invalidation_failures: dict[str, int] = {"set_vg_info": 0, "set_global_info": 0}
        #: lockspaces joined, and joins that failed
        self.lockspaces_started = 0
        self.lockspace_start_failures = 0
        #: lockspaces left, by how (stop, free, drop)
        self.lockspaces_stopped: dict[str, int] = dict.fromkeys(STOP_KINDS, 0)
        #: non-zero results of lock-manager calls, by (call, result)
        self.lm_errors: dict[tuple[str, str], int] = {}

    # -- events (the core calls these on the event loop) ----------------------
    def replied(self, op: Op, rt: Rt | None, mode: Mode, result: int, waited: float) -> None:
        """One request answered, ``waited`` seconds after it arrived."""
        rt_name = rt.value if rt is not None else "none"
        mode_name = mode.text if op is Op.LOCK else "none"
        key = (op_name(op), rt_name, mode_name, result_name(result))
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        if op is Op.LOCK and result == 0 and mode in (Mode.SH, Mode.EX):
            wkey = (rt_name, mode_name)
            hist = self.waits.get(wkey)
            if hist is None:
                hist = self.waits[wkey] = Histogram()
            hist.observe(waited)

    def lock_granted(self) -> float:
        """A lock was added to a resource; returns its start time (for :meth:`lock_released`)."""
        self.granted += 1
        return self.now()

    def lock_released(self, rt: Rt, mode: Mode, since: float) -> None:
        key = (rt.value, mode.text)
        hist = self.holds.get(key)
        if hist is None:
            hist = self.holds[key] = Histogram()
        hist.observe(max(self.now() - since, 0.0))

    def lm_result(self, call: str, result: int) -> None:
        """A lock-manager call returned; non-zero results are counted."""
        if result:
            key = (call, result_name(result))
            self.lm_errors[key] = self.lm_errors.get(key, 0) + 1

    def invalidation(self, request: str, *, failed: bool = False) -> None:
        counts = self.invalidation_failures if failed else self.invalidations
        counts[request] = counts.get(request, 0) + 1

    def lockspace_started(self, *, failed: bool = False) -> None:
        if failed:
            self.lockspace_start_failures += 1
        else:
            self.lockspaces_started += 1

    def lockspace_stopped(self, kind: str) -> None:
        self.lockspaces_stopped[kind] = self.lockspaces_stopped.get(kind, 0) + 1

"""The poll window: after a request, the event loop polls for the next one instead of sleeping.

Rules of this module:

* No I/O and no event loop of its own: a :class:`PollWindow` is given the
  loop's ``call_soon``, a clock and an *activity count* (any number that
  changes whenever a client is served: the server passes the bytes read plus
  the connections accepted), so it is tested with a fake loop and a fake clock.
* Bounded: the window closes ``window`` seconds after the last activity it
  saw, whatever happens; each turn is O(1) and does no I/O.  ``window = 0``
  is never constructed (the server then has no poll window at all).
* It only keeps the loop awake; it never reads, answers or delays anything:
  every client is served by the loop exactly as without it.
* It gives way on a busy machine: polling pays only while a CPU would
  otherwise sit idle.  When the CPUs are busy with other work, a polling
  thread is a runnable thread that the scheduler makes wait its turn
  (measured: a third slower than sleeping).  So a turn that finds the clock
  moved by more than ``PREEMPTED`` since the previous turn, with no activity
  in between (the thread was off the CPU, not working), closes the window and
  suspends polling for ``BACKOFF_START`` seconds, doubled on each further
  detection up to ``BACKOFF_MAX``; the back-off starts again from
  ``BACKOFF_START`` once ``BACKOFF_RESET`` seconds pass with no preemption.
  Under sustained load, polling costs one probe every ``BACKOFF_MAX`` seconds.

Theory of operation.  An LVM command sends its requests one after the other,
each as soon as the previous reply is in.  Between two requests the daemon
has nothing to do, so its event loop sleeps in ``epoll_wait``, and its CPU
goes idle.  On a virtual machine an idle vCPU halts, and waking it for the
next request (an interrupt from the other vCPU, an exit to the hypervisor, a
return to the guest) costs tens of microseconds, which on a small request
is more than the daemon's work.  While the window is open, a callback
scheduled with ``call_soon`` re-schedules itself on every turn of the loop;
a loop with a callback ready polls its sockets with a zero timeout, so the
vCPU stays busy and the next request is read the moment it arrives.  Each
turn compares the activity count with the last one seen and, if it moved,
extends the window; once ``window`` seconds pass with no activity the
callback stops scheduling itself and the loop sleeps as before.  The next
request (:meth:`PollWindow.wake`, called by the server on each read and
accept while the window is closed) opens it again.

Cost: while the window is open the daemon's thread is busy; the CPU it
spends waiting is at most ``window`` after the last request of a burst,
and within a burst it replaces the halt and wake-up that the wait would
have cost anyway (BENCHMARKS.md, "poll window": daemon CPU per request did
not grow).  An idle daemon spends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: the default window, in seconds (README, ``--poll-window``)
DEFAULT_POLL_WINDOW = 300e-6
#: the largest window the daemons accept, in seconds: a window is a short wait, not a spin loop
MAX_POLL_WINDOW = 0.01
#: a gap between two turns longer than this, with no activity, means the thread was preempted
PREEMPTED = 500e-6
#: seconds polling is suspended after the first preemption, and at most after repeated ones
BACKOFF_START = 0.5
BACKOFF_MAX = 8.0
#: seconds with no preemption after which the back-off starts again from BACKOFF_START
BACKOFF_RESET = 2 * BACKOFF_MAX


class PollWindow:
    """Keeps an event loop polling for ``window`` seconds after the last activity."""

    def __init__(
        self,
        window: float,
        activity: Callable[[], int],
        call_soon: Callable[[Callable[[], None]], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < window <= MAX_POLL_WINDOW:
            raise ValueError(f"poll window must be in (0, {MAX_POLL_WINDOW}] seconds, not {window}")
        self.window = window
        self._activity = activity
        self._call_soon = call_soon
        self._clock = clock
        #: whether the loop is being kept awake now
        self.open = False
        #: whether :meth:`stop` ended it for good
        self.stopped = False
        self._deadline = 0.0
        self._seen = 0
        self._last_turn = 0.0
        #: polling is suspended until this clock reading (a preemption was seen), for ``backoff`` seconds
        self.resume_at = 0.0
        self.backoff = 0.0
        self._preempted_at = -BACKOFF_RESET
        #: windows opened so far, turns of the loop spent polling, preemptions seen (for tests and metrics)
        self.windows = 0
        self.turns = 0
        self.preemptions = 0
        #: called once each time the window closes (tests wait on it)
        self.on_close: Callable[[], None] | None = None

    def wake(self) -> None:
        """Open the window (the server calls this on a read or an accept while it is closed)."""
        if self.open or self.stopped:
            return
        now = self._clock()
        if now < self.resume_at:
            return
        self.open = True
        self.windows += 1
        self._seen = self._activity()
        self._last_turn = now
        self._deadline = now + self.window
        self._call_soon(self._turn)

    def _turn(self) -> None:
        if self.stopped:
            self.open = False
            return
        self.turns += 1
        now = self._clock()
        seen = self._activity()
        gap, self._last_turn = now - self._last_turn, now
        if seen != self._seen:
            self._seen = seen
            self._deadline = now + self.window
        elif gap > PREEMPTED:  # off the CPU between two turns: the CPUs are busy, polling only costs
            self.preemptions += 1
            recent = now - self._preempted_at < BACKOFF_RESET
            self.backoff = min(self.backoff * 2, BACKOFF_MAX) if recent else BACKOFF_START
            self.resume_at = now + self.backoff
            self._preempted_at = now
            self._close()
            return
        if now < self._deadline:
            self._call_soon(self._turn)
            return
        self._close()

    def _close(self) -> None:
        self.open = False
        if self.on_close is not None:
            self.on_close()

    def stop(self) -> None:
        """Close the window for good (shutdown): the scheduled turn, if any, ends it."""
        self.stopped = True

"""A cache short path checked against its general path, the two side by side.

Some :class:`~pylvmetad.metad.cache.CacheState` methods (``pv_found``,
``vg_update``) answer the common request themselves and hand every other to
an all-or-nothing ``_store_*`` method, the general path.  The short path is
right when it leaves the same replies and the same cache as the general
path would.  What this module holds for the tests of one:

* :func:`tables`, the whole cache as plain comparable data;
* :func:`assert_same_as_general`, which sends the same requests to a fresh
  session as it is and to one made (by the test's own ``general``) to take
  the general path always, comparing reply and cache after every request and
  checking that the short path left no operation open;
* :func:`general_path_calls` and :func:`refuse_general_path`, which record,
  or forbid, the calls that reach a ``_store_*`` method from then on.

The ``general`` wrapper stays with each test: how a method is sent to its
``_store_*`` method depends on that method's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pylvmetad.metad.cache import CacheState
from support.lvm_requests import Session, new_session


def tables(state: CacheState) -> list[object]:
    """Every table's items in order, then the flags and the generation."""
    return [list(table.items()) for table in state.tables()] + [state.flags, state.generation]


def assert_same_as_general(steps: Iterable[str], general: Callable[[Session], Session]) -> None:
    """``steps`` sent to a populated session and to ``general`` of one: the same after each."""
    fast, slow = new_session(), general(new_session())
    for s in (fast, slow):
        s.populate()
    for body in steps:
        assert fast.send(body).body == slow.send(body).body, body
        assert tables(fast.state) == tables(slow.state), body
        assert not fast.state.journal.open


def general_path_calls(session: Session, store: str) -> list[str]:
    """The keys (the pvid or vgid, the second argument) ``store`` is asked to store, from now on."""
    taken: list[str] = []
    method: Callable[..., Any] = getattr(session.state, store)

    def counted(*args: object) -> object:
        taken.append(str(args[1]))
        return method(*args)

    setattr(session.state, store, counted)
    return taken


def refuse_general_path(session: Session, store: str) -> None:
    """From now on any call of ``store`` fails the test."""

    def refuse(*args: object) -> None:
        raise AssertionError("the general path was taken")

    setattr(session.state, store, refuse)

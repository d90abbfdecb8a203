"""A merge that fails midway leaves the cache exactly as it was (cache rule: all or nothing).

``pv_found`` and ``vg_update`` change several tables step by step.  Each
scenario below first runs its request once, counting the *fault points*:
the entry and exit of every helper the merge is built from (``_add_name``,
``assign_pvs``, ``mark_outdated``, ...; ``vg_pvids`` at entry).  Then, for
every point in turn, it runs the request on a fresh cache with an exception
raised at that point, and checks that the reply is ``failed`` and that the
cache -- every table in its order (the ``dump`` text), the global flags and
``generation`` -- is what it was before the request, consistent, and that
the same request without the fault then answers as on a cache that never
saw the fault.  The exception stands for any bug or MemoryError midway;
the code under test runs for real, only the raise is injected.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from pylvmetad.metad import cache
from pylvmetad.metad.cache import CacheState
from pylvmetad.metad.handlers import format_dump
from support.lvm_requests import PVRef, Session, new_session, pv_found, pvid, request, vg_metadata, vg_update, vgid

VG, VG2 = vgid(1), vgid(2)
PV1, PV2, PV3 = pvid(1), pvid(2), pvid(3)
D1, D2, D3 = 2048, 2064, 2080

#: the cache's own steps a merge is made of (methods of CacheState)
STEPS = (
    "_changed",
    "_set_metadata",
    "_drop_metadata",
    "_unindex_vg",
    "_set_pvmeta",
    "_drop_pvmeta",
    "_map_pv",
    "_unmap_pv",
    "_move_present",
    "_add_name",
    "_drop_name",
    "mark_outdated",
    "assign_pvs",
    "remove_metadata",
    "remove_vg_if_missing",
    "purge",
    "vg_is_complete",
)
#: module-level helpers the merge calls
MODULE_STEPS = ("strip_device_hints", "vg_pvids")


class Fault(Exception):
    """The injected failure."""


class FaultPoints:
    """Counts fault points as the request runs; raises :class:`Fault` at point ``fail_at``."""

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.passed = 0

    def point(self) -> None:
        self.passed += 1
        if self.passed == self.fail_at:
            raise Fault(f"injected at fault point {self.passed}")

    def wrap(self, step: Callable[..., Any], with_exit: bool) -> Callable[..., Any]:
        @functools.wraps(step)
        def faulty(*args: Any, **kwargs: Any) -> Any:
            self.point()
            result = step(*args, **kwargs)
            if with_exit:
                self.point()
            return result

        return faulty


def setup_two_vgs(s: Session) -> None:
    """vg0 = PV1, PV2 at seqno 3 (PV2's mda in use); vg1 = PV3 at seqno 1; a VG info record."""
    vg0 = vg_metadata(VG, 3, [PV1, PV2])
    vg1 = vg_metadata(VG2, 1, [PV3])
    s.populate(
        pv_found(PV1, D1, vgname="vg0", metadata=vg0),
        pv_found(PV2, D2, vgname="vg0", metadata=vg0),
        pv_found(PV3, D3, vgname="vg1", metadata=vg1),
    )
    assert s.fields(request("set_vg_info", uuid=VG, version=9))["response"] == "OK"


# (name, the request) -- each changes several tables
SCENARIOS: list[tuple[str, str]] = [
    ("vg_update of a new VG", vg_update("vg2", vg_metadata(vgid(3), 1, [PV3]))),
    ("vg_update renaming a VG", vg_update("renamed", vg_metadata(VG, 4, [PV1, PV2]))),
    ("vg_update taking a PV from another VG", vg_update("vg0", vg_metadata(VG, 4, [PV1, PV2, PV3]))),
    ("vg_update replacing older content (purge)", vg_update("vg0", vg_metadata(VG, 2, [PV1]))),
    ("pv_found with newer metadata", pv_found(PV1, D1, vgname="vg0", metadata=vg_metadata(VG, 5, [PVRef(PV1)]))),
    ("pv_found with older metadata", pv_found(PV2, D2, vgname="vg0", metadata=vg_metadata(VG, 2, [PV1, PV2]))),
    (
        "pv_found of a new PV on another PV's device",
        pv_found(pvid(4), D3, vgname="vg0", metadata=vg_metadata(VG, 3, [PV1, PV2])),
    ),
    ("pv_found of a known PV on another device (duplicate)", pv_found(PV1, D3 + 16)),
]


def run(body: str, fail_at: int | None, monkeypatch: pytest.MonkeyPatch) -> tuple[Session, int, dict[str, object]]:
    """Set up, then send ``body`` with a fault at point ``fail_at``; (session, points passed, reply)."""
    s = new_session()
    setup_two_vgs(s)
    points = FaultPoints(fail_at)
    with monkeypatch.context() as patch:
        for name in STEPS:
            patch.setattr(CacheState, name, points.wrap(getattr(CacheState, name), with_exit=True))
        for name in MODULE_STEPS:
            patch.setattr(cache, name, points.wrap(getattr(cache, name), with_exit=False))
        before = snapshot(s.state)
        reply = s.fields(body)
    if fail_at is not None and points.passed >= fail_at:
        assert reply["response"] == "failed" and "Fault" in str(reply["reason"]), reply
        assert snapshot(s.state) == before, f"fault point {fail_at} left a partial change"
        assert s.state.check_invariants() == []
    return s, points.passed, reply


def snapshot(state: CacheState) -> tuple[str, int, int, str]:
    return format_dump(state), int(state.flags), state.generation, repr(state.tokens)


@pytest.mark.parametrize(("name", "body"), SCENARIOS, ids=[name for name, _ in SCENARIOS])
def test_merge_atomic(name: str, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    control, points, expected = run(body, None, monkeypatch)
    assert points >= 2, f"{name}: the request passed only {points} fault points"
    for fail_at in range(1, points + 1):
        s, _, _ = run(body, fail_at, monkeypatch)
        assert s.fields(body) == expected  # the fault left nothing that changes the retry
        assert snapshot(s.state) == snapshot(control.state)

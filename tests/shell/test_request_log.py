"""The request figures kept by batches (metad/metrics.py's theory): the same as counting each request.

A reference counts every request as it comes, the way ``Metrics.observe``
did before batches (a dict increment, a bisect, a float add, the failure key
bounded in arrival order); the batched figures, read at any point (folded
or still in the batch), must equal it, latency sums bit for bit.  A reader
on another thread sees consistent figures that only grow.
"""

from __future__ import annotations

import sys
import threading
from bisect import bisect_left
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad import metrics as metrics_module
from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.metrics import ENTRY, KNOWN_REQUESTS, OTHER_REQUEST, Metrics, Snapshot
from pylvmetad.shell.metrics import BUCKET_BOUNDS
from pylvmetad.wire.replies import Reply


@dataclass
class Counted:
    responses: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKET_BOUNDS) + 1))
    sum: float = 0.0


class Reference:
    """Counting one request at a time (the figures' definition)."""

    def __init__(self, max_keys: int) -> None:
        self.requests: dict[str, Counted] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.max_keys = max_keys

    def observe(self, reply: Reply, elapsed: float) -> None:
        name = reply.request if reply.request in KNOWN_REQUESTS else OTHER_REQUEST
        counted = self.requests.setdefault(name, Counted())
        counted.responses[reply.response] = counted.responses.get(reply.response, 0) + 1
        counted.buckets[bisect_left(BUCKET_BOUNDS, elapsed)] += 1
        counted.sum += elapsed
        if reply.reason is not None:
            reason = reply.reason
            if reason.startswith("internal error: "):
                reason = "internal error: " + reason[len("internal error: ") :].split(":", 1)[0]
            key = (name, reason)
            if key not in self.failures and len(self.failures) >= self.max_keys:
                key = (name, "other")
            self.failures[key] = self.failures.get(key, 0) + 1

    def check(self, snap: Snapshot) -> None:
        assert list(snap.requests) == list(self.requests)  # names in the order they came
        for name, want in self.requests.items():
            got = snap.requests[name]
            assert list(got.responses.items()) == list(want.responses.items())
            assert got.buckets == want.buckets
            assert got.sum == want.sum  # added in request order: the same float
        assert list(snap.failures.items()) == list(self.failures.items())


names = st.sampled_from(["pv_found", "vg_lookup", "vg_update", "hello", "bogus", "made_up", "NONE"])
responses = st.sampled_from(["OK", "failed", "unknown", "token_mismatch"])
reasons = st.one_of(
    st.none(),
    st.sampled_from(["VG not found", "internal error: KeyError: 'a'", "internal error: KeyError: 'b'", "", "other"]),
    st.text(max_size=3),
)
seconds = st.one_of(
    st.sampled_from(BUCKET_BOUNDS),
    st.floats(min_value=0.0, max_value=20.0),
    st.sampled_from([0.0, 0, 1e9, 1.5e-5]),
)
#: a request, or None: read the figures here
events = st.lists(st.one_of(st.none(), st.tuples(names, responses, reasons, seconds)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(events=events, fold_after=st.integers(1, 7), max_keys=st.integers(0, 6))
def test_batched_figures_are_the_figures_of_each_request(
    events: list[tuple[str, str, str | None, float] | None], fold_after: int, max_keys: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics_module, "MAX_FAILURE_KEYS", max_keys)
        metrics = Metrics(RequestHandler().state)
        metrics.observer.fold_at = fold_after * ENTRY
        reference = Reference(max_keys)
        for event in events:
            if event is None:
                reference.check(metrics.snapshot())
                continue
            request, response, reason, elapsed = event
            reply = Reply("", request, response, reason)
            metrics.observe(reply, elapsed)
            reference.observe(reply, elapsed)
        reference.check(metrics.snapshot())
        metrics.fold()  # everything folded: the same again
        assert metrics.observer.batch == []
        reference.check(metrics.snapshot())


def test_a_batch_is_folded_once_full_and_holds_no_reply() -> None:
    metrics = Metrics(RequestHandler().state)
    reply = Reply("x" * 1000, "pv_found", "OK")
    for _ in range(metrics_module.FOLD_AFTER - 1):
        metrics.observer(reply, 0.001)
    batch = metrics.observer.batch
    assert len(batch) == (metrics_module.FOLD_AFTER - 1) * ENTRY
    assert all(not isinstance(entry, Reply) for entry in batch)
    metrics.observer(reply, 0.001)
    assert metrics.observer.batch == []  # folded, and a new batch begun
    assert metrics.snapshot().requests["pv_found"].count == metrics_module.FOLD_AFTER


def test_a_fold_that_fails_drops_its_batch_and_the_next_ones_count(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics(RequestHandler().state)
    metrics.observe(Reply("", "hello", "OK"), 0.001)
    metrics.fold()

    def broken(*args: object) -> None:
        raise RuntimeError("broken")

    with monkeypatch.context() as patch:
        patch.setattr(metrics_module, "fold_batch", broken)
        metrics.observe(Reply("", "hello", "OK"), 0.001)
        with pytest.raises(RuntimeError):
            metrics.fold()
    assert metrics.observer.batch == []
    assert metrics.snapshot().requests["hello"].count == 1  # what was folded before stays
    metrics.observe(Reply("", "hello", "OK"), 0.001)
    metrics.fold()
    assert metrics.snapshot().requests["hello"].count == 2


def test_a_reader_on_another_thread_sees_consistent_growing_figures() -> None:
    """Each snapshot: a name's responses add up to its buckets; nothing counted goes away."""
    metrics = Metrics(RequestHandler().state)
    metrics.observer.fold_at = 3 * ENTRY  # many folds, many races
    done = threading.Event()
    problems: list[str] = []
    seen: list[int] = []

    def read() -> None:
        last: dict[str, int] = {}
        while not done.is_set():
            snap = metrics.snapshot()
            for name, figures in snap.requests.items():
                if sum(figures.responses.values()) != figures.count:
                    problems.append(f"{name}: responses {figures.responses} but {figures.count} in the buckets")
                if figures.count < last.get(name, 0):
                    problems.append(f"{name}: {figures.count} after {last[name]}")
                last[name] = figures.count
            failures = sum(snap.failures.values())
            if failures != sum(f.responses.get("failed", 0) for f in snap.requests.values()):
                problems.append(f"{failures} failures for {snap.requests}")
            seen.append(sum(last.values()))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20000):
            if i % 3:
                metrics.observe(Reply("", "pv_found", "OK"), 0.0001)
            else:
                metrics.observe(Reply("", "vg_lookup", "failed", f"reason {i % 5}"), 0.002)
    finally:
        done.set()
        reader.join(10)
        sys.setswitchinterval(interval)
    assert not problems, problems[:5]
    assert len(seen) > 1
    snap = metrics.snapshot()
    assert snap.requests["pv_found"].count + snap.requests["vg_lookup"].count == 20000

"""pylvmlockd's figures as Prometheus metrics (``--metrics-listen``), as pylvmetad's are.

Rules of this module:

* Reads, never writes: the core's :class:`~.figures.LockdFigures` (counted by
  the core on the event loop), the locks and lockspaces the core holds now,
  and the server's connection figures.  The endpoint's thread takes copies
  with one C-level call per container (:func:`~pylvmetad.shell.metrics.copied`),
  as pylvmetad's metrics do (:mod:`pylvmetad.metad.metrics` explains why that
  is safe without locks); a scrape can be one event behind between families.
* The HTTP side is the shell's (:class:`~pylvmetad.shell.metrics.MetricsEndpoint`);
  ``prometheus_client`` is imported only when the endpoint starts.
* Every metric has one name; docs/observability.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import __version__
from ..shell.metrics import MetricsEndpoint, copied, cumulative
from .cli import LVM_VERSION
from .core import Lockd
from .figures import Histogram, LockdFigures

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..shell.server import Server


@dataclass
class Snapshot:
    """Every figure at one moment: copies, safe to read on any thread."""

    requests: dict[tuple[str, str, str, str], int]
    waits: dict[tuple[str, str], tuple[list[int], float]]
    holds: dict[tuple[str, str], tuple[list[int], float]]
    #: locks held now, by (resource type, mode)
    held: dict[tuple[str, str], int]
    #: lockspaces now, by state
    lockspaces: dict[str, int]
    local_waits: int = 0
    retries: int = 0
    refused_by_other_host: int = 0
    granted: int = 0
    invalidations: dict[str, int] = field(default_factory=dict)
    invalidation_failures: dict[str, int] = field(default_factory=dict)
    lockspaces_started: int = 0
    lockspace_start_failures: int = 0
    lockspaces_stopped: dict[str, int] = field(default_factory=dict)
    lm_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    connections_open: int = 0
    connections_total: int = 0
    uptime: float = 0.0


def _histograms(hists: dict[tuple[str, str], Histogram]) -> dict[tuple[str, str], tuple[list[int], float]]:
    return {key: (hist.buckets[:], hist.sum) for key, hist in hists.items()}


class Metrics:
    """The daemon's figures for Prometheus: the core's counters, its locks now, the server's connections."""

    def __init__(self, lockd: Lockd, server: Server | None = None) -> None:
        self.lockd = lockd
        self.figures: LockdFigures = lockd.figures
        self.server = server
        self.endpoint = MetricsEndpoint(
            lambda: prometheus_families(self.snapshot()), thread_name="pylvmlockd-metrics", logger="pylvmlockd"
        )

    def snapshot(self) -> Snapshot:
        """Copy every figure; safe from any thread."""
        f = self.figures
        held: dict[tuple[str, str], int] = {}
        lockspaces: dict[str, int] = {}
        for ls in copied(lambda: list(self.lockd.lockspaces.values())):
            state = ls.state.name.lower()
            lockspaces[state] = lockspaces.get(state, 0) + 1
            for r in copied(lambda: list(ls.resources.values())):  # noqa: B023 (called at once)
                for lk in r.locks[:]:
                    key = (r.rt.value, lk.mode.text)
                    held[key] = held.get(key, 0) + 1
        snap = Snapshot(
            requests=copied(f.requests.copy),
            waits=_histograms(copied(f.waits.copy)),
            holds=_histograms(copied(f.holds.copy)),
            held=held,
            lockspaces=lockspaces,
            local_waits=f.local_waits,
            retries=f.retries,
            refused_by_other_host=f.refused_by_other_host,
            granted=f.granted,
            invalidations=copied(f.invalidations.copy),
            invalidation_failures=copied(f.invalidation_failures.copy),
            lockspaces_started=f.lockspaces_started,
            lockspace_start_failures=f.lockspace_start_failures,
            lockspaces_stopped=copied(f.lockspaces_stopped.copy),
            lm_errors=copied(f.lm_errors.copy),
            uptime=f.now() - f.started,
        )
        server = self.server
        if server is not None:
            snap.connections_open = server.stats.connections_open
            snap.connections_total = server.stats.connections_total
            snap.uptime = time.monotonic() - server.stats.started
        return snap

    def serve_http(self, listen: str) -> int:
        """Serve /metrics at ``HOST:PORT`` from a daemon thread; returns the port bound.

        Raises ValueError for a malformed address and OSError when it cannot be bound.
        """
        return self.endpoint.serve(listen)

    def stop_http(self) -> None:
        self.endpoint.stop()


#: resource types and modes every lock gauge shows (0 when none is held)
_RTS = ("gl", "vg", "lv")
_MODES = ("sh", "ex")


def prometheus_families(snap: Snapshot) -> Iterator[Metric]:
    """The Prometheus metric families of one snapshot (names: docs/observability.md)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
    )

    requests = CounterMetricFamily(
        "pylvmlockd_requests",
        "Requests answered, by op, resource type, mode (lock requests) and result",
        labels=("op", "rt", "mode", "result"),
    )
    for request_key, n in sorted(snap.requests.items()):
        requests.add_metric(request_key, n)
    yield requests

    for name, help_text, hists in (
        ("pylvmlockd_lock_wait_seconds", "Time from a lock request's arrival to its grant", snap.waits),
        ("pylvmlockd_lock_hold_seconds", "Time from a lock's grant to its release", snap.holds),
    ):
        family = HistogramMetricFamily(name, help_text, labels=("rt", "mode"))
        for (rt, mode), (buckets, total) in sorted(hists.items()):
            family.add_metric((rt, mode), list(cumulative(buckets)), total)
        yield family

    held = GaugeMetricFamily(
        "pylvmlockd_locks_held", "Locks held now, by resource type and mode", labels=("rt", "mode")
    )
    keys = {(rt, mode) for rt in _RTS for mode in _MODES} | set(snap.held)
    for key in sorted(keys):
        held.add_metric(key, snap.held.get(key, 0))
    yield held
    yield CounterMetricFamily("pylvmlockd_locks_granted", "Locks granted", snap.granted)
    yield CounterMetricFamily(
        "pylvmlockd_lock_local_waits", "Lock requests that queued behind another local holder", snap.local_waits
    )
    yield CounterMetricFamily(
        "pylvmlockd_lock_retries", "Acquires refused with EAGAIN by the lock manager and retried", snap.retries
    )
    yield CounterMetricFamily(
        "pylvmlockd_lock_refused_by_other_host",
        "Lock requests answered EAGAIN once the retries were spent (held on another host)",
        snap.refused_by_other_host,
    )

    sent = CounterMetricFamily(
        "pylvmlockd_lvmetad_invalidations", "Invalidations sent to the local lvmetad, by request", labels=("request",)
    )
    failed = CounterMetricFamily(
        "pylvmlockd_lvmetad_invalidation_failures",
        "Invalidations that could not be delivered to the local lvmetad, by request",
        labels=("request",),
    )
    for request in sorted(snap.invalidations):
        sent.add_metric((request,), snap.invalidations[request])
        failed.add_metric((request,), snap.invalidation_failures.get(request, 0))
    yield sent
    yield failed

    yield CounterMetricFamily("pylvmlockd_lockspaces_started", "Lockspaces joined", snap.lockspaces_started)
    yield CounterMetricFamily(
        "pylvmlockd_lockspace_start_failures", "Lockspace joins that failed", snap.lockspace_start_failures
    )
    stopped = CounterMetricFamily(
        "pylvmlockd_lockspaces_stopped", "Lockspaces left, by how (stop, free, drop)", labels=("how",)
    )
    for how, n in sorted(snap.lockspaces_stopped.items()):
        stopped.add_metric((how,), n)
    yield stopped
    now = GaugeMetricFamily("pylvmlockd_lockspaces", "Lockspaces now, by state", labels=("state",))
    for state, n in sorted(snap.lockspaces.items()):
        now.add_metric((state,), n)
    yield now

    errors = CounterMetricFamily(
        "pylvmlockd_lock_manager_errors",
        "Non-zero results of lock-manager (sanlock) calls, by call and result",
        labels=("call", "result"),
    )
    for call_result, n in sorted(snap.lm_errors.items()):
        errors.add_metric(call_result, n)
    yield errors

    yield GaugeMetricFamily("pylvmlockd_connections_open", "Client connections open now", snap.connections_open)
    yield CounterMetricFamily("pylvmlockd_connections", "Client connections accepted", snap.connections_total)
    yield GaugeMetricFamily("pylvmlockd_uptime_seconds", "Seconds since the daemon started", snap.uptime)
    yield InfoMetricFamily("pylvmlockd", "Daemon version", {"version": __version__, "lvm_version": LVM_VERSION})

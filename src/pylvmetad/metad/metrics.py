"""What the daemon counts about itself, and the two ways it is read out.

Rules of this module:

* The event loop writes, everybody else only reads.  The server's observer
  hook (:attr:`Metrics.observer`, a :class:`RequestLog`) runs on the loop
  thread after every request; the ``stats`` request reads on the same
  thread; the Prometheus endpoint reads from its own HTTP thread through
  :class:`_Collector`.  Reading never writes.
* Nothing here changes the cache or the server: cache sizes, flags and the
  token are read from :class:`~pylvmetad.cache.CacheState`, connection figures
  from :class:`~pylvmetad.server.ServerStats`, when somebody asks.
* Every figure has one name in each output; docs/observability.md lists them.

Theory of operation
-------------------
Per request name there is one :class:`RequestFigures`: replies counted by
their ``response`` word, and a latency histogram with fixed bucket bounds
(:data:`BUCKET_BOUNDS`, a 1-2-5 series from 10 µs to 10 s).  Percentiles are
derived when read, by linear interpolation inside the bucket that holds the
rank (what Prometheus' ``histogram_quantile`` does), so they are estimates
with the precision of the buckets.

Recording a request is logging it, not counting it (issue 17: counting cost
~3.5k instructions a request, a few per cent of a ``pv_found``): the server
extends the observer's ``batch`` with the reply's request, response and
reason and the handling time, four entries and no call
(:class:`~pylvmetad.shell.server.BatchObserver`).  Every :data:`FOLD_AFTER`
requests the batch is *folded* into the figures with a few C-level passes
over it (:func:`fold_batch`: slices, counts, ``sum``, a sort bisected by
the bucket bounds; a ``compress`` per request name when it holds several),
~350 instructions a request where counting each one took ~3k.  The figures are the same as counting each request as it comes: the same
counts and buckets, the latency sums added in request order, failure keys
admitted in the order they first occur.  Readers fold the requests still
in the batch into their own copy, so every figure is current.

Request names and failure reasons come from clients, so both are bounded
before they become keys: a request name the daemon does not know is counted
as :data:`OTHER_REQUEST`, the variable tail of an internal error is dropped,
and past :data:`MAX_FAILURE_KEYS` distinct (request, reason) pairs further
new reasons are counted as ``other``.  A misbehaving client can therefore not
grow the daemon's memory or the scrape's label set.  A batch holds no reply
(a long one would stay alive with it), only its three strings and a float,
for at most FOLD_AFTER requests.

Reading from the HTTP thread without locks
------------------------------------------
The folded figures are never changed in place: a fold builds new
:class:`RequestFigures` for the names it touches (and a new failure dict when
it counts a failure), then publishes them with the fresh, empty batch as one
tuple (``Metrics._state``) in a single assignment, atomic under the GIL.  A
reader takes that tuple and copies its batch (a list slice: one C-level
call, during which the loop cannot append).  The figures it holds are
immutable, and its batch copy holds exactly the requests after them (a
batch the loop has since folded and dropped is no longer appended to), so a
snapshot is a consistent picture of every request up to a moment: a request
counted in ``requests_total`` has its latency in the same scrape.  Integers
and floats read are immutable objects, so a value read is always a value
that was written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_
from typing import TYPE_CHECKING, Protocol, cast

from .. import LVM_VERSION, __version__
from ..shell.metrics import (
    BUCKET_BOUNDS,
    MetricsEndpoint,
    RequestFigures,
    RequestSnapshot,
    copied,
    cumulative,
    metrics_registry,
    reason_key,
)
from ..wire.codec import Node, Section
from ..wire.replies import Reply
from .cache import DISABLE_REASONS, CacheState, GlobalFlag
from .protocol import UPDATE_IN_PROGRESS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from ..shell.server import Server

log = logging.getLogger("pylvmetad")

#: every request name the daemon answers (docs/protocol.md §5, plus our ``stats``),
#: ``NONE`` for text that does not parse and the one LVM sends that is refused
KNOWN_REQUESTS = frozenset(
    {
        "hello",
        "token_update",
        "pv_found",
        "pv_gone",
        "pv_gone_by_pvid",
        "pv_clear_all",
        "pv_lookup",
        "pv_list",
        "vg_update",
        "vg_remove",
        "vg_lookup",
        "vg_list",
        "vg_clear_outdated_pvs",
        "set_global_info",
        "get_global_info",
        "set_vg_info",
        "dump",
        "stats",
        "NONE",
    }
)
#: where requests with any other name are counted
OTHER_REQUEST = "other"
#: distinct (request, reason) pairs kept before new reasons count as "other"
MAX_FAILURE_KEYS = 256
OTHER_REASON = "other"
INTERNAL_ERROR = "internal error: "
#: the result word of each response the daemon sends ("OK" reads as "ok")
RESULTS = ("ok", "failed", "unknown", "token_mismatch", "token_updating", "multiple")
#: requests a batch holds before it is folded into the figures (the module's theory)
FOLD_AFTER = 256
#: entries a request adds to a batch: request, response, reason, elapsed seconds
ENTRY = 4
#: each known request name to itself (its ``get`` maps the rest to OTHER_REQUEST in C)
_KNOWN = {name: name for name in KNOWN_REQUESTS}

#: what a batch holds: ENTRY entries per request
Batch = list[str | float | None]


class _Figures(Protocol):
    """What a fold writes: :class:`RequestFigures`, or a reader's :class:`RequestSnapshot`."""

    responses: dict[str, int]
    buckets: list[int]
    sum: float


def fold_batch(
    batch: Batch, writable: Callable[[str], _Figures], failures: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Add the requests of ``batch`` to the figures; the failures, in ``failures`` or a copy when any is counted.

    ``writable(name)`` answers the figures of a (bounded) request name that
    this fold may change, called once per name the batch holds.  The result
    is what counting each request as it came gives (the module's theory).
    Each pass is one C-level call over the batch (a count, a slice, a
    ``compress``, a sort), so a batch of one request name with one response
    word and no failure, what a busy daemon mostly sees, costs a few hundred
    instructions a request.
    """
    count = len(batch) // ENTRY
    if not count:
        return failures
    raw = cast(list[str], batch[0::ENTRY])
    responses = cast(list[str], batch[1::ENTRY])
    reasons = cast(list[str | None], batch[2::ENTRY])
    elapsed = cast(list[float], batch[3::ENTRY])
    first = raw[0]
    if raw.count(first) == count:  # one request name: no grouping
        names = None
        name = _KNOWN.get(first, OTHER_REQUEST)
        _fold_group(writable(name), responses, elapsed)
    else:  # a pass per name; the bounded names are the very objects of _KNOWN, so ``is`` tells them apart
        names = list(map(_KNOWN.get, raw, repeat(OTHER_REQUEST)))
        for name in dict.fromkeys(names):
            chosen = list(map(is_, names, repeat(name)))
            _fold_group(writable(name), list(compress(responses, chosen)), list(compress(elapsed, chosen)))
    if reasons.count(None) != count:
        failures = failures.copy()
        if names is None:
            names = [name] * count
        counted = Counter((name, reason) for name, reason in zip(names, reasons, strict=True) if reason is not None)
        for (name, reason), n in counted.items():
            count_failure(failures, name, reason, n)
    return failures


def _fold_group(figures: _Figures, responses: list[str], elapsed: list[float]) -> None:
    """Add requests of one name (their response words and handling times, in order) to its figures."""
    n = len(elapsed)
    figures.sum = sum(elapsed, figures.sum)  # in request order, as adding one by one
    counted = figures.responses
    first = responses[0]
    if responses.count(first) == n:
        counted[first] = counted.get(first, 0) + n
    else:
        for response, k in Counter(responses).items():
            counted[response] = counted.get(response, 0) + k
    # a request's bucket is bisect_left(BUCKET_BOUNDS, seconds): the bucket i holds the
    # times in (BUCKET_BOUNDS[i - 1], BUCKET_BOUNDS[i]], counted by bisecting them sorted
    times = sorted(elapsed)
    buckets = figures.buckets
    last = bisect_left(BUCKET_BOUNDS, times[-1])
    below = 0
    for i in range(bisect_left(BUCKET_BOUNDS, times[0]), last):
        upto = bisect_right(times, BUCKET_BOUNDS[i])
        buckets[i] += upto - below
        below = upto
    buckets[last] += n - below


def count_failure(failures: dict[tuple[str, str], int], request: str, reason: str, n: int = 1) -> None:
    """Count ``n`` replies of ``request`` failed for ``reason``, the key bounded (the module's rules)."""
    if reason.startswith(INTERNAL_ERROR):  # keep the exception type, drop its message
        reason = INTERNAL_ERROR + reason[len(INTERNAL_ERROR) :].split(":", 1)[0]
    key = (request, reason)
    if key not in failures and len(failures) >= MAX_FAILURE_KEYS:
        key = (request, OTHER_REASON)
    failures[key] = failures.get(key, 0) + n


class RequestLog:
    """The server's observer hook (a :class:`~pylvmetad.shell.server.BatchObserver`).

    Called, or extended by the server directly, per request; :meth:`fold`
    is :meth:`Metrics.fold`.  The server reads ``batch`` anew each request:
    a fold replaces it.
    """

    __slots__ = ("batch", "fold", "fold_at")

    def __init__(self, fold: Callable[[], None]) -> None:
        self.batch: Batch = []
        #: the length of ``batch`` at which it is folded
        self.fold_at = FOLD_AFTER * ENTRY
        self.fold = fold

    def __call__(self, reply: Reply, elapsed: float) -> None:
        batch = self.batch
        batch += (reply.request, reply.response, reply.reason, elapsed)
        if len(batch) >= self.fold_at:
            self.fold()


@dataclass
class Snapshot:
    """Every figure at one moment; what both outputs are built from."""

    requests: dict[str, RequestSnapshot]
    failures: dict[tuple[str, str], int]
    connections_open: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: bytes held for all connections (the --max-buffered budget), as last counted
    buffered_bytes: int = 0
    over_budget: int = 0
    uptime: float = 0.0
    cache: dict[str, int] = field(default_factory=dict)
    flags: GlobalFlag = GlobalFlag(0)
    disable_reason: str = "none"
    token: str = ""
    update_pid: int = 0
    update_cmd: str = ""
    update_age: int = 0

    @property
    def update_in_progress(self) -> bool:
        return self.token == UPDATE_IN_PROGRESS


class Metrics:
    """The daemon's figures: fed by the server, read by ``stats`` and Prometheus."""

    def __init__(self, state: CacheState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.server: Server | None = None
        self.clock = clock
        self.started = clock()
        self._endpoint = MetricsEndpoint(
            lambda: prometheus_families(self.snapshot()), thread_name="pylvmetad-metrics", logger="pylvmetad"
        )
        #: the port the metrics endpoint listens on (useful with port 0)
        self.http_port: int | None = None
        #: the server's observer hook: requests are logged there, and folded in batches
        self.observer = RequestLog(self.fold)
        #: the folded figures, the failure counts and the batch of requests after them
        #: (replaced whole, never changed in place: the module's rules)
        self._state: tuple[dict[str, RequestFigures], dict[tuple[str, str], int], Batch] = ({}, {}, self.observer.batch)

    def attach_server(self, server: Server) -> None:
        self.server = server

    # -- the hot path: once per request, on the event loop ------------------
    def observe(self, reply: Reply, elapsed: float) -> None:
        """Count one answered request; ``elapsed`` is its handling time in seconds."""
        self.observer(reply, elapsed)

    def fold(self) -> None:
        """Fold the batch into the figures and publish them with a fresh batch (on the loop)."""
        figures, failures, batch = self._state
        fresh: Batch = []
        self.observer.batch = fresh
        if not batch:
            self._state = (figures, failures, fresh)
            return
        folded = figures.copy()

        def writable(name: str) -> RequestFigures:
            old = folded.get(name)
            new = folded[name] = RequestFigures()
            if old is not None:
                new.responses = old.responses.copy()
                new.buckets = old.buckets[:]
                new.sum = old.sum
            return new

        try:
            self._state = (folded, fold_batch(batch, writable, failures), fresh)
        except BaseException:  # a fold that failed costs its batch, not every later one
            self._state = (figures, failures, fresh)
            raise

    # -- reading ------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Copy every figure; safe from any thread (see the module doc)."""
        figures, failures, batch = self._state
        pending = batch[:]  # one C-level copy: the requests after the folded figures (the module's rules)
        del pending[len(pending) - len(pending) % ENTRY :]
        requests = {name: RequestSnapshot(f.responses.copy(), f.buckets[:], f.sum) for name, f in figures.items()}

        def writable(name: str) -> RequestSnapshot:
            snapshot = requests.get(name)
            if snapshot is None:
                snapshot = requests[name] = RequestSnapshot({}, [0] * (len(BUCKET_BOUNDS) + 1), 0.0)
            return snapshot

        snap = Snapshot(requests=requests, failures=fold_batch(pending, writable, failures).copy())
        server = self.server
        if server is not None:
            stats = server.stats
            snap.connections_open = stats.connections_open
            snap.connections_total = stats.connections_total
            snap.connections_refused = stats.connections_refused
            snap.bytes_in = stats.bytes_in
            snap.bytes_out = stats.bytes_out
            snap.buffered_bytes = server.buffered
            snap.over_budget = stats.over_budget
            snap.uptime = time.monotonic() - stats.started
        else:
            snap.uptime = self.clock() - self.started
        state = self.state
        outdated = copied(lambda: list(state.vgid_to_outdated_pvs.values()))
        infos = copied(lambda: list(state.vgid_to_info.values()))
        snap.cache = {
            "pvs": len(state.pvid_to_pvmeta),
            "vgs": len(state.vgid_to_metadata),
            "devices": len(state.device_to_pvid),
            "vg_names": len(state.vgname_to_vgid),
            "outdated_pvs": sum(len(pvs) for pvs in outdated),
            "invalid_vgs": sum(1 for info in infos if info.invalid),
            "generation": state.generation,
        }
        snap.flags = state.flags
        snap.disable_reason = state.disable_reason()
        tokens = state.tokens
        snap.token = tokens.token
        snap.update_pid = tokens.update_pid
        snap.update_cmd = tokens.update_cmd
        begin = tokens.update_begin
        snap.update_age = max(state.now() - begin, 0) if begin and snap.update_in_progress else 0
        return snap

    def stats_section(self) -> Section:
        """The figures as a config tree: the body of the ``stats`` reply."""
        snap = self.snapshot()
        flags = snap.flags
        requests: list[tuple[str, Node]] = []
        for name in sorted(snap.requests):
            figures = snap.requests[name]
            results = figures.results()
            entry: list[tuple[str, Node]] = [("count", figures.count)]
            entry += [(result, results.pop(result, 0)) for result in ("ok", "failed")]
            entry += sorted((reason_key(r), n) for r, n in results.items())  # other result words seen
            entry += [
                ("sum_seconds", figures.sum),
                ("p50_seconds", figures.quantile(0.50)),
                ("p99_seconds", figures.quantile(0.99)),
            ]
            requests.append((name, Section(entry)))
        failures: dict[str, dict[str, int]] = {}
        for (request, reason), n in snap.failures.items():
            per = failures.setdefault(request, {})
            key = reason_key(reason)  # distinct reasons may share a key: add them up
            per[key] = per.get(key, 0) + n
        return Section(
            [
                (
                    "daemon",
                    Section(
                        [
                            ("pid", os.getpid()),
                            ("version", __version__),
                            ("lvm_version", LVM_VERSION),
                            ("uptime_seconds", int(snap.uptime)),
                        ]
                    ),
                ),
                (
                    "connections",
                    Section(
                        [
                            ("open", snap.connections_open),
                            ("total", snap.connections_total),
                            ("refused", snap.connections_refused),
                            ("bytes_in", snap.bytes_in),
                            ("bytes_out", snap.bytes_out),
                            ("buffered_bytes", snap.buffered_bytes),
                            ("over_budget", snap.over_budget),
                        ]
                    ),
                ),
                ("cache", Section(list(snap.cache.items()))),
                (
                    "global",
                    Section(
                        [
                            ("invalid", int(bool(flags & GlobalFlag.INVALID))),
                            ("disabled", int(bool(flags & GlobalFlag.DISABLE))),
                            ("disable_reason", snap.disable_reason),
                        ]
                    ),
                ),
                (
                    "token",
                    Section(
                        [
                            ("token", snap.token),
                            ("update_in_progress", int(snap.update_in_progress)),
                            ("update_pid", snap.update_pid),
                            ("update_cmd", snap.update_cmd),
                            ("update_age_seconds", snap.update_age),
                        ]
                    ),
                ),
                ("requests", Section(requests)),
                (
                    "failures",
                    Section((request, Section(sorted(per.items()))) for request, per in sorted(failures.items())),
                ),
            ]
        )

    # -- Prometheus ---------------------------------------------------------
    def serve_http(self, listen: str) -> None:
        """Serve /metrics at ``HOST:PORT`` from a daemon thread (port 0: any free port).

        Raises ValueError for a malformed address and OSError when it cannot
        be bound; logs the address actually bound.
        """
        self.http_port = self._endpoint.serve(listen)

    @property
    def _http_thread(self) -> threading.Thread | None:
        return self._endpoint.thread

    def stop_http(self) -> None:
        """Stop the metrics endpoint (if serving) and wait for its thread."""
        self._endpoint.stop()


def prometheus_registry(metrics: Metrics) -> CollectorRegistry:
    """A registry holding the daemon's figures (read per scrape) and the process collector."""
    return metrics_registry(lambda: prometheus_families(metrics.snapshot()))


def prometheus_families(snap: Snapshot) -> Iterator[Metric]:
    """The Prometheus metric families of one snapshot (names: docs/observability.md)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
    )

    requests = CounterMetricFamily(
        "pylvmetad_requests", "Requests answered, by request name and result", labels=("request", "result")
    )
    durations = HistogramMetricFamily(
        "pylvmetad_request_duration_seconds", "Time to handle one request", labels=("request",)
    )
    for name in sorted(snap.requests):
        figures = snap.requests[name]
        for result, n in sorted(figures.results().items()):
            requests.add_metric((name, result), n)
        durations.add_metric((name,), list(cumulative(figures.buckets)), figures.sum)
    yield requests
    yield durations
    failures = CounterMetricFamily(
        "pylvmetad_request_failures",
        "Replies carrying a reason (failed, unknown, token_mismatch, ...), by request and reason",
        labels=("request", "reason"),
    )
    for (request, reason), n in sorted(snap.failures.items()):
        failures.add_metric((request, reason), n)
    yield failures

    yield GaugeMetricFamily("pylvmetad_connections_open", "Client connections open now", snap.connections_open)
    yield CounterMetricFamily("pylvmetad_connections", "Client connections accepted", snap.connections_total)
    yield CounterMetricFamily(
        "pylvmetad_connections_refused", "Connections refused by --allow-uid", snap.connections_refused
    )
    yield CounterMetricFamily("pylvmetad_bytes_received", "Bytes read from clients", snap.bytes_in)
    yield CounterMetricFamily("pylvmetad_bytes_sent", "Bytes written to clients", snap.bytes_out)
    yield GaugeMetricFamily(
        "pylvmetad_buffered_bytes",
        "Bytes held for all clients: partial requests, waiting requests, unread replies (--max-buffered)",
        snap.buffered_bytes,
    )
    yield CounterMetricFamily(
        "pylvmetad_connections_over_budget",
        "Connections refused a request or dropped for passing --max-buffered",
        snap.over_budget,
    )

    cache = snap.cache
    for key, help_text in (
        ("pvs", "PVs with metadata in the cache (pvid_to_pvmeta)"),
        ("vgs", "VGs with metadata in the cache (vgid_to_metadata)"),
        ("devices", "Devices mapped to a PV (device_to_pvid)"),
        ("vg_names", "Distinct VG names (vgname_to_vgid)"),
        ("outdated_pvs", "PVs holding older metadata of their VG (vgid_to_outdated_pvs)"),
        ("invalid_vgs", "VGs flagged invalid by set_vg_info and not yet updated"),
    ):
        yield GaugeMetricFamily(f"pylvmetad_cache_{key}", help_text, cache[key])
    yield CounterMetricFamily("pylvmetad_cache_changes", "Changes made to the cache tables", cache["generation"])

    flags = snap.flags
    yield GaugeMetricFamily(
        "pylvmetad_global_invalid", "1 while the global INVALID flag is set", int(bool(flags & GlobalFlag.INVALID))
    )
    yield GaugeMetricFamily(
        "pylvmetad_global_disabled",
        "1 while the cache is disabled (DISABLE flag)",
        int(bool(flags & GlobalFlag.DISABLE)),
    )
    reasons = GaugeMetricFamily(
        "pylvmetad_global_disable_reason", "1 for each disable reason currently set", labels=("reason",)
    )
    for word, bit in DISABLE_REASONS:
        reasons.add_metric((word,), int(bool(flags & bit)))
    yield reasons
    yield GaugeMetricFamily(
        "pylvmetad_update_in_progress",
        "1 while a command holds the token 'update in progress'",
        int(snap.update_in_progress),
    )
    yield GaugeMetricFamily("pylvmetad_update_pid", "Pid of the command updating the cache (0: none)", snap.update_pid)
    yield GaugeMetricFamily(
        "pylvmetad_update_age_seconds", "How long the running cache update has been going", snap.update_age
    )
    yield GaugeMetricFamily("pylvmetad_uptime_seconds", "Seconds since the daemon started", snap.uptime)
    yield InfoMetricFamily("pylvmetad", "Daemon version", {"version": __version__, "lvm_version": LVM_VERSION})

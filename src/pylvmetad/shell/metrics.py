"""Request figures every daemon keeps: counts by response, latency histograms.

Rules of this module:

* Written only by the event loop (the server's observer hook), read from any
  thread through copies taken with one C-level call each (:func:`copied`);
  see :mod:`pylvmetad.metad.metrics` for why that is safe without locks.
* Fixed bucket bounds (:data:`BUCKET_BOUNDS`, a 1-2-5 series from 10 µs to
  10 s); percentiles are estimated when read, as Prometheus'
  ``histogram_quantile`` does.
* Nothing here knows a daemon's requests or state.
* :class:`MetricsEndpoint` serves a daemon's Prometheus families (what its
  ``collect`` yields per scrape) and the process collector at ``/metrics``
  from a background thread; ``prometheus_client`` is imported only when it
  starts (it costs a daemon's start ~35 ms, worth paying only when used).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

#: upper bounds (seconds) of the latency buckets; one more bucket holds the rest (+Inf)
BUCKET_BOUNDS: tuple[float, ...] = (
    0.00001, 0.00002, 0.00005,
    0.0001, 0.0002, 0.0005,
    0.001, 0.002, 0.005,
    0.01, 0.02, 0.05,
    0.1, 0.2, 0.5,
    1.0, 2.0, 5.0,
    10.0,
)  # fmt: skip

_NOT_KEY = re.compile(r"[^a-z0-9_]+")


class RequestFigures:
    """Counts and latency of one request name (written only by the event loop)."""

    __slots__ = ("buckets", "responses", "sum")

    def __init__(self) -> None:
        #: reply count per response word as sent ("OK", "failed", ...)
        self.responses: dict[str, int] = {}
        #: observations per bucket of BUCKET_BOUNDS, the last one +Inf
        self.buckets: list[int] = [0] * (len(BUCKET_BOUNDS) + 1)
        self.sum = 0.0


@dataclass
class RequestSnapshot:
    """A copy of one request's figures, safe to read on any thread."""

    responses: dict[str, int]
    buckets: list[int]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def results(self) -> dict[str, int]:
        """Counts by result word: ``ok``, ``failed``, ``unknown``, ``token_mismatch``, ..."""
        out: dict[str, int] = {}
        for response, n in self.responses.items():
            result = response.lower()
            out[result] = out.get(result, 0) + n
        return out

    def quantile(self, q: float) -> float:
        return histogram_quantile(q, self.buckets)


def histogram_quantile(q: float, buckets: list[int]) -> float:
    """The ``q`` quantile (0..1) of a bucketed distribution, in seconds.

    Linear interpolation within the bucket holding the rank, the lowest
    bucket starting at 0; a rank in the +Inf bucket reads as the highest
    finite bound (nothing better is known).  0.0 when nothing was observed.
    """
    total = sum(buckets)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            if i == len(BUCKET_BOUNDS):
                return BUCKET_BOUNDS[-1]
            lower = BUCKET_BOUNDS[i - 1] if i else 0.0
            upper = BUCKET_BOUNDS[i]
            return lower + (upper - lower) * max(rank - seen, 0.0) / n
        seen += n
    return BUCKET_BOUNDS[-1]


def reason_key(reason: str) -> str:
    """A failure reason as a bare config key: ``"VG not found"`` -> ``vg_not_found``."""
    return _NOT_KEY.sub("_", reason.lower()).strip("_") or "unspecified"


_T = TypeVar("_T")


def copied(copy: Callable[[], _T]) -> _T:
    """Run a C-level copy of a container the event loop may be writing (see module doc)."""
    for _ in range(5):
        try:
            return copy()
        except RuntimeError:  # changed size during the copy: take it again
            continue
    return copy()


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) as (host, port); ValueError if malformed."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected HOST:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def cumulative(buckets: Iterable[int]) -> Iterator[tuple[str, int]]:
    """Per-bucket counts as Prometheus' cumulative ``(le, count)`` pairs."""
    running = 0
    for bound, n in zip((*(repr(b) for b in BUCKET_BOUNDS), "+Inf"), buckets, strict=True):
        running += n
        yield bound, running


def metrics_registry(collect: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A registry of its own: ``collect()``'s families, read per scrape, and the process collector."""
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector, CollectorRegistry

    class FamiliesCollector(Collector):
        def collect(self) -> Iterable[Metric]:
            return collect()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FamiliesCollector())
    ProcessCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """``/metrics`` over plain HTTP from a daemon thread (see the module doc)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]], *, thread_name: str, logger: str) -> None:
        self.collect = collect
        self.thread_name = thread_name
        self.log = logging.getLogger(logger)
        self.http: WSGIServer | None = None
        self.thread: threading.Thread | None = None
        #: the port it listens on (useful with port 0)
        self.port: int | None = None

    def serve(self, listen: str) -> int:
        """Serve at ``HOST:PORT`` (port 0: any free port); returns the port bound.

        Raises ValueError for a malformed address and OSError when it cannot
        be bound; logs the address actually bound.
        """
        from prometheus_client import start_http_server

        host, port = parse_listen(listen)
        self.http, self.thread = start_http_server(port, host, metrics_registry(self.collect))
        self.thread.name = self.thread_name
        self.port = int(self.http.server_port)
        shown = f"[{host}]" if ":" in host else host
        self.log.info(
            "serving metrics on http://%s:%d/metrics",
            shown,
            self.port,
            extra={"fields": {"metrics_host": host, "metrics_port": self.port}},
        )
        return self.port

    def stop(self) -> None:
        """Stop serving (if serving) and wait for the thread; a second call does nothing."""
        if self.http is None:
            return
        self.http.shutdown()  # returns once serve_forever has left its loop
        self.http.server_close()
        if self.thread is not None:
            self.thread.join(5)
        self.http = self.thread = None

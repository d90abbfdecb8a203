"""Request figures every daemon keeps: counts by response, latency histograms.

Rules of this module:

* Written only by the event loop (the server's observer hook), read from any
  thread through copies taken with one C-level call each (:func:`copied`);
  see :mod:`pylvmetad.metad.metrics` for why that is safe without locks.
* Fixed bucket bounds (:data:`BUCKET_BOUNDS`, a 1-2-5 series from 10 µs to
  10 s); percentiles are estimated when read, as Prometheus'
  ``histogram_quantile`` does.
* Nothing here knows a daemon's requests or state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

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

"""The original daemons' log classes and ``-l`` parsing, without importing :mod:`logging`.

The daemons' commands parse ``-l`` before their socket listens, when nothing
heavy is imported yet (docs/architecture.md, "Start-up"); :mod:`.logs` sets
up the logging itself afterwards and re-exports these names.  The numbers
are :mod:`logging`'s fixed level values (``logging.DEBUG`` is 10 ...
``logging.CRITICAL`` 50), written out here; ``WIRE`` sits between DEBUG and
INFO.
"""

from __future__ import annotations

WIRE = 15  # between DEBUG and INFO; the original's "wire" log class

#: the original's log classes; "all" enables every one
LOG_LEVELS = {
    "fatal": 50,  # logging.CRITICAL
    "error": 40,  # logging.ERROR
    "warn": 30,  # logging.WARNING
    "info": 20,  # logging.INFO
    "wire": WIRE,
    "debug": 10,  # logging.DEBUG
}
DEFAULT_LOG_LEVELS = "fatal,error,warn,info"


def parse_levels(text: str | None) -> set[int]:
    """Log classes named in ``-l`` (unknown words ignored, as the original does)."""
    words = [w.strip() for w in (text or DEFAULT_LOG_LEVELS).split(",")]
    if "all" in words:
        return set(LOG_LEVELS.values())
    return {LOG_LEVELS[w] for w in words if w in LOG_LEVELS}

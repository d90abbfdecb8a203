"""Replies of LVM's daemons: the :class:`Reply` record and the simple-layout builders.

Rules of this module:

* A reply is its body text plus what it says (request name, ``response``,
  ``reason``), so the server can log and count it without parsing it again.
* The builders here make the "simple" layout (``key = value`` lines) that
  both lvmetad and lvmlockd use for short replies; structured replies are
  written by each daemon's handlers with the codec's tree writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Atom, format_simple


@dataclass(frozen=True)
class Reply:
    """A reply body and what it says, for logging and statistics."""

    body: str
    request: str
    response: str
    reason: str | None = None


def simple(request: str, response: str, *fields: tuple[str, Atom]) -> Reply:
    reason = next((v for k, v in fields if k == "reason"), None)
    return Reply(format_simple(response, fields), request, response, str(reason) if reason is not None else None)


def failed(request: str, reason: str) -> Reply:
    return simple(request, "failed", ("reason", reason))


def unknown(request: str, reason: str) -> Reply:
    return simple(request, "unknown", ("reason", reason))


def ok(request: str, *fields: tuple[str, Atom]) -> Reply:
    return simple(request, "OK", *fields)

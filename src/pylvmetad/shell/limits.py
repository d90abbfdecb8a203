"""Default limits of the server shell, in a module of its own.

Imported by the daemons' commands for their option defaults and help text
before their socket listens (nothing else is imported then, see
docs/architecture.md, "Start-up"), and by :mod:`.server`.
"""

from __future__ import annotations

#: daemon-wide default of ``max_buffered`` (README, Memory)
DEFAULT_MAX_BUFFERED = 256 * 1024 * 1024

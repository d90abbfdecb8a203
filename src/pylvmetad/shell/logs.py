"""Logging of the daemons: LVM's log classes, stderr and syslog, JSON lines.

The original daemons log by *class* (fatal, error, warn, info, wire, debug)
chosen as a set with ``-l``, not by threshold; :data:`LOG_LEVELS` names each
class once, and both outputs (the ``I:``/``W:``/``E:`` stderr lines and the
JSON objects) read their names from it.  JSON lines (``--log-json``) are
written by :mod:`.logjson`.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys

from .loglevels import DEFAULT_LOG_LEVELS, LOG_LEVELS, WIRE, parse_levels

__all__ = ["DEFAULT_LOG_LEVELS", "LOG_LEVELS", "WIRE", "parse_levels", "setup_logging"]

logging.addLevelName(WIRE, "WIRE")


class _LevelSet(logging.Filter):
    """Passes exactly the selected log classes (they are a set, not a threshold)."""

    def __init__(self, levels: set[int]) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno in self.levels


class _StderrFormatter(logging.Formatter):
    """The original's prefixes: ``I:``, ``W:``, ``E:``; none for wire and debug."""

    PREFIX = {logging.INFO: "I: ", logging.WARNING: "W: ", logging.ERROR: "E: ", logging.CRITICAL: "E: "}

    def format(self, record: logging.LogRecord) -> str:
        return self.PREFIX.get(record.levelno, "") + super().format(record)


def setup_logging(levels: set[int], foreground: bool, json_lines: bool, name: str = "pylvmetad") -> None:
    """Route logger ``name`` to stderr (foreground) and syslog, passing the classes in ``levels``."""
    from .logjson import JsonFormatter  # here: logjson reads LOG_LEVELS from this module

    root = logging.getLogger(name)
    root.handlers.clear()
    root.setLevel(min(levels | {logging.CRITICAL}))
    root.propagate = False
    if foreground:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if json_lines else _StderrFormatter("%(message)s"))
        handler.addFilter(_LevelSet(levels))
        root.addHandler(handler)
    if os.path.exists("/dev/log"):
        with contextlib.suppress(OSError):
            syslog = logging.handlers.SysLogHandler(
                address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
            syslog.ident = f"{name}[{os.getpid()}]: "
            syslog.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
            # fatal and error always reach syslog, as with the original
            syslog.addFilter(_LevelSet(levels | {logging.CRITICAL, logging.ERROR}))
            root.addHandler(syslog)

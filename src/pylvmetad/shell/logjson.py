"""One JSON object per log line, for journald and log shippers (``--log-json``).

A record's ``extra={"fields": {...}}`` becomes top-level keys next to ``ts``,
``level`` and ``msg`` (failed requests carry ``request``, ``response``,
``reason``, ``peer_pid``, ``peer_uid``: docs/observability.md).  A field may
not replace those three.  ``json.dumps`` escapes control characters, so a
message with newlines (wire logging) still makes exactly one line.
"""

from __future__ import annotations

import json
import logging
import time

from .logs import LOG_LEVELS

#: a level's class name (LVM's log classes, named once in :mod:`.logs`)
LEVEL_NAMES = {level: name for name, level in LOG_LEVELS.items()}
_CORE_KEYS = frozenset({"ts", "level", "msg"})


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "msg": ..., <extra fields>}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, object] = {
            "ts": f"{seconds}.{int(record.msecs):03d}Z",
            "level": LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if str(key) not in _CORE_KEYS:
                    entry[str(key)] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)

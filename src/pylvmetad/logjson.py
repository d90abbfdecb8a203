"""One JSON object per log line, for journald and log shippers (``--log-json``)."""

from __future__ import annotations

import json
import logging
import time

LEVEL_NAMES = {50: "fatal", 40: "error", 30: "warn", 20: "info", 15: "wire", 10: "debug"}


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "msg": ..., <extra fields>}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=False)

"""Log lines: plain text by default, or JSON lines with stable field names (`watch --log-format json`).

A log call that has facts to give passes them as ``extra=logs.fields(event="outcome", ...)``; the plain
format shows only the message, the JSON format writes every field beside ``time``, ``level``, ``logger``
and ``message``, so a log shipper can index them. The names are documented in README "Logs". No field
carries a secret: callers pass ids, keys, paths and statuses, never a token, a URL with credentials
or a routing key.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

FIELDS = "pagerules_fields"  # the LogRecord attribute the fields travel in


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the record's structured fields."""
    return {FIELDS: values}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name, value in getattr(record, FIELDS, {}).items():
            line.setdefault(name, value)  # the four above are never overwritten
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json() -> None:
    """Switch every handler of the root logger to JSON lines."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())

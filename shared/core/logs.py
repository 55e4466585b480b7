"""Process logging: JSON lines for log shippers, or plain text for a terminal (``make run``).

Every line carries the context of the work it belongs to: ``request_id`` and ``route``
for a web request, ``task_id`` and ``task`` for a Celery task, and ``user`` as a short
hash of the user id (enough to follow one person's trail, without the id itself in
a log store). The context lives in ``contextvars``, set by the web hooks and the
worker's task signals, so it follows greenlets and threads correctly.

What never goes to a log: tokens, tickets, passwords, OAuth codes, query strings and
question text (they are data, not events). Modules log ids and counts.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from shared.core.settings import Settings

FORMATS = ("json", "plain")
CONTEXT_FIELDS = ("request_id", "route", "task_id", "task", "user")

_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"mailchat_log_{name}", default=None) for name in CONTEXT_FIELDS
}


def user_hash(user_id: str) -> str:
    """A stable, short stand-in for a user id in logs."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:12]


def bind(**values: str | None) -> list[contextvars.Token[str | None]]:
    """Set context fields for the current request or task; returns tokens for ``unbind``."""
    return [_context[name].set(value) for name, value in values.items()]


def unbind(tokens: list[contextvars.Token[str | None]]) -> None:
    for token in reversed(tokens):
        token.var.reset(token)


def clear() -> None:
    """Forget every context field (a prefork worker process reuses its context)."""
    for var in _context.values():
        var.set(None)


class ContextFilter(logging.Filter):
    """Copies the bound context onto every record (absent fields stay absent)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            value = var.get()
            if value is not None:
                setattr(record, name, value)
        return True


class _PlainFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=... task_id=...]`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if hasattr(record, n)]
        return f"{line} [{' '.join(extra)}]" if extra else line


# Celery passes every task log line's whole context as ``extra={"data": ...}`` (for custom
# handlers): the task's args and kwargs, its return value, its traceback. A JSON formatter
# writes every extra attribute, so a delivery's event text or a search's snippets would land
# in the log store. The message itself (LOG_SUCCESS without the value, celery_app) says enough.
NEVER_LOGGED_ATTRS = ("data",)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *NEVER_LOGGED_ATTRS],
            json_ensure_ascii=False,
        )
    if log_format == "plain":
        return _PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise ValueError(f"MAILCHAT_LOG_FORMAT={log_format!r} must be one of {', '.join(FORMATS)}")


def configure_logging(settings: Settings, **defaults: Any) -> None:
    """Point the root logger at stderr in the configured format (idempotent per process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mailchat", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._mailchat = True  # type: ignore[attr-defined]  # marks our handler for reconfiguration
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    if defaults:
        bind(**defaults)

"""Logging for Celery processes (worker, beat, Flower): Mailchat's format, with the task's context.

Celery would otherwise install its own handlers; answering ``setup_logging`` tells it
not to, so worker lines look like web lines (``MAILCHAT_LOG_FORMAT``). Each task's
lines carry its ``task_id`` and ``task`` name; arguments are never logged (they are
ids, but a task's arguments are data, not events).
"""

from __future__ import annotations

from typing import Any

from celery import signals

from shared.core import logs
from shared.core.settings import get_settings


@signals.setup_logging.connect
def _configure(**_: Any) -> None:
    logs.configure_logging(get_settings())


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    logs.clear()

"""A worker that is shutting down tells its long tasks to stop after the batch in hand.

On SIGTERM Celery stops taking tasks and waits for the running ones, but a sync or an
import can run for an hour, longer than any supervisor or container waits before
SIGKILL. Pool processes never see the signal (only the main process gets it), so the
main process raises a flag in Redis, and a long task asks for it between batches: it
stops where its cursor already stands and is sent again, so the next worker goes on
from there. Nothing is lost (the cursor moved only past indexed batches) and nothing
doubles (documents have deterministic ids).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, signals

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.settings import get_settings

log = logging.getLogger(__name__)

FLAG_TTL_SECONDS = 3600


def _flag(hostname: str) -> str:
    return RedisKeys(get_settings().key_prefix).worker_stopping(hostname)


@signals.worker_shutting_down.connect
def _raise_flag(sender: Any = None, **_: Any) -> None:
    try:
        get_redis(get_settings()).set(_flag(str(sender)), "1", ex=FLAG_TTL_SECONDS)
    except Exception:  # Redis down: the running tasks finish whole (or are redelivered)
        log.warning("could not tell running tasks that worker %s is stopping", sender)


@signals.worker_ready.connect
def _lower_flag(sender: Any = None, **_: Any) -> None:
    """A worker restarted under the same name is not stopping."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        get_redis(get_settings()).delete(_flag(str(hostname)))
    except Exception:  # the flag expires on its own; a worker must start without Redis too
        log.warning("could not clear the stopping flag of worker %s", hostname)


def stopping(task: Task) -> bool:
    """True when the worker running ``task`` is shutting down."""
    hostname = task.request.hostname
    return bool(hostname) and bool(get_redis(get_settings()).exists(_flag(str(hostname))))

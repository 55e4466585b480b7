"""Delivery tasks: write an event into a person's log, retried until it lands."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task, shared_task

from shared.clients import get_redis
from shared.delivery import Target, dead_letter, deliver
from shared.settings import get_settings
from shared.task_names import DELIVERY_DELIVER

log = logging.getLogger(__name__)

MAX_RETRIES = 8


class DeliveryTask(Task):  # type: ignore[misc]
    """Dead-letters a delivery once its retries are spent, so nothing vanishes silently."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        settings = get_settings()
        dead_letter(get_redis(settings), settings, dict(kwargs), f"{type(exc).__name__}: {exc}")


@shared_task(
    name=DELIVERY_DELIVER,
    base=DeliveryTask,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError),
    retry_backoff=0.5,
    retry_backoff_max=60,
    retry_jitter=True,  # full jitter: a random delay up to the backoff
    max_retries=MAX_RETRIES,
)
def deliver_event(
    *,
    target: Target,
    target_id: str,
    event_type: str,
    data: dict[str, Any],
    dedup_key: str,
) -> str:
    """Append one event; returns its entry id (the same id on every retry)."""
    settings = get_settings()
    appended = deliver(
        get_redis(settings),
        settings,
        target=target,
        target_id=target_id,
        event_type=event_type,
        data=data,
        dedup_key=dedup_key,
    )
    return appended.id

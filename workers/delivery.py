"""Delivery tasks: write an event into a person's log, retried until it lands."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery, Task, shared_task

from shared import metrics
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
        metrics.DELIVERY_ATTEMPTS.labels(outcome="dead_lettered").inc()
        try:
            dead_letter(get_redis(settings), settings, dict(kwargs), f"{type(exc).__name__}: {exc}")
        except redis.RedisError:
            # Redis itself is what failed: the log is the last place this delivery is recorded.
            log.critical("delivery %s lost with Redis down: %r", kwargs.get("dedup_key"), exc)

    def on_retry(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        metrics.DELIVERY_ATTEMPTS.labels(outcome="retry").inc()


def enqueue_delivery(
    app: Celery,
    *,
    target: Target,
    target_id: str,
    event_type: str,
    data: dict[str, Any],
    dedup_key: str,
) -> None:
    """Send ``delivery.deliver``; the one way tasks address a person (sync notifications...)."""
    app.send_task(
        DELIVERY_DELIVER,
        kwargs={
            "target": target,
            "target_id": target_id,
            "event_type": event_type,
            "data": data,
            "dedup_key": dedup_key,
            "enqueued_at": time.time(),
        },
    )


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
    enqueued_at: float | None = None,
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
    metrics.DELIVERY_ATTEMPTS.labels(outcome="delivered" if appended.written else "duplicate").inc()
    if enqueued_at is not None and appended.written:
        metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - enqueued_at))
    return appended.id

"""Delivery tasks: write an event into a person's log, retried until it lands."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task, shared_task

from shared.core import metrics
from shared.core.clients import get_redis
from shared.core.settings import get_settings
from shared.core.task_names import DELIVERY_DELIVER, DELIVERY_SWEEP_OUTBOX
from shared.realtime.delivery import (
    Delivery,
    Target,
    claim_overdue,
    dead_letter,
    deliver,
    is_pending,
    settle,
)

log = logging.getLogger(__name__)

MAX_RETRIES = 8


class DeliveryTask(Task):  # type: ignore[misc]
    """Dead-letters a delivery once its retries are spent, so nothing vanishes silently."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        settings = get_settings()
        metrics.DELIVERY_ATTEMPTS.labels(outcome="dead_lettered").inc()
        try:
            r = get_redis(settings)
            delivery = Delivery.from_kwargs(dict(kwargs))
            dead_letter(r, settings, delivery, f"{type(exc).__name__}: {exc}")
            settle(r, settings, kwargs["dedup_key"])
        except redis.RedisError:
            # Redis itself is what failed: the log is the last place this delivery is recorded.
            log.critical("delivery %s lost with Redis down: %r", kwargs.get("dedup_key"), exc)

    def on_retry(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        metrics.DELIVERY_ATTEMPTS.labels(outcome="retry").inc()


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
    """Append one event; returns its entry id (the same id on every retry).

    A delivery sent through the outbox (it carries ``enqueued_at``) whose entry
    is gone was settled already or purged by delete-my-data: writing it now
    would recreate a log the person deleted, so it is dropped.
    """
    settings = get_settings()
    if enqueued_at is not None and not is_pending(get_redis(settings), settings, dedup_key):
        metrics.DELIVERY_ATTEMPTS.labels(outcome="dropped").inc()
        log.info("delivery %s is no longer pending (settled or purged); dropped", dedup_key)
        return ""
    delivery = Delivery(target, target_id, event_type, data, dedup_key, enqueued_at)
    appended = deliver(get_redis(settings), settings, delivery)
    settle(get_redis(settings), settings, dedup_key)
    metrics.DELIVERY_ATTEMPTS.labels(outcome="delivered" if appended.written else "duplicate").inc()
    if enqueued_at is not None and appended.written:
        metrics.DELIVERY_LATENCY.observe(max(0.0, time.time() - enqueued_at))
    return appended.id


@shared_task(name=DELIVERY_SWEEP_OUTBOX, ignore_result=True, time_limit=120)
def sweep_outbox() -> int:
    """Re-send deliveries whose task never settled (beat runs this); returns how many."""
    settings = get_settings()
    claimed = claim_overdue(get_redis(settings), settings, time.time())
    for delivery in claimed:
        metrics.DELIVERY_ATTEMPTS.labels(outcome="resent").inc()
        sweep_outbox.app.send_task(DELIVERY_DELIVER, kwargs=delivery.as_kwargs())
    if claimed:
        log.warning("re-sent %d deliveries left unsettled", len(claimed))
    return len(claimed)

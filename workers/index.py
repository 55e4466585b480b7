"""Index lifecycle tasks, run by beat: rollover (hourly) and retention (daily).

Thin: pick the alias, call ``shared.index.lifecycle``, return what happened. Each
run takes the per-alias Redis lock itself and re-reads the cluster under it,
so a retried, redelivered or doubled run finds the work done and does
nothing ("not_due", "nothing_due" or "locked"). Only transport errors are
retried; a ``LifecycleError`` (missing alias, unmarked write index, ...)
fails the task loudly with its fix in the message.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from celery import shared_task
from elasticsearch import ConnectionError as ESConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings, get_settings
from shared.core.task_names import INDEX_RETENTION, INDEX_ROLLOVER
from shared.index import lifecycle
from shared.index.mail_age import purge_expired_mail

log = logging.getLogger(__name__)

_RETRY = {
    "autoretry_for": (ESConnectionError, RedisConnectionError),
    "retry_backoff": 5,
    "retry_jitter": True,
    "max_retries": 3,
}


def _settings(alias: str | None, template: str | None) -> Settings:
    """The process settings, or the same pointed at another alias (operators, tests)."""
    settings = get_settings()
    if alias:
        settings = dataclasses.replace(settings, index_alias=alias)
    if template:
        settings = dataclasses.replace(settings, index_template=template)
    return settings


@shared_task(
    name=INDEX_ROLLOVER,
    bind=True,
    ignore_result=False,
    soft_time_limit=120,
    time_limit=180,
    **_RETRY,
)
def rollover(self: Any, alias: str | None = None, template: str | None = None) -> dict[str, Any]:
    """Roll the write alias over if its write index is due (30 d / 20 GB by default)."""
    settings = _settings(alias, template)
    result = lifecycle.rollover(
        get_elasticsearch(settings),
        get_redis(settings),
        settings,
        owner=f"task:{self.request.id}",
    )
    return result.as_dict()


@shared_task(
    name=INDEX_RETENTION,
    bind=True,
    ignore_result=False,
    soft_time_limit=600,
    time_limit=900,
    **_RETRY,
)
def retention(self: Any, alias: str | None = None, template: str | None = None) -> dict[str, Any]:
    """Delete indices rolled over more than retention (90 d) ago, and mail older than that."""
    settings = _settings(alias, template)
    es = get_elasticsearch(settings)
    result = lifecycle.retention(es, get_redis(settings), settings, owner=f"task:{self.request.id}")
    # Retention by the age of the mail: what aged out since it was indexed goes too.
    return {**result.as_dict(), "expired_emails_deleted": purge_expired_mail(es, settings)}

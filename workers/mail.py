"""Mail tasks: import an mbox, sync an account, sync all accounts, renew Gmail watches.

Thin on purpose: each task decodes its ids, calls ``shared/`` and owns only
retries. Idempotency lives below: documents have deterministic ids, cursors
move only after their batch is indexed, and one Redis lock per account
keeps two syncs of it from overlapping (a redelivered task finds the lock
and leaves the work to the run that holds it).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import redis
from celery import Task, shared_task
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import TransportError

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.logs import user_hash
from shared.core.settings import get_settings
from shared.core.task_names import (
    MAIL_IMPORT_MBOX,
    MAIL_RENEW_GMAIL_WATCH,
    MAIL_SYNC_ACCOUNT,
    MAIL_SYNC_ALL,
)
from shared.index.writer import import_mbox as import_mbox_file
from shared.realtime.delivery import Delivery, enqueue_delivery
from shared.sync import accounts
from shared.sync.engine import SyncOptions, gmail_client
from shared.sync.engine import sync_account as run_sync
from shared.sync.gmail_quota import QuotaExhausted
from shared.sync.providers.base import NeedsReauth, ProviderError
from shared.sync.providers.gmail_push import ensure_watch, renew_watches
from shared.sync.schedule import sync_all as queue_all
from workers.shutdown import stopping

log = logging.getLogger(__name__)

SYNC_MAX_RETRIES = 6
RETRYABLE = (
    ProviderError,
    ESConnectionError,
    TransportError,
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
)
_TIME_LIMIT = get_settings().sync_time_limit_seconds


def _notifier(task: Task) -> Any:
    """Send each sync event to the person's log through ``delivery.deliver``."""

    def notify(user_id: str, event_type: str, data: dict[str, Any], dedup_key: str) -> None:
        settings = get_settings()
        delivery = Delivery("user", user_id, event_type, data, dedup_key)
        enqueue_delivery(task.app.send_task, get_redis(settings), settings, delivery)

    return notify


def _sync(task: Task, account_id: str, announce: bool) -> dict[str, Any]:
    settings = get_settings()
    try:
        result = run_sync(
            get_redis(settings),
            get_elasticsearch(settings),
            settings,
            account_id,
            # One id per attempt: a redelivery repeats its events (deduplicated), a retry
            # reports afresh.
            run_id=f"{task.request.id or 'manual'}.{task.request.retries}",
            notify=_notifier(task),
            options=SyncOptions(announce=announce, should_stop=lambda: stopping(task)),
        )
    except QuotaExhausted as exc:
        raise task.retry(exc=exc, countdown=exc.retry_after, max_retries=SYNC_MAX_RETRIES) from exc
    except NeedsReauth:  # already recorded on the account; retrying cannot help
        raise
    except RETRYABLE as exc:
        # Exponential backoff with full jitter: 30 s, 1 min, 2 min, ... up to an hour.
        countdown = random.uniform(0, min(3600, 30 * 2**task.request.retries))
        log.warning("sync of %s failed (%s), retry in %.0fs", account_id, exc, countdown)
        raise task.retry(exc=exc, countdown=countdown, max_retries=SYNC_MAX_RETRIES) from exc
    if result.outcome == "interrupted":
        # Sent again at once; the next worker goes on from the cursor (not counted as a retry
        # of a failure: a shutdown is not the sync's fault).
        raise task.retry(countdown=0, max_retries=task.request.retries + 1)
    if result.outcome == "ok":
        _ensure_watch(settings, account_id)
    return result.as_dict()


def _ensure_watch(settings: Any, account_id: str) -> None:
    r = get_redis(settings)
    account = accounts.get_account(r, settings, account_id)
    if account is None:
        return
    try:
        ensure_watch(r, settings, account, lambda a: gmail_client(r, settings, a, SyncOptions()))
    except Exception:  # the sync succeeded; the daily renewal will try the watch again
        log.exception("account %s: could not start the Gmail watch", account_id)


@shared_task(
    name=MAIL_SYNC_ACCOUNT,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=_TIME_LIMIT,
    soft_time_limit=max(60, _TIME_LIMIT - 60),
)
def sync_account(self: Task, account_id: str, announce: bool = False) -> dict[str, Any]:
    """Sync one account from its cursor; ``announce`` reports even a run with nothing new."""
    return _sync(self, account_id, announce)


@shared_task(name=MAIL_SYNC_ALL, acks_late=True, time_limit=300)
def sync_all() -> dict[str, int]:
    """Beat's periodic sync: queue every account (bursts collapse into one queued run)."""
    settings = get_settings()
    from celery import current_app

    counts = queue_all(get_redis(settings), settings, current_app.send_task)
    log.info("sync_all: %s", counts)
    return counts


@shared_task(name=MAIL_RENEW_GMAIL_WATCH, acks_late=True, time_limit=1800)
def renew_gmail_watch() -> dict[str, int]:
    """Renew every Gmail watch (daily; Google drops one after 7 days without renewal)."""
    settings = get_settings()
    r = get_redis(settings)
    counts = renew_watches(
        r, settings, lambda account: gmail_client(r, settings, account, SyncOptions())
    )
    log.info("renew_gmail_watch: %s", counts)
    return counts


@shared_task(
    name=MAIL_IMPORT_MBOX,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ESConnectionError, TransportError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
    time_limit=4 * 3600,
)
def import_mbox(
    self: Task, user_id: str, path: str, account_id: str | None = None
) -> dict[str, Any]:
    """Import an mbox file for ``user_id``.

    With ``account_id`` (an upload) the import runs as that account's sync:
    its offset cursor resumes a crashed import, and progress reaches the
    person's notifications. Safe to retry or redeliver either way:
    documents have deterministic ids, so a second run overwrites the first.
    """
    settings = get_settings()
    if account_id is not None:
        account = accounts.get_account(get_redis(settings), settings, account_id)
        if account is None or account.user_id != user_id:
            log.warning("import_mbox: account %s is gone", account_id)
            return {"outcome": "missing"}
        return _sync(self, account_id, announce=True)
    owners = accounts.owner_addresses(get_redis(settings), settings, user_id)
    stats = import_mbox_file(
        get_elasticsearch(settings), settings, user_id, path, owner_addresses=owners
    )
    log.info("imported an mbox for %s: %s", user_hash(user_id), stats.as_dict())
    return stats.as_dict()

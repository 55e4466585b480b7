"""When syncs run: beat's schedule, collapsing bursts of requests, the lag gauge.

Syncs are asked for by beat (every ``MAILCHAT_SYNC_INTERVAL_MINUTES``), by
Gmail push notifications and by people. Scheduled and pushed requests are
collapsed with a short-lived "queued" flag, so a burst of notifications
enqueues one task; the task clears the flag when it starts, so a change
that lands after that is not lost. Polling stays on even where push is
configured: a lapsed Gmail watch then costs minutes of delay, never mail.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from shared.core import metrics
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.core.task_names import (
    MAIL_RENEW_GMAIL_WATCH,
    MAIL_SYNC_ACCOUNT,
    MAIL_SYNC_ALL,
    SendTask,
)
from shared.sync import accounts
from shared.sync.accounts import NEEDS_REAUTH

log = logging.getLogger(__name__)

QUEUED_TTL_SECONDS = 600
WATCH_RENEWAL_SECONDS = 24 * 3600  # Google expires a watch after 7 days; renew daily


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries for mail: sync every account, and renew Gmail watches when push is on."""
    schedule: dict[str, dict[str, Any]] = {}
    if settings.sync_interval_minutes > 0:
        schedule[MAIL_SYNC_ALL] = {
            "task": MAIL_SYNC_ALL,
            "schedule": settings.sync_interval_minutes * 60.0,
            "options": {"expires": settings.sync_interval_minutes * 60.0},
        }
    if settings.gmail_pubsub_topic:
        schedule[MAIL_RENEW_GMAIL_WATCH] = {
            "task": MAIL_RENEW_GMAIL_WATCH,
            "schedule": float(WATCH_RENEWAL_SECONDS),
            "options": {"expires": 3600.0},
        }
    return schedule


def request_sync(
    r: redis.Redis,
    settings: Settings,
    send_task: SendTask,
    account_id: str,
    *,
    announce: bool = False,
    force: bool = False,
) -> bool:
    """Enqueue ``mail.sync_account`` unless one is already queued (``force`` always does)."""
    key = RedisKeys(settings.key_prefix).account_queued(account_id)
    if not r.set(key, "1", nx=True, ex=QUEUED_TTL_SECONDS) and not force:
        return False
    send_task(MAIL_SYNC_ACCOUNT, args=[account_id], kwargs={"announce": announce})
    return True


def sync_all(r: redis.Redis, settings: Settings, send_task: SendTask) -> dict[str, int]:
    """Queue a sync of every account that can sync (not uploads, not needing reauth)."""
    counts = {"queued": 0, "already_queued": 0, "skipped": 0}
    for account_id in accounts.all_account_ids(r, settings):
        account = accounts.get_account(r, settings, account_id)
        if account is None or account.provider == "mbox" or account.state == NEEDS_REAUTH:
            counts["skipped"] += 1
            continue
        if request_sync(r, settings, send_task, account_id):
            counts["queued"] += 1
        else:
            counts["already_queued"] += 1
    record_lag(r, settings)
    return counts


def record_lag(r: redis.Redis, settings: Settings, now: float | None = None) -> dict[str, float]:
    """Set ``mail_sync_lag_seconds`` per provider: the stalest account's time since success."""
    now = time.time() if now is None else now
    worst: dict[str, float] = {}
    for account_id in accounts.all_account_ids(r, settings):
        account = accounts.get_account(r, settings, account_id)
        if account is None or account.provider == "mbox":
            continue
        lag = max(0.0, now - (account.last_success_at or account.created_at))
        worst[account.provider] = max(worst.get(account.provider, 0.0), lag)
    for provider, lag in worst.items():
        metrics.MAIL_SYNC_LAG.labels(provider=provider).set(lag)
    return worst

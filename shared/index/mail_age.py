"""Retention by the age of the mail: what a person expects "90 days" to mean.

Index retention (``lifecycle.retention``) deletes whole indices some time
after their rollover, which is about storage: a year of backfill lands in the
write index and would live ~120 days and then vanish at once, while the
account still said "synced". The rule people see is this module's instead:
mail whose ``received_at`` is older than ``MAILCHAT_RETENTION_DAYS`` is not
kept (0 keeps everything):

- sync and import skip it, and say how many they skipped (``writer``);
- Gmail's backfill does not even fetch it (``providers/gmail``);
- a question's window cannot reach further back than what is kept, and the
  answer says so (``search``);
- what ages out after it was indexed is deleted daily (``purge_expired_mail``,
  run by the ``index.retention`` task).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from shared.core.settings import Settings

log = logging.getLogger(__name__)

PURGE_TIMEOUT_SECONDS = 600


def cutoff(settings: Settings, now: datetime | None = None) -> datetime | None:
    """The oldest ``received_at`` still kept, or None when everything is kept."""
    if settings.retention_days <= 0:
        return None
    return (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)


def is_expired(received_at: datetime, limit: datetime | None) -> bool:
    """Whether mail received at ``received_at`` falls outside what is kept."""
    if limit is None:
        return False
    when = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    return when < limit


def cap_window(settings: Settings, window_days: int) -> tuple[int, int | None]:
    """The window a search may use, and the retention it was capped to (None if not capped)."""
    kept = settings.retention_days
    if kept > 0 and window_days > kept:
        return kept, kept
    return window_days, None


def backfill_days(settings: Settings) -> int:
    """How far back a full sync reaches: the backfill setting, never beyond what is kept."""
    wanted, kept = settings.gmail_backfill_days, settings.retention_days
    if kept <= 0:
        return wanted
    return kept if wanted <= 0 else min(wanted, kept)


def purge_expired_mail(es: Elasticsearch, settings: Settings, now: datetime | None = None) -> int:
    """Delete every email older than the retention, in every index; returns how many."""
    limit = cutoff(settings, now)
    if limit is None:
        return 0
    response = es.options(request_timeout=PURGE_TIMEOUT_SECONDS, max_retries=0).delete_by_query(
        index=f"{settings.index_alias},{settings.index_alias}-*",
        query={"range": {"received_at": {"lt": limit.isoformat()}}},
        conflicts="proceed",
        refresh=True,
        allow_no_indices=True,
        ignore_unavailable=True,
    )
    deleted = int(response.get("deleted", 0))
    log.info("deleted %d emails received before %s (retention)", deleted, limit.isoformat())
    return deleted

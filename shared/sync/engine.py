"""The sync engine: provider -> index -> cursor, for every kind of account.

For each batch a provider yields, the engine indexes the messages through
``importer.import_messages``, and in its ``on_batch_indexed`` callback (once
Elasticsearch acknowledged every document of the batch, none rejected)
applies the batch's deletions and label changes and commits the provider's
bookkeeping and cursor in one Redis transaction. Nothing a failed batch
covered can be skipped: a rejected document, a crash or a lost lock leaves
the cursor where it was, and the next run fetches the same batch again
(deterministic document ids make that harmless).

One run per account at a time (a Redis lock, kept alive while the run
lasts); a sync asked for meanwhile sets a flag and the running one goes
round again. Progress and results go to the person's notification log
through ``notify`` (the worker passes one that enqueues ``delivery.deliver``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.core import metrics
from shared.core.events import EventType
from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.core.settings import Settings
from shared.index.writer import ImportStats, document_id, import_messages
from shared.sync import accounts
from shared.sync.accounts import ERROR, IDLE, NEEDS_REAUTH, SYNCING, Account
from shared.sync.connect import SyncOptions as SyncOptions  # re-exported for callers
from shared.sync.connect import build_provider as build_provider
from shared.sync.connect import gmail_client as gmail_client
from shared.sync.documents import delete_account, delete_documents, update_labels
from shared.sync.gmail_quota import QuotaExhausted
from shared.sync.providers.base import (
    BatchNotIndexed,
    NeedsReauth,
    Provider,
    ProviderError,
    SyncBatch,
)
from shared.sync.reports import done_data

log = logging.getLogger(__name__)

Notify = Callable[[str, str, dict[str, Any], str], None]  # (user id, type, data, dedup key)
LOCK_TTL_SECONDS = 120  # renewed every 40 s while a run lives; a dead worker frees it quickly
MAX_RERUNS = 3
PROGRESS_EVERY_SECONDS = 0.5  # sync.progress at most twice a second (issue 11)


@dataclass
class SyncResult:
    account_id: str
    provider: str
    outcome: str  # ok, needs_reauth, error, locked, skipped, missing, interrupted, paused
    new: int = 0
    deleted: int = 0
    updated: int = 0
    skipped: int = 0  # older than the retention: not kept
    partly_read: int = 0  # malformed or truncated: indexed with what could be read
    message: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- the run -----------------------------------------------------------------------------


class AccountGone(Exception):
    """The account was deleted (or asked to be) while its sync ran: stop writing."""


class _Run:
    """One pass over a provider's batches for one account."""

    def __init__(
        self,
        r: redis.Redis,
        es: Elasticsearch,
        settings: Settings,
        account: Account,
        run_id: str,
        notify: Notify | None,
        lock: RedisLock,
        lost: Any,
    ) -> None:
        self.redis, self.es, self.settings, self.account = r, es, settings, account
        self.keys = RedisKeys(settings.key_prefix)
        self.run_id, self.notify, self.lock, self.lost = run_id, notify, lock, lost
        self.result = SyncResult(account.id, account.provider, "ok")
        self.done = 0
        self.total: int | None = None
        self.progress_sent = 0
        self.last_progress = 0.0
        self.started = time.monotonic()
        self.owners = accounts.owner_addresses(r, settings, account.user_id)  # for from_me

    def apply(self, batch: SyncBatch) -> None:
        removal = accounts.removal_state(self.redis, self.settings, self.account.id)
        if removal is not None:
            raise AccountGone(removal)
        if self.lost.is_set():
            raise ProviderError("the account's sync lock was lost; stopping before writing more")
        if batch.note:
            self.result.notes.append(batch.note)
            log.info("account %s: %s", self.account.id, batch.note)
        if not batch.messages:
            self._commit(batch)
            return
        messages = [dataclasses.replace(m, cursor=i) for i, m in enumerate(batch.messages)]
        last = len(messages) - 1
        committed: list[bool] = []

        def on_batch_indexed(stats: ImportStats) -> None:
            if stats.failed:
                raise BatchNotIndexed(
                    f"Elasticsearch rejected {stats.failed} of {stats.seen} messages: "
                    f"{'; '.join(stats.errors[:2])[:300]}"
                )
            if stats.cursor == last:  # every document of the batch is acknowledged
                self._commit(batch)
                committed.append(True)

        stats = import_messages(
            self.es,
            self.settings,
            self.account.user_id,
            messages,
            source=self.account.provider,
            on_batch_indexed=on_batch_indexed,
            owner_addresses=self.owners,
        )
        if not committed:
            raise BatchNotIndexed("the batch was not fully acknowledged")
        kept = len(messages) - stats.skipped_expired
        self.result.new += kept
        self.result.skipped += stats.skipped_expired
        self.result.partly_read += stats.with_warnings
        self.done += len(messages)
        metrics.MAIL_SYNC_MESSAGES.labels(provider=self.account.provider).inc(kept)
        if batch.total_hint is not None:
            self.total = max(batch.total_hint, self.done)
        self._progress()

    def _commit(self, batch: SyncBatch) -> None:
        if self.lost.is_set():  # another run may own the account now: leave its cursor alone
            raise ProviderError("the account's sync lock was lost; the batch is not committed")
        owner = self.account.user_id
        if batch.deletions:
            ids = [document_id(owner, key) for key in dict.fromkeys(batch.deletions)]
            delete_documents(self.es, self.settings, ids)
            self.result.deleted += len(ids)
        if batch.label_updates:
            updates = {document_id(owner, k): v for k, v in batch.label_updates.items()}
            self.result.updated += update_labels(self.es, self.settings, updates)
        pipe = self.redis.pipeline(transaction=True)
        members_key = self.keys.account_messages(self.account.id)
        to_set: dict[Any, Any] = {k: v for k, v in batch.members.items() if v is not None}
        to_drop = [k for k, v in batch.members.items() if v is None]
        if to_set:
            pipe.hset(members_key, mapping=to_set)
        if to_drop:
            pipe.hdel(members_key, *to_drop)
        for op in batch.redis_ops:
            op(pipe)
        cursor_key = self.keys.account_cursor(self.account.id)
        to_store: dict[Any, Any] = {k: v for k, v in batch.cursor.items() if v is not None}
        if to_store:
            pipe.hset(cursor_key, mapping=to_store)
        cleared = [k for k, v in batch.cursor.items() if v is None]
        if cleared:
            pipe.hdel(cursor_key, *cleared)
        pipe.execute()
        self.lock.extend()

    def _progress(self) -> None:
        now = time.monotonic()
        if self.progress_sent and now - self.last_progress < PROGRESS_EVERY_SECONDS:
            return
        self.progress_sent += 1
        self.last_progress = now
        total = self.total
        text = f"synced {self.done:,} of {total:,}" if total else f"synced {self.done:,}"
        rate = self.done / max(0.001, now - self.started)
        data = {
            "account_id": self.account.id,
            "provider": self.account.provider,
            "done": self.done,
            "total": total,
            "rate": round(rate, 1),  # emails per second since the run started
            "eta_seconds": round((total - self.done) / rate) if total and rate else None,
            "text": text,
        }
        accounts.update(self.redis, self.settings, self.account.id, progress=data)
        self.send(EventType.SYNC_PROGRESS, data, f"progress:{self.progress_sent}")

    def send(self, event_type: str, data: dict[str, Any], what: str) -> None:
        if self.notify is None:
            log.info("account %s %s: %s", self.account.id, event_type, data.get("text", data))
            return
        try:
            self.notify(
                self.account.user_id,
                event_type,
                data,
                f"sync:{self.account.id}:{self.run_id}:{what}",
            )
        except Exception:  # a notification must never fail the sync it reports on
            log.exception("account %s: could not enqueue %s", self.account.id, event_type)


def sync_account(
    r: redis.Redis,
    es: Elasticsearch,
    settings: Settings,
    account_id: str,
    *,
    run_id: str,
    notify: Notify | None = None,
    options: SyncOptions | None = None,
) -> SyncResult:
    """Sync one account now, unless another run holds its lock (then that run goes again)."""
    options = options or SyncOptions()
    keys = RedisKeys(settings.key_prefix)
    account = accounts.get_account(r, settings, account_id)
    if account is None:
        return SyncResult(account_id, "", "missing", message="no such account")
    if account.state == NEEDS_REAUTH:
        return SyncResult(account_id, account.provider, "skipped", message=account.last_error or "")
    if account.paused:
        return SyncResult(account_id, account.provider, "paused", message="paused by its owner")
    lock = RedisLock(r, keys.account_lock(account_id), LOCK_TTL_SECONDS, owner=f"sync:{run_id}")
    if not lock.acquire():
        # The holder may be a deletion: a rerun flag would outlive the account it names.
        if accounts.removal_state(r, settings, account_id) is None:
            r.set(keys.account_rerun(account_id), "1", ex=settings.sync_time_limit_seconds)
        metrics.MAIL_SYNC_RUNS.labels(provider=account.provider, outcome="locked").inc()
        return SyncResult(account_id, account.provider, "locked", message="a sync is running")
    try:
        with lock.kept_alive() as lost:
            removal = accounts.removal_state(r, settings, account_id)
            if removal == "gone":  # deleted between our read and the lock (delete-my-data)
                return SyncResult(account_id, account.provider, "missing", message="deleted")
            if removal == "deleting":
                delete_account(r, es, settings, account_id)
                return SyncResult(account_id, account.provider, "deleted")
            for round_number in range(MAX_RERUNS):
                r.delete(keys.account_queued(account_id), keys.account_rerun(account_id))
                this_run = run_id if round_number == 0 else f"{run_id}-{round_number}"
                try:
                    result = _run_once(
                        r, es, settings, account, this_run, notify, options, lock, lost
                    )
                except AccountGone as gone:
                    if str(gone) == "deleting":  # DELETE came while we held the lock
                        delete_account(r, es, settings, account_id)
                    return SyncResult(account_id, account.provider, "deleted")
                if result.outcome != "ok" or not r.exists(keys.account_rerun(account_id)):
                    return result
                account = accounts.get_account(r, settings, account_id) or account
            return result
    finally:
        lock.release()


def _run_once(
    r: redis.Redis,
    es: Elasticsearch,
    settings: Settings,
    account: Account,
    run_id: str,
    notify: Notify | None,
    options: SyncOptions,
    lock: RedisLock,
    lost: Any,
) -> SyncResult:
    started = time.time()
    accounts.update(r, settings, account.id, state=SYNCING, last_started_at=started, progress=None)
    run = _Run(r, es, settings, account, run_id, notify, lock, lost)
    provider: Provider | None = None
    try:
        provider = build_provider(r, settings, account, options)
        for batch in provider.batches():
            run.apply(batch)
            if options.should_stop is not None and options.should_stop():
                return _interrupted(r, settings, run, "interrupted")
            if accounts.is_paused(r, settings, account.id):
                return _interrupted(r, settings, run, "paused")
    except AccountGone:
        raise
    except NeedsReauth as exc:
        return _failed(r, settings, run, NEEDS_REAUTH, str(exc), "needs_reauth")
    except QuotaExhausted as exc:
        _failed(r, settings, run, ERROR, str(exc), "error")
        raise
    except Exception as exc:
        _failed(r, settings, run, ERROR, _describe(exc), "error")
        raise
    finally:
        if provider is not None:
            provider.close()
    result = run.result
    if result.new or result.deleted or result.updated:
        # sync.done says "you can ask about N emails now": make that true on any engine
        # (noida-db ignores refresh_interval and only shows new documents after a refresh).
        es.indices.refresh(index=settings.index_alias)
    finished = time.time()
    accounts.update(
        r,
        settings,
        account.id,
        state=IDLE,
        last_success_at=finished,
        last_error=None,
        last_error_at=None,
        progress=None,
        last_run={
            "new": result.new,
            "deleted": result.deleted,
            "updated": result.updated,
            "skipped": result.skipped,
            "seconds": round(finished - started, 3),
            "notes": result.notes[-3:],
        },
    )
    metrics.MAIL_SYNC_RUNS.labels(provider=account.provider, outcome="ok").inc()
    changed = result.new or result.deleted or result.updated or result.skipped
    if options.announce or changed:
        count = accounts.message_count(r, settings, account.id)
        data = done_data(account.id, account.provider, result, count, settings.retention_days)
        run.send(EventType.SYNC_DONE, data, "done")
    log.info(
        "account %s synced: %d new, %d deleted, %d relabelled, %d older than retention",
        account.id,
        result.new,
        result.deleted,
        result.updated,
        result.skipped,
    )
    return result


def _interrupted(r: redis.Redis, settings: Settings, run: _Run, outcome: str) -> SyncResult:
    """The worker is stopping (``interrupted``) or the person paused the account (``paused``):
    every batch so far has landed and moved the cursor, so a later run goes on from there."""
    accounts.update(r, settings, run.account.id, state=IDLE, progress=None)
    log.info("account %s: sync %s after %d messages", run.account.id, outcome, run.done)
    run.result.outcome = outcome
    run.result.message = (
        "paused by its owner" if outcome == "paused" else "the worker stopped; the sync goes on"
    )
    return run.result


def _describe(exc: BaseException) -> str:
    """A message for the account's status: the error's type and text, never a credential."""
    text = str(exc).strip() or type(exc).__name__
    return (
        f"{type(exc).__name__}: {text}"[:300] if not isinstance(exc, ProviderError) else text[:300]
    )


def _failed(
    r: redis.Redis, settings: Settings, run: _Run, state: str, message: str, outcome: str
) -> SyncResult:
    account = run.account
    log.warning("account %s sync failed (%s): %s", account.id, outcome, message)
    accounts.update(
        r,
        settings,
        account.id,
        state=state,
        last_error=message,
        last_error_at=time.time(),
        progress=None,
    )
    metrics.MAIL_SYNC_RUNS.labels(provider=account.provider, outcome=outcome).inc()
    run.result.outcome = outcome
    run.result.message = message
    run.send(
        EventType.SYNC_ERROR, {"account_id": account.id, "state": state, "text": message}, "error"
    )
    return run.result

"""Documents the sync engine deletes and relabels, and deleting an account's mail.

A document can live in any generation behind the write alias (after a
rollover, in an older index), so deletes and updates first find the
concrete index holding each id and address it there: writing through the
alias would create a second copy in the write index instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis
from elasticsearch import Elasticsearch, helpers

from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.core.settings import Settings
from shared.index import writer as importer
from shared.index.derived import unread
from shared.index.lifecycle.placement import locate
from shared.index.writer import document_id
from shared.sync import accounts
from shared.sync.providers.base import BatchNotIndexed

log = logging.getLogger(__name__)

DELETE_CHUNK = 1000  # message keys checked and deleted per round


def delete_documents(es: Elasticsearch, settings: Settings, ids: list[str]) -> int:
    """Delete documents by id wherever they live (``importer.delete_documents``, which
    finds the concrete index holding each); missing ones are already gone."""
    return int(importer.delete_documents(es, settings, ids) or 0)


def update_labels(es: Elasticsearch, settings: Settings, labels: dict[str, list[str]]) -> int:
    """Set the labels of existing documents (and ``unread``, which follows them: a message
    read in Gmail is no longer unread here); a document not indexed (yet) is skipped."""
    where = locate(es, settings, labels)  # realtime: finds a document indexed a moment ago
    actions = [
        {
            "_op_type": "update",
            "_index": indices[0],
            "_id": i,
            "doc": {"labels": labels[i], "unread": unread(labels[i])},
        }
        for i, indices in where.items()
    ]
    if not actions:
        return 0
    ok, errors = helpers.bulk(es, actions, raise_on_error=False)
    items = errors if isinstance(errors, list) else []
    failed = [e for e in items if e.get("update", {}).get("status") != 404]
    if failed:
        raise BatchNotIndexed(f"{len(failed)} label updates failed: {str(failed[0])[:200]}")
    return int(ok)


def delete_account(r: redis.Redis, es: Elasticsearch, settings: Settings, account_id: str) -> int:
    """Remove an account, every Redis key it has, and its mail (unless another of the
    user's accounts holds the same message). Returns the number of documents deleted."""
    keys = RedisKeys(settings.key_prefix)
    account = accounts.get_account(r, settings, account_id)
    if account is None:
        return 0
    others = [
        keys.account_messages(a)
        for a in map(str, r.smembers(keys.user_accounts(account.user_id)))
        if a != account_id
    ]
    members_key = keys.account_messages(account_id)
    deleted = 0
    batch: list[str] = []

    def flush() -> int:
        if not batch:
            return 0
        keep: set[str] = set()
        for other in others:
            present = r.hmget(other, batch)
            keep.update(k for k, v in zip(batch, present, strict=True) if v is not None)
        ids = [document_id(account.user_id, k) for k in batch if k not in keep]
        count = delete_documents(es, settings, ids) if ids else 0
        batch.clear()
        return count

    for key, _ in r.hscan_iter(members_key):
        batch.append(key)
        if len(batch) >= DELETE_CHUNK:
            deleted += flush()
    deleted += flush()
    pipe = r.pipeline(transaction=False)
    for key in r.scan_iter(match=keys.account_prefix(account_id) + "*", count=500):
        pipe.delete(key)
    pipe.delete(keys.account(account_id))
    pipe.srem(keys.user_accounts(account.user_id), account_id)
    pipe.srem(keys.all_accounts(), account_id)
    if account.provider == "gmail":
        pipe.srem(keys.gmail_address_accounts(account.address), account_id)
    pipe.execute()
    if account.provider == "mbox" and account.config.get("path"):
        Path(account.config["path"]).unlink(missing_ok=True)
    log.info("account %s deleted with %d documents", account_id, deleted)
    return deleted


def remove_account(
    r: redis.Redis, es: Elasticsearch, settings: Settings, account_id: str
) -> int | None:
    """Delete the account now under its lock (the number of documents deleted), or, when a
    sync holds the lock, ask that sync to delete it when it stops (``None``)."""
    lock = RedisLock(
        r, RedisKeys(settings.key_prefix).account_lock(account_id), 600, owner="delete"
    )
    if not lock.acquire():
        accounts.request_deletion(r, settings, account_id)
        return None
    try:
        return delete_account(r, es, settings, account_id)
    finally:
        lock.release()


def delete_user_accounts(
    r: redis.Redis, es: Elasticsearch, settings: Settings, user_id: str
) -> int:
    """Delete-my-data: every account of a user and their mail."""
    keys = RedisKeys(settings.key_prefix)
    ids = sorted(str(a) for a in r.smembers(keys.user_accounts(user_id)))
    return sum([delete_account(r, es, settings, a) for a in ids])

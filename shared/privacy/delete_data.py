"""Delete my data: everything Mailchat holds about one person, removed and counted.

``delete_user_data`` removes, in this order (so a failure half-way leaves the
person able to retry with the same token, and no sync re-adds mail behind
the deletion):

0. **running syncs are stopped first**: every account is marked ``deleting``
   (the tombstone a sync checks before each batch), then each account's sync
   lock is taken, waiting up to ``ACCOUNT_LOCK_WAIT_SECONDS`` for a batch in
   flight to be indexed and committed. Without this, a batch in flight would
   be indexed after the documents were deleted and its commit would recreate
   the account's keys. A sync that does not stop in time answers
   ``SyncStillRunning`` (a 503: the tombstone stays, the sync deletes the
   account itself at its next batch, and the retry finishes);
1. **mail accounts** (under those locks): every id in ``user-accounts:<user>``: the account hash,
   every ``account:<id>:*`` key (cursors, message maps, IMAP uid maps, locks,
   quota counters, push flags, ...), and its entries in the global sets
   (``accounts``, ``gmail-address:<address>``);
2. **email documents**: ``_delete_by_query`` on ``owner_id`` over the alias
   *and* the ``<alias>-*`` pattern, so every index, even one that fell off the
   alias, is covered;
3. **conversations**: every id in ``user-conversations:<user>``: its owner key,
   active-question key, event stream and every ``<stream>:*`` key (epoch,
   dedup entries);
4. **pending deliveries** in the outbox addressed to the user or one of their
   conversations (so the sweep cannot re-send one and recreate a log), then
   the user's **notification stream** (and its ``:*`` keys), import lock,
   conversation and account index keys, and dead-lettered deliveries that
   name the user or one of their conversations;
5. **access tokens**: the token version is bumped, so every token issued so
   far stops working. The login itself (``user:<id>``: email, password hash,
   token version; ``user-email:<email>``) is kept unless ``delete_user`` is
   set, in which case it goes too (and with it every token).

**Contract for every new per-user Redis key:** it must be reachable from
these indexes, or it survives a deletion: the user id itself (``user:<id>``,
``user-conversations:<id>``, ``user-accounts:<id>``, ``events:user:<id>``,
``lock:import:<id>``, ``session:<id>:*``, ``user-sockets:<id>``, ``rate*<id>*``), a conversation id listed in ``user-conversations``
(keys named by the conversation id, or below its stream key), or an account
id listed in ``user-accounts`` (``account:<id>`` and ``account:<id>:*``).
``tests/test_userdata.py`` scans every key and value for the user's id.

Not covered: single-use stream tickets (``chat-ticket:*``, 60 s) expire on
their own; Celery messages already queued for the user finish against data
that is gone (a sync finds no account, an answer finds no mail).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.core.logs import user_hash
from shared.core.settings import Settings
from shared.identity.sessions import end_sessions
from shared.identity.users import revoke_tokens
from shared.realtime.delivery import purge_outbox
from shared.sync import accounts
from shared.sync.documents import delete_user_accounts

log = logging.getLogger(__name__)

DELETE_BY_QUERY_TIMEOUT_SECONDS = 600
DELETE_BY_QUERY_ATTEMPTS = 5
SCAN_COUNT = 500
ACCOUNT_LOCK_WAIT_SECONDS = 30.0  # a sync batch in flight finishes well within this
ACCOUNT_LOCK_TTL_SECONDS = 600.0  # longer than deleting one account's mail takes
LOCK_POLL_SECONDS = 0.1
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


@dataclass
class DeletionReport:
    """How much was removed, per kind."""

    documents: int = 0
    conversations: int = 0
    event_logs: int = 0
    accounts: int = 0
    dead_letters: int = 0
    pending_deliveries: int = 0
    redis_keys: int = 0
    tokens_revoked: bool = False
    user_deleted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SyncStillRunning(RuntimeError):
    """A sync of the person's account did not stop in time; retrying the deletion finishes it."""


@contextmanager
def syncs_stopped(
    r: redis.Redis, settings: Settings, user_id: str, wait_seconds: float
) -> Iterator[list[str]]:
    """Hold the sync lock of every account of ``user_id`` (after asking each sync to stop).

    Yields the account ids. The ``deleting`` flag makes a running sync stop
    before its next batch (and delete the account itself); taking the lock
    waits for that, so nothing it indexes or commits lands after the deletion.
    """
    keys = RedisKeys(settings.key_prefix)
    ids = sorted(str(a) for a in r.smembers(keys.user_accounts(user_id)))
    for account_id in ids:
        accounts.request_deletion(r, settings, account_id)
    deadline = time.monotonic() + wait_seconds
    with ExitStack() as held:
        for account_id in ids:
            lock = RedisLock(
                r, keys.account_lock(account_id), ACCOUNT_LOCK_TTL_SECONDS, owner="delete-data"
            )
            while not lock.acquire():
                if time.monotonic() >= deadline:
                    raise SyncStillRunning(
                        f"the sync of account {account_id} did not stop within {wait_seconds:.0f} s"
                    )
                time.sleep(LOCK_POLL_SECONDS)
            held.callback(_release_quietly, r, lock)
        yield ids


def _release_quietly(r: redis.Redis, lock: RedisLock) -> None:
    """Release a lock whose key the account deletion may already have removed."""
    if r.exists(lock.key):
        lock.release()


def glob_escape(value: str) -> str:
    """``value`` as a literal inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", value)


def delete_user_data(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    user_id: str,
    *,
    delete_user: bool = False,
    lock_wait_seconds: float = ACCOUNT_LOCK_WAIT_SECONDS,
) -> DeletionReport:
    """Remove the user's mail, conversations, logs, accounts and tokens; idempotent.

    Raises ``SyncStillRunning`` if a sync of one of the accounts does not stop
    within ``lock_wait_seconds`` (nothing is revoked then, so the same token retries).
    """
    if not user_id:
        raise ValueError("delete_user_data needs a user id")
    keys = RedisKeys(settings.key_prefix)
    report = DeletionReport()
    conversation_ids = [str(c) for c in r.zrange(keys.user_conversations(user_id), 0, -1)]
    report.accounts = int(r.scard(keys.user_accounts(user_id)))
    with syncs_stopped(r, settings, user_id, lock_wait_seconds):
        # Accounts go the same way as DELETE /api/accounts/<id>: keys, mail, uploaded files.
        report.documents = delete_user_accounts(r, es, settings, user_id)
        report.documents += delete_documents_of(es, settings, user_id)
    # No sync of theirs runs any more: what is still pending would only recreate their logs.
    report.pending_deliveries = purge_outbox(r, settings, {user_id, *conversation_ids})
    for conversation_id in conversation_ids:
        report.redis_keys += _delete_conversation(r, keys, conversation_id, report)
    report.conversations = len(conversation_ids)
    report.redis_keys += _delete_stream(r, keys.user_events(user_id), report)
    report.redis_keys += int(
        r.delete(
            keys.user_conversations(user_id),
            keys.user_accounts(user_id),
            keys.import_lock(user_id),
            keys.user_sockets(user_id),
        )
    )
    report.dead_letters = _delete_dead_letters(r, keys, {user_id, *conversation_ids})
    # Rate-limit windows name the user too (they expire on their own, but go now).
    report.redis_keys += _delete_matching(
        r, f"{glob_escape(keys.rate_limit_prefix())}*{glob_escape(user_id)}*"
    )
    report.redis_keys += _delete_matching(r, glob_escape(keys.client_messages_of(user_id)) + "*")
    # Login sessions (refresh-token families) are named by the user id.
    report.redis_keys += end_sessions(r, settings, user_id)
    if delete_user:
        email = r.hget(keys.user(user_id), "email")
        doomed = [keys.user(user_id)] + ([keys.user_by_email(str(email))] if email else [])
        report.redis_keys += int(r.delete(*doomed))
        report.user_deleted = True
        report.tokens_revoked = True
    else:
        report.tokens_revoked = revoke_tokens(r, settings, user_id) > 0
    log.info("deleted the data of %s: %s", user_hash(user_id), report.as_dict())
    return report


def delete_documents_of(es: Elasticsearch, settings: Settings, user_id: str) -> int:
    """Delete every email document owned by ``user_id`` in every index; returns the count."""
    targets = f"{settings.index_alias},{settings.index_alias}-*"
    client = es.options(request_timeout=DELETE_BY_QUERY_TIMEOUT_SECONDS, max_retries=0)
    deleted = 0
    for _attempt in range(DELETE_BY_QUERY_ATTEMPTS):
        response = client.delete_by_query(
            index=targets,
            query={"term": {"owner_id": user_id}},
            conflicts="proceed",
            refresh=True,
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        deleted += int(response.get("deleted", 0))
        # A document updated while the query ran is a version conflict: go round again.
        if not response.get("version_conflicts") and not response.get("failures"):
            break
    left = es.count(index=targets, query={"term": {"owner_id": user_id}}, allow_no_indices=True)
    if left["count"]:
        raise RuntimeError(f"{left['count']} documents of {user_id} survived deletion; retry")
    return deleted


def _delete_conversation(
    r: redis.Redis, keys: RedisKeys, conversation_id: str, report: DeletionReport
) -> int:
    removed = int(r.delete(keys.conversation_owner(conversation_id)))
    removed += int(r.delete(keys.active_question(conversation_id)))
    # Its unanswered questions leave the overdue-answer sweep's set, which names them.
    pattern = keys.open_question_member(glob_escape(conversation_id), "*")
    members = [str(m) for m, _ in r.zscan_iter(keys.open_questions(), match=pattern)]
    if members:
        r.zrem(keys.open_questions(), *members)
    return removed + _delete_stream(r, keys.conversation_events(conversation_id), report)


def _delete_stream(r: redis.Redis, stream: str, report: DeletionReport) -> int:
    """A stream and every ``<stream>:*`` key beside it (epoch, dedup entries)."""
    removed = int(r.delete(stream))
    report.event_logs += removed
    return removed + _delete_matching(r, glob_escape(stream) + ":*")


def _delete_matching(r: redis.Redis, pattern: str) -> int:
    removed = 0
    batch: list[str] = []
    for key in r.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(str(key))
        if len(batch) >= SCAN_COUNT:
            removed += int(r.delete(*batch))
            batch = []
    if batch:
        removed += int(r.delete(*batch))
    return removed


def _delete_dead_letters(r: redis.Redis, keys: RedisKeys, ids: set[str]) -> int:
    """Dead-lettered deliveries carry their target id and event data: drop the user's."""
    stream = keys.dead_letters()
    doomed: list[str] = []
    last = "-"
    while True:
        entries = r.xrange(stream, min=last, count=SCAN_COUNT) or []
        fresh = [(str(entry_id), fields or {}) for entry_id, fields in entries if entry_id != last]
        if not fresh:
            break
        for entry_id, fields in fresh:
            # Ids are server-made ("u_<hex>", "c_<hex>"): a substring match cannot misfire.
            payload = str(fields.get("payload", ""))
            if any(i in payload for i in ids):
                doomed.append(entry_id)
        last = fresh[-1][0]
    if doomed:
        r.xdel(stream, *doomed)
    return len(doomed)

"""Gmail over its API: a full backfill, then incremental sync from ``history.list``.

Full sync records ``getProfile``'s historyId *before* listing, so anything
that changes while the backfill runs is picked up by the incremental pass
that follows. Backfill progress (page token, position in the page) is a
cursor too: a crash resumes the listing instead of starting over.

Incremental sync reads every ``history.list`` page from the stored
historyId, nets the records per message (added then deleted is just a
delete; the last label set wins), and stores the new historyId only with
the last batch, after everything before it was applied. A 404 means Google
no longer has that history: the provider starts a full resync by itself and
afterwards sweeps out the documents of messages it no longer lists.

Documents are keyed by the Gmail message id, so a deletion or a label change
addresses its document without fetching the message.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from googleapiclient.errors import HttpError

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.index.mail_age import backfill_days
from shared.index.writer import ProviderMessage
from shared.sync.providers.base import GMAIL_SYSTEM_LABELS, SyncBatch, gmail_message_key
from shared.sync.providers.gmail_api import MAX_BATCH, GmailApi

log = logging.getLogger(__name__)

CURSOR_FIELD = "gmail"
HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
LIST_PAGE_SIZE = 500
HIDDEN = {"SPAM", "TRASH"}  # mail there is not the person's mail any more: not indexed


class HistoryExpired(Exception):
    """history.list answered 404: the stored historyId is too old."""


def label_names(label_ids: list[str], names: dict[str, str]) -> list[str]:
    """Gmail label ids as the names Takeout uses (``Opened`` when not ``UNREAD``)."""
    out = [GMAIL_SYSTEM_LABELS.get(i) or names.get(i) or i for i in label_ids]
    if "UNREAD" not in label_ids:
        out.append("Opened")
    return sorted(set(out))


def decode_raw(value: str) -> bytes:
    """The ``raw`` field: URL-safe base64, padding optional."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class GmailProvider:
    """Sync one Gmail account from its stored cursor."""

    name = "gmail"

    def __init__(
        self,
        api: GmailApi,
        r: redis.Redis,
        settings: Settings,
        account_id: str,
        cursor: dict[str, str],
    ) -> None:
        self.api = api
        self.redis = r
        self.settings = settings
        self.keys = RedisKeys(settings.key_prefix)
        self.account_id = account_id
        raw = cursor.get(CURSOR_FIELD)
        self.state: dict[str, Any] = json.loads(raw) if raw else {}
        self.chunk = max(1, min(MAX_BATCH, settings.sync_batch_size))
        self._names: dict[str, str] | None = None
        self.profile: dict[str, Any] = {}

    def close(self) -> None:
        """Nothing to release: the HTTP client holds no long-lived connection."""

    # -- the run -------------------------------------------------------------------------

    def batches(self) -> Iterator[SyncBatch]:
        state = self.state
        if "history_id" in state and "full" not in state:
            try:
                yield from self._incremental(str(state["history_id"]))
                return
            except HistoryExpired:
                log.warning("account %s: Gmail history expired, full resync", self.account_id)
                state = {"full": {"history_id": self._profile_history_id(), "sweep": True}}
                yield SyncBatch(
                    cursor={CURSOR_FIELD: json.dumps(state)},
                    note="Gmail history expired: full resync",
                )
        elif "full" not in state:
            state = {"full": {"history_id": self._profile_history_id()}}
            yield SyncBatch(cursor={CURSOR_FIELD: json.dumps(state)}, note="full sync")
        full = state["full"]
        yield from self._full(full)
        # Catch up with everything that changed while the backfill ran.
        try:
            yield from self._incremental(str(full["history_id"]))
        except HistoryExpired:
            log.warning("account %s: history expired right after a backfill", self.account_id)

    def _profile_history_id(self) -> str:
        self.profile = self.api.call("users.getProfile", self.api.users.getProfile(userId="me"))
        return str(self.profile["historyId"])

    def names(self) -> dict[str, str]:
        if self._names is None:
            listed = self.api.call("users.labels.list", self.api.users.labels().list(userId="me"))
            self._names = {
                item["id"]: item.get("name", item["id"]) for item in listed.get("labels", [])
            }
        return self._names

    # -- full sync -----------------------------------------------------------------------

    def _full(self, full: dict[str, Any]) -> Iterator[SyncBatch]:
        days = backfill_days(self.settings)  # never further back than what is kept
        query = f"newer_than:{days}d" if days > 0 else None
        page_token: str | None = full.get("page_token")
        skip = int(full.get("skip", 0))
        sweep = bool(full.get("sweep")) and page_token is None and skip == 0
        listed: set[str] = set()
        total: int | None = None
        while True:
            try:
                page = self._list_page(page_token, query)
            except HttpError as exc:
                if page_token is None or int(exc.resp.status) not in (400, 404):
                    raise
                log.info("account %s: stale backfill page token, listing again", self.account_id)
                page_token, skip, sweep = None, 0, False
                continue
            ids = [item["id"] for item in page.get("messages", [])]
            listed.update(ids)
            if total is None:
                total = int(page.get("resultSizeEstimate", len(ids)))
            next_token = page.get("nextPageToken")
            todo = ids[skip:]
            chunks = [todo[i : i + self.chunk] for i in range(0, len(todo), self.chunk)] or [[]]
            for number, chunk in enumerate(chunks):
                batch = self._fetch(chunk)
                batch.total_hint = total
                done = skip + sum(len(c) for c in chunks[: number + 1])
                last_of_page = number == len(chunks) - 1
                if not last_of_page:
                    position = {**full, "page_token": page_token, "skip": done}
                    batch.cursor = {CURSOR_FIELD: json.dumps({"full": position})}
                elif next_token:
                    position = {**full, "page_token": next_token, "skip": 0}
                    batch.cursor = {CURSOR_FIELD: json.dumps({"full": position})}
                else:
                    if sweep:
                        self._sweep(batch, listed)
                    batch.cursor = {CURSOR_FIELD: json.dumps({"history_id": full["history_id"]})}
                yield batch
            if not next_token:
                return
            page_token, skip = next_token, 0

    def _list_page(self, page_token: str | None, query: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"userId": "me", "maxResults": LIST_PAGE_SIZE}
        if page_token:
            params["pageToken"] = page_token
        if query:
            params["q"] = query
        return self.api.call("users.messages.list", self.api.users.messages().list(**params))

    def _sweep(self, batch: SyncBatch, listed: set[str]) -> None:
        """After a resync: drop documents of messages Google no longer lists in the window."""
        days = backfill_days(self.settings)  # never further back than what is kept
        since_ms = (
            int((datetime.now(UTC) - timedelta(days=days)).timestamp() * 1000) if days > 0 else 0
        )
        listed_keys = {gmail_message_key(i) for i in listed}
        fetched = set(batch.members)
        for key, value in self.redis.hscan_iter(self.keys.account_messages(self.account_id)):
            if key in listed_keys or key in fetched:
                continue
            try:
                received_ms = int(json.loads(value).get("d", 0))
            except (ValueError, AttributeError):
                received_ms = 0
            if received_ms >= since_ms:
                batch.deletions.append(key)
                batch.members[key] = None
        if batch.deletions:
            log.info("account %s: resync sweeps %d vanished", self.account_id, len(batch.deletions))

    # -- incremental sync ----------------------------------------------------------------

    def _history(self, start: str) -> tuple[list[dict[str, Any]], str]:
        records: list[dict[str, Any]] = []
        latest = start
        page_token: str | None = None
        while True:
            params: dict[str, Any] = {
                "userId": "me",
                "startHistoryId": start,
                "historyTypes": HISTORY_TYPES,
                "maxResults": LIST_PAGE_SIZE,
            }
            if page_token:
                params["pageToken"] = page_token
            try:
                page = self.api.call("users.history.list", self.api.users.history().list(**params))
            except HttpError as exc:
                if int(exc.resp.status) == 404:
                    raise HistoryExpired(start) from exc
                raise
            records.extend(page.get("history", []))
            latest = str(page.get("historyId", latest))
            page_token = page.get("nextPageToken")
            if not page_token:
                return records, latest

    def _incremental(self, start: str) -> Iterator[SyncBatch]:
        records, latest = self._history(start)
        fetch, deletes, labels, label_fetch = net_changes(records)
        final_cursor: dict[str, str | None] = {CURSOR_FIELD: json.dumps({"history_id": latest})}
        if label_fetch:  # label changes whose records did not carry the label set
            for i in range(0, len(label_fetch), MAX_BATCH):
                got = self.api.get_many(label_fetch[i : i + MAX_BATCH], fmt="minimal")
                for message_id, message in got.items():
                    if message is None:
                        deletes.append(message_id)
                    else:
                        labels[message_id] = list(message.get("labelIds", []))
        changes = SyncBatch()
        for message_id in deletes:
            changes.deletions.append(gmail_message_key(message_id))
            changes.members[gmail_message_key(message_id)] = None
        for message_id, label_ids in labels.items():
            if HIDDEN & set(label_ids):
                changes.deletions.append(gmail_message_key(message_id))
                changes.members[gmail_message_key(message_id)] = None
            else:
                changes.label_updates[gmail_message_key(message_id)] = label_names(
                    label_ids, self.names()
                )
        chunks = [fetch[i : i + self.chunk] for i in range(0, len(fetch), self.chunk)]
        if not chunks:
            changes.cursor = final_cursor
            if latest != start or changes.deletions or changes.label_updates:
                yield changes
            return
        if changes.deletions or changes.label_updates:
            yield changes
        for number, chunk in enumerate(chunks):
            batch = self._fetch(chunk)
            batch.total_hint = len(fetch)
            if number == len(chunks) - 1:
                batch.cursor = final_cursor
            yield batch

    # -- fetching --------------------------------------------------------------------------

    def _fetch(self, ids: list[str]) -> SyncBatch:
        """One batch request of ``messages.get format=raw`` turned into a sync batch."""
        batch = SyncBatch()
        if not ids:
            return batch
        names = self.names()
        got = self.api.get_many(ids)
        for message_id in ids:
            message = got.get(message_id)
            key = gmail_message_key(message_id)
            if message is None:  # deleted since it was listed: nothing to index
                continue
            label_ids = list(message.get("labelIds", []))
            if HIDDEN & set(label_ids):
                batch.deletions.append(key)
                batch.members[key] = None
                continue
            internal_ms = int(message.get("internalDate") or 0)
            batch.messages.append(
                ProviderMessage(
                    raw=decode_raw(message.get("raw", "")),
                    labels=tuple(label_names(label_ids, names)),
                    thread_id=message.get("threadId"),
                    fallback_date=datetime.fromtimestamp(internal_ms / 1000, UTC)
                    if internal_ms
                    else None,
                    message_key=key,
                )
            )
            batch.members[key] = json.dumps({"d": internal_ms})
        return batch


def net_changes(
    records: list[dict[str, Any]],
) -> tuple[list[str], list[str], dict[str, list[str]], list[str]]:
    """Net history records per message: (to fetch, to delete, label sets, labels to fetch).

    Records come oldest first. A message added and later deleted is only
    deleted; an added message is fetched whole (its labels come with it); a
    label change keeps the newest complete label set the records carry. A
    message taken out of Trash or Spam is fetched again, since it was not
    indexed while there.
    """
    state: dict[str, str] = {}
    labels: dict[str, list[str] | None] = {}
    for record in records:
        for item in record.get("messagesAdded", []):
            message = item.get("message", {})
            state[message["id"]] = "fetch"
            labels[message["id"]] = message.get("labelIds")
        for item in record.get("messagesDeleted", []):
            state[item.get("message", {})["id"]] = "delete"
        for kind in ("labelsAdded", "labelsRemoved"):
            for item in record.get(kind, []):
                message = item.get("message", {})
                message_id = message["id"]
                current = message.get("labelIds")
                if state.get(message_id) == "delete":
                    continue
                labels[message_id] = current
                untrashed = (
                    kind == "labelsRemoved"
                    and HIDDEN & set(item.get("labelIds", []))
                    and current is not None
                    and not HIDDEN & set(current)
                )
                if untrashed:
                    state[message_id] = "fetch"
                elif state.get(message_id) != "fetch":
                    state[message_id] = "labels"
    fetch, deletes, label_sets, label_fetch = [], [], {}, []
    for message_id, action in state.items():
        current = labels.get(message_id)
        hidden = current is not None and bool(HIDDEN & set(current))
        if action == "delete" or (action == "fetch" and hidden):
            deletes.append(message_id)
        elif action == "fetch":
            fetch.append(message_id)
        elif current is None:
            label_fetch.append(message_id)
        else:
            label_sets[message_id] = current
    return fetch, deletes, label_sets, label_fetch

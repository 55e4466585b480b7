"""Any IMAP server (and Gmail's IMAP), one folder at a time, by UID.

The cursor per folder is ``(UIDVALIDITY, last UID, HIGHESTMODSEQ)``. A run
reads UIDs above the last one in batches, each batch's cursor stored only
after it is indexed. Expunged messages are found by comparing the folder's
current UIDs with the uid map this account keeps per folder; flag changes
come from ``CHANGEDSINCE`` where the server has CONDSTORE. A changed
UIDVALIDITY re-reads the folder into a fresh uid map (keyed by the new
UIDVALIDITY), and only when that finished does the old map go, taking with
it the folder membership of messages no longer there.

Documents are keyed by X-GM-MSGID (as the Gmail API id, so Gmail over IMAP
and over the API agree) where the server offers X-GM-EXT-1, else by the
Message-ID key. So one message in two folders is one document, and the
account keeps ``message key -> {folder: labels}`` in Redis: an expunge from
one folder only deletes the document when no other folder still holds it,
and the document's labels are the union over its folders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from redis.client import Pipeline

from shared.core import metrics
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.index.writer import ProviderMessage
from shared.sync.providers.base import (
    ProviderError,
    SyncBatch,
    digest,
    gmail_message_key,
    message_key_for,
)
from shared.sync.providers.imap_net import TLS_MODES as TLS_MODES  # re-exported
from shared.sync.providers.imap_net import ImapConfig as ImapConfig
from shared.sync.providers.imap_net import close_quietly, connect, describe_failure

log = logging.getLogger(__name__)

CURSOR_PREFIX = "imap:"
FLAG_CHUNK = 1000
SKIPPED_FOLDER_FLAGS = {b"\\Noselect", b"\\NonExistent", b"\\Junk", b"\\Trash"}
GMAIL_LABELS = {
    "\\Inbox": "Inbox",
    "\\Sent": "Sent",
    "\\Important": "Important",
    "\\Starred": "Starred",
    "\\Draft": "Drafts",
    "\\Spam": "Spam",
    "\\Trash": "Trash",
}


def folder_labels(
    folder: str, folder_flags: tuple[bytes, ...], flags: tuple[bytes, ...], gm_labels: Any
) -> list[str]:
    """Labels a folder copy contributes: folder name, Gmail labels, read/starred state."""
    labels: set[str] = set()
    if b"\\All" not in folder_flags:
        labels.add("Inbox" if folder.upper() == "INBOX" else folder)
    for label in gm_labels or ():
        text = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
        labels.add(GMAIL_LABELS.get(text, text))
    if b"\\Flagged" in flags:
        labels.add("Starred")
    labels.add("Opened" if b"\\Seen" in flags else "Unread")
    return sorted(labels)


class ImapProvider:
    """Sync an IMAP account folder by folder from its stored cursors."""

    name = "imap"

    def __init__(
        self,
        r: redis.Redis,
        settings: Settings,
        account_id: str,
        config: ImapConfig,
        secret: dict[str, str],
        cursor: dict[str, str],
    ) -> None:
        self.redis = r
        self.settings = settings
        self.keys = RedisKeys(settings.key_prefix)
        self.account_id = account_id
        self.config = config
        self.secret = secret
        self.cursor = {k: json.loads(v) for k, v in cursor.items() if k.startswith(CURSOR_PREFIX)}
        self.chunk = max(1, settings.sync_batch_size)
        self.client: IMAPClient | None = None
        self.gmail = False
        self.condstore = False

    def close(self) -> None:
        if self.client is not None:
            close_quietly(self.client)
            self.client = None

    # -- the run -------------------------------------------------------------------------

    def batches(self) -> Iterator[SyncBatch]:
        client = connect(
            self.config,
            self.secret,
            self.settings.imap_timeout_seconds,
            allow_private=self.settings.imap_allow_private_hosts,
        )
        self.client = client
        try:
            capabilities = client.capabilities()
            self.gmail = b"X-GM-EXT-1" in capabilities
            if b"CONDSTORE" in capabilities:
                client.enable("CONDSTORE")
                self.condstore = True
            folders = self._folders(client)
            wanted = {CURSOR_PREFIX + digest(name) for name, _ in folders}
            for field, state in list(self.cursor.items()):
                if field not in wanted:
                    yield self._forget_folder(field, state)
            for name, flags in folders:
                yield from self._folder(client, name, flags)
        except (OSError, IMAPClientError) as exc:
            metrics.MAIL_SYNC_BACKOFFS.labels(provider="imap", reason="network").inc()
            log.warning("account %s: IMAP connection failed: %r", self.account_id, exc)
            raise ProviderError(f"IMAP connection failed: {describe_failure(exc)}") from exc

    def _folders(self, client: IMAPClient) -> list[tuple[str, tuple[bytes, ...]]]:
        listed = [(name, tuple(flags)) for flags, _delim, name in client.list_folders()]
        if self.config.folders:
            by_name = dict(listed)
            missing = [f for f in self.config.folders if f not in by_name]
            if missing:
                log.warning("account %s: folders %s do not exist", self.account_id, missing)
            return [(f, by_name[f]) for f in self.config.folders if f in by_name]
        if self.gmail:  # every message is in All Mail; labels say where else
            every = [(n, f) for n, f in listed if b"\\All" in f]
            if every:
                return every
        return [(n, f) for n, f in listed if not SKIPPED_FOLDER_FLAGS & set(f)]

    # -- one folder ----------------------------------------------------------------------

    def _folder(
        self, client: IMAPClient, name: str, flags: tuple[bytes, ...]
    ) -> Iterator[SyncBatch]:
        field = CURSOR_PREFIX + digest(name)
        info = client.select_folder(name, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        modseq = int(info[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in info else None
        stored = self.cursor.get(field)
        if stored is None or int(stored["uidvalidity"]) != uidvalidity:
            yield from self._reread(client, name, flags, field, uidvalidity, modseq, stored)
            return
        last_uid = int(stored["last_uid"])
        uid_map = self.keys.account_folder_uids(self.account_id, digest(name), uidvalidity)
        changes = self._changes(client, name, flags, uid_map, last_uid, stored.get("modseq"))
        state = {"folder": name, "uidvalidity": uidvalidity, "last_uid": last_uid, "modseq": modseq}
        if not changes.empty or modseq != stored.get("modseq"):
            changes.cursor[field] = json.dumps(state)
            yield changes
        new = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        for start in range(0, len(new), self.chunk):
            chunk = new[start : start + self.chunk]
            batch = self._fetch(client, name, flags, chunk, uid_map)
            batch.total_hint = len(new)
            state["last_uid"] = max(chunk)
            batch.cursor[field] = json.dumps(state)
            yield batch

    def _changes(
        self,
        client: IMAPClient,
        name: str,
        flags: tuple[bytes, ...],
        uid_map: str,
        last_uid: int,
        modseq: int | None,
    ) -> SyncBatch:
        """Expunges and flag changes among the UIDs already synced."""
        batch = SyncBatch()
        if last_uid <= 0:
            return batch
        known = {int(uid): str(key) for uid, key in self.redis.hgetall(uid_map).items()}
        present = set(client.search(["UID", f"1:{last_uid}"]))
        gone = [uid for uid in known if uid not in present]
        still_here = {key for uid, key in known.items() if uid in present}
        updated: dict[str, list[str] | None] = {
            known[uid]: None for uid in gone if known[uid] not in still_here
        }
        if self.condstore and modseq:
            items = ["FLAGS", *(["X-GM-LABELS"] if self.gmail else [])]
            synced = sorted(uid for uid in known if uid in present)
            # imapclient keeps only the responses for the uids asked about, so ask in
            # lists (chunked to keep command lines short) rather than as one range.
            for start in range(0, len(synced), FLAG_CHUNK):
                changed = client.fetch(
                    synced[start : start + FLAG_CHUNK],
                    items,
                    modifiers=[f"CHANGEDSINCE {int(modseq)}"],
                )
                for uid, data in changed.items():
                    updated[known[uid]] = folder_labels(
                        name, flags, tuple(data.get(b"FLAGS", ())), data.get(b"X-GM-LABELS")
                    )
        if updated:
            self._apply_membership(batch, name, updated)
        if gone:
            batch.redis_ops.append(_hdel(uid_map, [str(uid) for uid in gone]))
        return batch

    def _apply_membership(
        self, batch: SyncBatch, folder: str, updated: dict[str, list[str] | None]
    ) -> None:
        """Set (labels) or drop (None) one folder's copy of messages; update or delete docs."""
        keys = list(updated)
        current = self.redis.hmget(self.keys.account_messages(self.account_id), keys)
        for key, value in zip(keys, current, strict=True):
            members: dict[str, list[str]] = json.loads(value) if value else {}
            labels = updated[key]
            if labels is None:
                members.pop(folder, None)
            else:
                members[folder] = labels
            if members:
                batch.members[key] = json.dumps(members, sort_keys=True)
                batch.label_updates[key] = sorted(
                    {lab for labs in members.values() for lab in labs}
                )
            else:
                batch.members[key] = None
                batch.deletions.append(key)

    def _fetch(
        self,
        client: IMAPClient,
        name: str,
        flags: tuple[bytes, ...],
        uids: list[int],
        uid_map: str,
    ) -> SyncBatch:
        batch = SyncBatch()
        items = ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"]
        if self.gmail:
            items += ["X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"]
        fetched = client.fetch(uids, items)
        rows: list[tuple[int, bytes, str, list[str], str | None, datetime | None]] = []
        for uid in uids:
            data = fetched.get(uid)
            if data is None or b"BODY[]" not in data:  # expunged between SEARCH and FETCH
                continue
            raw = bytes(data[b"BODY[]"])
            if self.gmail and b"X-GM-MSGID" in data:
                key = gmail_message_key(format(int(data[b"X-GM-MSGID"]), "x"))
                thread = format(int(data[b"X-GM-THRID"]), "x") if b"X-GM-THRID" in data else None
            else:
                key, thread = message_key_for(raw), None
            labels = folder_labels(
                name, flags, tuple(data.get(b"FLAGS", ())), data.get(b"X-GM-LABELS")
            )
            when = data.get(b"INTERNALDATE")
            if isinstance(when, datetime) and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            rows.append(
                (uid, raw, key, labels, thread, when if isinstance(when, datetime) else None)
            )
        stored = self.redis.hmget(self.keys.account_messages(self.account_id), [r[2] for r in rows])
        mapping: dict[int, str] = {}
        for (uid, raw, key, labels, thread, when), value in zip(rows, stored, strict=True):
            pending = batch.members.get(key)  # the same message twice in one batch
            members: dict[str, list[str]] = json.loads(pending or value or "{}")
            members[name] = labels
            union = sorted({lab for labs in members.values() for lab in labs})
            batch.messages.append(
                ProviderMessage(
                    raw=raw,
                    labels=tuple(union),
                    thread_id=thread,
                    fallback_date=when,
                    message_key=key,
                )
            )
            batch.members[key] = json.dumps(members, sort_keys=True)
            mapping[uid] = key
        if mapping:
            batch.redis_ops.append(_hset(uid_map, mapping))
        return batch

    def _reread(
        self,
        client: IMAPClient,
        name: str,
        flags: tuple[bytes, ...],
        field: str,
        uidvalidity: int,
        modseq: int | None,
        stored: dict[str, Any] | None,
    ) -> Iterator[SyncBatch]:
        """A folder seen for the first time, or whose UIDVALIDITY changed: read it whole.

        For a new folder every batch stores its cursor. After a UIDVALIDITY
        change the cursor moves only with the last batch, which also retires
        the old generation's uid map: a crash before that re-reads the folder
        again rather than leaving copies that are no longer there.
        """
        uid_map = self.keys.account_folder_uids(self.account_id, digest(name), uidvalidity)
        uids = sorted(client.search("ALL"))
        resync = stored is not None
        if resync:
            log.info("account %s: UIDVALIDITY of %s changed, re-reading it", self.account_id, name)
        seen: set[str] = set()
        state: dict[str, Any] = {
            "folder": name,
            "uidvalidity": uidvalidity,
            "last_uid": 0,
            "modseq": modseq,
        }
        chunks = [uids[i : i + self.chunk] for i in range(0, len(uids), self.chunk)] or [[]]
        for number, chunk in enumerate(chunks):
            batch = self._fetch(client, name, flags, chunk, uid_map) if chunk else SyncBatch()
            batch.total_hint = len(uids)
            seen.update(m.message_key or "" for m in batch.messages)
            state["last_uid"] = max(chunk) if chunk else int(state["last_uid"])
            last = number == len(chunks) - 1
            if resync and last and stored is not None:
                batch.note = f"UIDVALIDITY of {name} changed: folder re-read"
                old_map = self.keys.account_folder_uids(
                    self.account_id, digest(name), int(stored["uidvalidity"])
                )
                dropped = {str(key) for key in self.redis.hvals(old_map)} - seen
                if dropped:
                    self._apply_membership(batch, name, dict.fromkeys(dropped))
                batch.redis_ops.append(_delete(old_map))
            if not resync or last:
                batch.cursor[field] = json.dumps(state)
            yield batch

    def _forget_folder(self, field: str, state: dict[str, Any]) -> SyncBatch:
        """A folder gone from the server (or from the account's list): drop its copies."""
        name = str(state.get("folder", ""))
        uid_map = self.keys.account_folder_uids(
            self.account_id, digest(name), int(state["uidvalidity"])
        )
        batch = SyncBatch(note=f"folder {name} is gone")
        keys = {str(key) for key in self.redis.hvals(uid_map)}
        if keys:
            self._apply_membership(batch, name, dict.fromkeys(keys))
        batch.redis_ops.append(_delete(uid_map))
        batch.cursor[field] = None
        return batch


def _hset(key: str, mapping: dict[int, str]) -> Callable[[Pipeline], Any]:
    fields: dict[Any, Any] = dict(mapping)
    return lambda pipe: pipe.hset(key, mapping=fields)


def _hdel(key: str, fields: list[str]) -> Callable[[Pipeline], Any]:
    return lambda pipe: pipe.hdel(key, *fields)


def _delete(key: str) -> Callable[[Pipeline], Any]:
    return lambda pipe: pipe.delete(key)

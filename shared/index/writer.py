"""Turn raw messages into email documents and bulk-index them.

Every document id is ``<owner id>:<message key>``, so importing the same
mailbox twice, or retrying a batch after a crash, overwrites instead of
duplicating. A message that cannot be parsed cleanly is still indexed with
whatever could be decoded; its problems travel along as ``parse_warnings``.

After a rollover an id may already live in an older index: each batch's
operations are sent to the concrete index holding their document
(``shared.index.lifecycle.placement``), so a re-synced email is updated (or
deleted, ``delete_documents``) where it is, never copied into the write index.

Mail older than the retention (``shared.index.mail_age``) is not indexed at
all: it is counted as ``skipped_expired`` and its batch still counts as
acknowledged, so a sync cursor moves past it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

from shared.core import metrics
from shared.core.settings import Settings
from shared.index import mail_age
from shared.index.derived import derived_fields
from shared.index.lifecycle.placement import indices_behind, locate_in, route_actions
from shared.mail.mbox import iter_mbox
from shared.mail.parse import ParsedEmail, parse_email

log = logging.getLogger(__name__)

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LABELS = re.compile(rb"^X-Gmail-Labels:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_THREAD = re.compile(rb"^X-GM-THRID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ProviderMessage:
    """Raw RFC 5322 bytes plus what the provider knows about them."""

    raw: bytes
    labels: tuple[str, ...] = ()
    thread_id: str | None = None
    fallback_date: datetime | None = None
    cursor: int | str | None = None
    # The provider's own key (a Gmail message id), so deletions and label changes can
    # address the document; None keys the document by its parsed Message-ID.
    message_key: str | None = None


@dataclass
class ImportStats:
    """What an import did; returned by the CLI and the Celery task."""

    seen: int = 0
    indexed: int = 0
    failed: int = 0
    with_warnings: int = 0
    skipped_expired: int = 0  # older than the retention: not kept
    cursor: int | str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "indexed": self.indexed,
            "failed": self.failed,
            "with_warnings": self.with_warnings,
            "skipped_expired": self.skipped_expired,
            "cursor": self.cursor,
            "errors": self.errors[:20],
        }


def document_id(owner_id: str, message_key: str) -> str:
    return f"{owner_id}:{message_key}"


def _decode_header_value(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def takeout_metadata(raw: bytes) -> tuple[tuple[str, ...], str | None]:
    """Labels (``X-Gmail-Labels``) and thread id (``X-GM-THRID``) of a Takeout message.

    Read with a regex over the header block rather than a second MIME parse:
    they are plain headers and the import runs thousands of messages a second.
    """
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    labels: tuple[str, ...] = ()
    match = _LABELS.search(head)
    if match:
        unfolded = re.sub(rb"\r?\n[ \t]+", b" ", match.group(1))
        text = _decode_header_value(unfolded)
        labels = tuple(label.strip() for label in text.split(",") if label.strip())
    thread = _THREAD.search(head)
    return labels, (thread.group(1).decode("ascii", "replace") if thread else None)


def mbox_messages(path: Path | str, start_offset: int = 0) -> Iterator[ProviderMessage]:
    """A Takeout (or any) mbox as provider messages; the cursor is the byte offset."""
    for message in iter_mbox(path, start_offset):
        labels, thread_id = takeout_metadata(message.raw)
        yield ProviderMessage(
            raw=message.raw,
            labels=labels,
            thread_id=thread_id,
            fallback_date=message.envelope_date,
            cursor=message.offset,
        )


def email_document(
    owner_id: str,
    parsed: ParsedEmail,
    message: ProviderMessage,
    source: str,
    owner_addresses: Collection[str] = (),
) -> dict[str, Any]:
    """The indexed form of one email. Carries its owner: every search filters on it.

    ``owner_addresses`` are the mailbox owner's own addresses (the account's address, the
    user's email for an mbox import): they decide ``from_me``."""
    key = message.message_key or parsed.message_key
    doc = {
        "owner_id": owner_id,
        "message_key": key,
        "message_id": parsed.message_id,
        "thread_id": message.thread_id or key,
        "subject": parsed.subject,
        "from_address": parsed.from_address,
        "from_name": parsed.from_name,
        "to": parsed.to,
        "cc": parsed.cc,
        "received_at": parsed.received_at.isoformat(),
        "labels": list(message.labels),
        "body": parsed.body,
        "snippet": parsed.snippet,
        "has_attachment": parsed.has_attachment,
        "attachment_names": parsed.attachment_names,
        "list_unsubscribe": parsed.list_unsubscribe,
        "size": parsed.size,
        "parse_warnings": parsed.warnings[:20],
        "source": source,
        "indexed_at": datetime.now(UTC).isoformat(),
    }
    doc.update(derived_fields(doc, owner_addresses, parsed.unnamed_attachment_types))
    return doc


def _batches(items: Iterable[ProviderMessage], size: int) -> Iterator[list[ProviderMessage]]:
    batch: list[ProviderMessage] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_messages(
    es: Elasticsearch,
    settings: Settings,
    owner_id: str,
    messages: Iterable[ProviderMessage],
    *,
    source: str,
    refresh: bool = False,
    on_batch_indexed: Callable[[ImportStats], None] | None = None,
    owner_addresses: Collection[str] = (),
) -> ImportStats:
    """Parse and bulk-index ``messages`` for ``owner_id`` in batches.

    ``owner_addresses``: the owner's own addresses, for each document's ``from_me``.

    ``on_batch_indexed`` runs after each batch is acknowledged by
    Elasticsearch, which is the only safe moment to advance a sync cursor.
    """
    stats = ImportStats()
    limit = mail_age.cutoff(settings)
    # Parsing is CPU work in this process, indexing waits on Elasticsearch: overlap
    # them by sending batch N while batch N+1 is parsed. At most one batch is in
    # flight, and batches are acknowledged in order, so the cursor stays exact.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk") as sender:
        in_flight: tuple[Future[tuple[int, list[Any]]], ProviderMessage] | None = None
        for batch in _batches(messages, settings.import_batch_size):
            built = [
                _action(settings, owner_id, message, source, stats, limit, owner_addresses)
                for message in batch
            ]
            actions = [action for action in built if action is not None]
            stats.seen += len(batch)
            if in_flight is not None:
                _settle(stats, *in_flight, on_batch_indexed)
                in_flight = None
            if not actions:  # all of it older than the retention: acknowledged as it is
                stats.cursor = batch[-1].cursor
                if on_batch_indexed is not None:
                    on_batch_indexed(stats)
                continue
            in_flight = (sender.submit(_bulk, es, settings, actions), batch[-1])
        if in_flight is not None:
            _settle(stats, *in_flight, on_batch_indexed)
    if refresh:
        es.indices.refresh(index=settings.index_alias)
    return stats


def _action(
    settings: Settings,
    owner_id: str,
    message: ProviderMessage,
    source: str,
    stats: ImportStats,
    limit: datetime | None,
    owner_addresses: Collection[str],
) -> dict[str, Any] | None:
    """The bulk action for one message, or None for mail older than the retention."""
    parsed = parse_email(message.raw, fallback_date=message.fallback_date)
    if mail_age.is_expired(parsed.received_at, limit):
        stats.skipped_expired += 1
        metrics.MAIL_SKIPPED_EXPIRED.inc()
        return None
    if parsed.warnings:
        stats.with_warnings += 1
        metrics.MAIL_PARSE_WARNINGS.inc()
        log.warning("message %s parsed with warnings: %s", parsed.message_key, parsed.warnings[:3])
    return {
        "_op_type": "index",
        "_index": settings.index_alias,
        "_id": document_id(owner_id, message.message_key or parsed.message_key),
        "_source": email_document(owner_id, parsed, message, source, owner_addresses),
    }


def _bulk(
    es: Elasticsearch, settings: Settings, actions: list[dict[str, Any]]
) -> tuple[int, list[Any]]:
    routed, cleanup = route_actions(es, settings, actions)
    ok, errors = helpers.bulk(es, routed, raise_on_error=False, chunk_size=len(routed))
    if cleanup:
        helpers.bulk(es, cleanup, raise_on_error=False, chunk_size=len(cleanup))
    return ok, errors if isinstance(errors, list) else []


def _settle(
    stats: ImportStats,
    pending: Future[tuple[int, list[Any]]],
    last: ProviderMessage,
    on_batch_indexed: Callable[[ImportStats], None] | None,
) -> None:
    """Wait for one bulk request (re-raising its transport error) and account for it."""
    ok, errors = pending.result()
    stats.indexed += ok
    stats.failed += len(errors)
    for error in errors:
        stats.errors.append(str(error)[:300])
        log.error("bulk item failed: %s", str(error)[:300])
    stats.cursor = last.cursor
    metrics.EMAILS_INDEXED.inc(ok)
    if on_batch_indexed is not None:
        on_batch_indexed(stats)


def delete_documents(
    es: Elasticsearch, settings: Settings, ids: Iterable[str], *, refresh: bool = False
) -> int:
    """Delete documents by id from whichever index behind the alias holds them.

    For mail deleted at the provider: deleting through the alias would only
    reach the write index. Returns how many documents were deleted. A document
    already gone is fine; any other failure raises, so a sync cursor that
    covers the deletion is not advanced past it.
    """
    holders = locate_in(es, indices_behind(es, settings.index_alias), ids)
    actions = [
        {"_op_type": "delete", "_index": index, "_id": doc_id}
        for doc_id, indices in holders.items()
        for index in indices
    ]
    if not actions:
        return 0
    ok, errors = helpers.bulk(es, actions, raise_on_error=False, refresh=refresh)
    failures = [
        error
        for error in (errors if isinstance(errors, list) else [])
        if error.get("delete", {}).get("status") != 404
    ]
    if failures:
        raise helpers.BulkIndexError(f"{len(failures)} document(s) failed to delete", failures)
    return ok


def import_mbox(
    es: Elasticsearch,
    settings: Settings,
    owner_id: str,
    path: Path | str,
    *,
    refresh: bool = False,
    owner_addresses: Collection[str] = (),
) -> ImportStats:
    """Import a Takeout/mbox file for ``owner_id``; re-importing it changes no count."""
    return import_messages(
        es,
        settings,
        owner_id,
        mbox_messages(path),
        source="mbox",
        refresh=refresh,
        owner_addresses=owner_addresses,
    )

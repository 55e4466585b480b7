"""``ingest``: Mailchat's import of 50,000 generated emails beside a raw ``helpers.bulk``.

Mailchat's side is ``import_mbox``, the path every mbox upload and sync takes:
read the mbox, parse each message, build its document, route each batch to the
index holding its ids, and bulk-index with one batch in flight. The floor is
the same documents, built beforehand (untimed), sent by the Elasticsearch
client's own ``helpers.bulk`` in the same batch size into an empty index made
from the same template: what the search server itself can take. The ratio says
how much of the floor Mailchat's import reaches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elasticsearch import helpers

from bench.results import Figure
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.writer import document_id, email_document, import_mbox, mbox_messages
from shared.mail.parse import parse_email

EMAILS = 50_000
DAYS = 60  # inside the 90-day retention, so every generated email is kept
RAW_INDEX_SUFFIX = "-bench-raw-bulk"  # matches the template's pattern: same mappings


def built_documents(path: Path, owner_id: str) -> list[tuple[str, str]]:
    """(id, JSON source) of every message, as Mailchat builds them; kept as text to stay small."""
    documents = []
    for message in mbox_messages(path):
        parsed = parse_email(message.raw, fallback_date=message.fallback_date)
        source = email_document(owner_id, parsed, message, "mbox")
        doc_id = document_id(owner_id, message.message_key or parsed.message_key)
        documents.append((doc_id, json.dumps(source, ensure_ascii=False)))
    return documents


def raw_bulk_seconds(settings: Settings, documents: list[tuple[str, str]]) -> float:
    """Seconds for ``helpers.bulk`` to index ``documents`` (and refresh) into an empty index."""
    es = get_elasticsearch(settings).options(request_timeout=300)
    index = f"{settings.index_alias}{RAW_INDEX_SUFFIX}"

    def actions() -> Iterator[dict[str, Any]]:
        for doc_id, source in documents:
            yield {
                "_op_type": "index",
                "_index": index,
                "_id": doc_id,
                "_source": json.loads(source),
            }

    es.indices.create(index=index)
    started = time.perf_counter()
    ok, errors = helpers.bulk(
        es, actions(), chunk_size=settings.import_batch_size, raise_on_error=False
    )
    es.indices.refresh(index=index)
    elapsed = time.perf_counter() - started
    if errors or ok != len(documents):
        raise RuntimeError(f"raw bulk indexed {ok} of {len(documents)}: {str(errors)[:300]}")
    es.indices.delete(index=index)
    return elapsed


def run(settings: Settings, mbox: Path, emails: int = EMAILS) -> list[Figure]:
    """Import ``mbox`` (``emails`` generated emails) both ways on fresh servers."""
    es = get_elasticsearch(settings).options(request_timeout=300)
    r = get_redis(settings)
    user = create_user(r, settings, f"ingest-{time.time_ns()}@example.com", "bench password 1")
    started = time.perf_counter()
    stats = import_mbox(es, settings, user.id, mbox, refresh=True)
    mailchat_seconds = time.perf_counter() - started
    if stats.indexed != emails or stats.failed:
        raise RuntimeError(f"import indexed {stats.indexed} of {emails} ({stats.failed} failed)")
    print(f"  Mailchat import: {stats.indexed:,} emails in {mailchat_seconds:.1f}s", flush=True)
    peer = create_user(r, settings, f"ingest-raw-{time.time_ns()}@example.com", "bench password 1")
    documents = built_documents(mbox, peer.id)
    raw_seconds = raw_bulk_seconds(settings, documents)
    print(f"  raw helpers.bulk: {len(documents):,} documents in {raw_seconds:.1f}s", flush=True)
    mailchat_rate = stats.indexed / mailchat_seconds
    raw_rate = len(documents) / raw_seconds
    detail = {
        "emails": stats.indexed,
        "batch": settings.import_batch_size,
        "mailchat_seconds": round(mailchat_seconds, 2),
        "raw_bulk_seconds": round(raw_seconds, 2),
    }
    return [
        Figure(
            "ingest.rate",
            round(mailchat_rate),
            "emails/s",
            peer=round(raw_rate),
            peer_name="raw helpers.bulk",
            detail=detail,
        ),
        Figure("ingest.ratio_to_raw_bulk", round(mailchat_rate / raw_rate, 3), "", detail=detail),
    ]

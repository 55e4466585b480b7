"""Owner-scoped email search.

The owner filter and the date window are built here, server-side, as
``bool.filter`` clauses; the person's words only ever reach
``simple_query_string``, which has no field syntax. So ``owner_id:B``,
``*`` or a pasted JSON fragment is just text to look for inside the
caller's own mail, never a way into somebody else's.

The window never reaches further back than the mail that is kept
(``MAILCHAT_RETENTION_DAYS``, ``shared.index.mail_age``): a longer one is
capped, and the answer's ``search`` says so with ``window_capped_to``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from shared.core.settings import Settings
from shared.index.mail_age import cap_window

log = logging.getLogger(__name__)

SEARCH_FIELDS = ["subject^3", "body", "from_name^2", "from_address^2", "attachment_names"]
SOURCE_FIELDS = ["subject", "from_address", "from_name", "received_at", "snippet", "labels"]


@dataclass(frozen=True)
class EmailHit:
    id: str
    subject: str
    from_address: str
    from_name: str
    received_at: str
    snippet: str
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchOutcome:
    """What was searched and what came back; the assistant reports both."""

    keywords: str
    window_days: int
    total_hits: int
    hits: list[EmailHit]
    elasticsearch_seconds: float
    # The retention a longer window was cut to (None: the window was searched as asked).
    window_capped_to: int | None = None
    requested_window_days: int | None = None

    def description(self) -> dict[str, Any]:
        """The ``search`` object of a chat answer: what was searched, in plain terms."""
        described: dict[str, Any] = {
            "query": self.keywords,
            "filters": {"received_within_days": self.window_days, "owner": "you"},
            "window_days": self.window_days,
            "total_hits": self.total_hits,
        }
        if self.window_capped_to is not None:
            described["window_capped_to"] = self.window_capped_to
            described["requested_window_days"] = self.requested_window_days
        return described

    @property
    def retention_note(self) -> str:
        """What an answer adds when its window was capped: older mail is not kept."""
        if self.window_capped_to is None:
            return ""
        return (
            f" (you asked for {self.requested_window_days} days, but mail older than "
            f"{self.window_capped_to} days is not kept)"
        )


def build_query(owner_id: str, keywords: str, window_days: int) -> dict[str, Any]:
    """The Elasticsearch query: owner and window as filters, keywords as scored text."""
    if not owner_id:
        raise ValueError("a search needs its owner's id")
    filters: list[dict[str, Any]] = [
        {"term": {"owner_id": owner_id}},
        {"range": {"received_at": {"gte": f"now-{int(window_days)}d"}}},
    ]
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if keywords.strip():
        query["bool"]["must"] = [
            {
                "simple_query_string": {
                    "query": keywords,
                    "fields": SEARCH_FIELDS,
                    "default_operator": "and",
                    "lenient": True,
                }
            }
        ]
    return query


def search_emails(
    es: Elasticsearch,
    settings: Settings,
    owner_id: str,
    keywords: str,
    window_days: int,
    size: int | None = None,
) -> SearchOutcome:
    """Run one owner-scoped search; best matches first, newest first when there are no words.

    A window longer than the retention is capped to it (the outcome says so).
    """
    requested = window_days
    window_days, capped = cap_window(settings, window_days)
    body_size = settings.search_result_size if size is None else size
    sort: list[Any] = (
        ["_score", {"received_at": "desc"}] if keywords.strip() else [{"received_at": "desc"}]
    )
    started = time.perf_counter()
    response = es.search(
        index=settings.index_alias,
        query=build_query(owner_id, keywords, window_days),
        size=body_size,
        sort=sort,
        source_includes=SOURCE_FIELDS,
        track_total_hits=True,
    )
    elapsed = time.perf_counter() - started
    hits = [
        EmailHit(
            id=hit["_id"],
            subject=hit["_source"].get("subject", ""),
            from_address=hit["_source"].get("from_address", ""),
            from_name=hit["_source"].get("from_name", ""),
            received_at=hit["_source"].get("received_at", ""),
            snippet=hit["_source"].get("snippet", ""),
            labels=list(hit["_source"].get("labels") or []),
        )
        for hit in response["hits"]["hits"]
    ]
    total = response["hits"]["total"]["value"]
    return SearchOutcome(
        keywords,
        window_days,
        total,
        hits,
        elapsed,
        window_capped_to=capped,
        requested_window_days=requested if capped is not None else None,
    )

"""Owner-scoped, bounded email search.

The owner filter and the date window are built here, server-side, as
``bool.filter`` clauses; the person's words are compiled by
``shared.index.query`` into at most ``search_max_terms`` analyzed-text
clauses, never passed through as query syntax. So ``owner_id:B``, ``*`` or a
pasted JSON fragment is just text to look for inside the caller's own mail,
never a way into somebody else's, and a 300-word question costs what an
8-word one does. Every search carries a server-side ``timeout`` (partial
results come back marked ``timed_out``), and the client gives up a little
later still, so a stuck search ends the answer instead of holding a worker.

The window never reaches further back than the mail that is kept
(``MAILCHAT_RETENTION_DAYS``, ``shared.index.mail_age``): a longer one is
capped, and the answer's ``search`` says so with ``window_capped_to``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ConnectionTimeout, Elasticsearch

from shared.core.settings import Settings
from shared.index.mail_age import cap_window
from shared.index.query import CompiledQuery, compile_terms

log = logging.getLogger(__name__)

# How much longer than the server-side timeout the client waits for the answer:
# time for the server to notice its timeout and send back what it has.
CLIENT_GRACE_SECONDS = 2.0
SOURCE_FIELDS = [
    "subject",
    "from_address",
    "from_name",
    "received_at",
    "snippet",
    "labels",
    "category",
    "thread_id",
    "attachment_names",
    "list_unsubscribe",
    "from_me",
]


@dataclass(frozen=True)
class EmailHit:
    id: str
    subject: str
    from_address: str
    from_name: str
    received_at: str
    snippet: str
    labels: list[str] = field(default_factory=list)
    category: str | None = None
    thread_id: str = ""
    attachment_names: list[str] = field(default_factory=list)
    list_unsubscribe: str = ""
    from_me: bool = False

    @classmethod
    def from_hit(cls, hit: dict[str, Any]) -> EmailHit:
        source = hit.get("_source") or {}
        return cls(
            id=hit["_id"],
            subject=source.get("subject", ""),
            from_address=source.get("from_address", ""),
            from_name=source.get("from_name", ""),
            received_at=source.get("received_at", ""),
            snippet=source.get("snippet", ""),
            labels=list(source.get("labels") or []),
            category=source.get("category"),
            thread_id=str(source.get("thread_id") or ""),
            attachment_names=list(source.get("attachment_names") or []),
            list_unsubscribe=str(source.get("list_unsubscribe") or ""),
            from_me=bool(source.get("from_me")) or "Sent" in (source.get("labels") or []),
        )


@dataclass
class SearchTally:
    """The search requests one question made, and the time the search server took.

    The assistant may make at most ``MAX_REQUESTS`` per question (an ``msearch``
    is one); the tally is what the answer reports and ``make bench`` measures.
    """

    requests: int = 0
    seconds: float = 0.0
    timed_out: bool = False


MAX_REQUESTS = 3


def run_searches(
    es: Elasticsearch, settings: Settings, bodies: list[dict[str, Any]], tally: SearchTally
) -> list[dict[str, Any]]:
    """Run ``bodies`` (raw search bodies) as one ``msearch`` against the alias: one request.

    Every body gets the server-side ``timeout``; the client gives up
    ``CLIENT_GRACE_SECONDS`` later with ``SearchTimedOut``.
    """
    if not bodies:
        return []
    if tally.requests >= MAX_REQUESTS:
        raise RuntimeError(f"a question may make at most {MAX_REQUESTS} search requests")
    timeout = f"{max(1, int(settings.search_timeout_seconds * 1000))}ms"
    client = es.options(request_timeout=settings.search_timeout_seconds + CLIENT_GRACE_SECONDS)
    started = time.perf_counter()
    try:
        # One msearch whatever the number of bodies: one request, the same wire form.
        searches: list[dict[str, Any]] = []
        for body in bodies:
            searches += [{"index": settings.index_alias}, {**body, "timeout": timeout}]
        responses = list(client.msearch(searches=searches)["responses"])
    except ConnectionTimeout as exc:
        raise SearchTimedOut(
            f"no answer from the search server in {settings.search_timeout_seconds:g} s"
        ) from exc
    finally:
        tally.requests += 1
        tally.seconds += time.perf_counter() - started
    for response in responses:
        if "error" in response:
            raise SearchFailed(str(response["error"])[:300])
        tally.timed_out = tally.timed_out or bool(response.get("timed_out"))
    return responses


class SearchFailed(RuntimeError):
    """One search of an ``msearch`` was refused by the server."""


@dataclass(frozen=True)
class SearchOutcome:
    """What was searched and what came back; the assistant reports both."""

    keywords: str
    window_days: int
    total_hits: int
    hits: list[EmailHit]
    elasticsearch_seconds: float
    ignored_terms: tuple[str, ...] = ()
    timed_out: bool = False
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
            "ignored_terms": list(self.ignored_terms),
            "timed_out": self.timed_out,
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


class SearchTimedOut(Exception):
    """The search server did not answer within the search's time limit (plus grace)."""


def build_query(owner_id: str, compiled: CompiledQuery, window_days: int) -> dict[str, Any]:
    """The Elasticsearch query: owner and window as filters, the compiled terms as scored text."""
    if not owner_id:
        raise ValueError("a search needs its owner's id")
    filters: list[dict[str, Any]] = [
        {"term": {"owner_id": owner_id}},
        {"range": {"received_at": {"gte": f"now-{int(window_days)}d"}}},
    ]
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if compiled.terms:
        query["bool"]["must"] = compiled.clauses()
    return query


def search_request(
    settings: Settings, owner_id: str, compiled: CompiledQuery, window_days: int, size: int
) -> dict[str, Any]:
    """The ``search`` call's arguments: the query, its size and order, and its time limit."""
    sort: list[Any] = (
        ["_score", {"received_at": "desc"}] if compiled.terms else [{"received_at": "desc"}]
    )
    return {
        "index": settings.index_alias,
        "query": build_query(owner_id, compiled, window_days),
        "size": size,
        "sort": sort,
        "source_includes": SOURCE_FIELDS,
        "track_total_hits": True,
        "timeout": f"{max(1, int(settings.search_timeout_seconds * 1000))}ms",
    }


def search_emails(
    es: Elasticsearch,
    settings: Settings,
    owner_id: str,
    keywords: str,
    window_days: int,
    size: int | None = None,
) -> SearchOutcome:
    """Run one owner-scoped search; best matches first, newest first when there are no words.

    ``keywords`` is the person's text: at most ``settings.search_max_terms`` of its
    terms are searched, the rest come back as ``ignored_terms``. Raises
    ``SearchTimedOut`` when the server does not answer in time. A window longer
    than the retention is capped to it (the outcome says so).
    """
    compiled = compile_terms(keywords, settings.search_max_terms)
    requested = window_days
    window_days, capped = cap_window(settings, window_days)
    body_size = settings.search_result_size if size is None else size
    request = search_request(settings, owner_id, compiled, window_days, body_size)
    client = es.options(request_timeout=settings.search_timeout_seconds + CLIENT_GRACE_SECONDS)
    started = time.perf_counter()
    try:
        response = client.search(**request)
    except ConnectionTimeout as exc:
        raise SearchTimedOut(
            f"no answer from the search server in {settings.search_timeout_seconds:g} s"
        ) from exc
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
    timed_out = bool(response.get("timed_out", False))
    if timed_out:
        log.warning(
            "a search hit its %s time limit; answering from partial results", request["timeout"]
        )
    return SearchOutcome(
        compiled.text,
        window_days,
        total,
        hits,
        elapsed,
        ignored_terms=compiled.ignored_terms,
        timed_out=timed_out,
        window_capped_to=capped,
        requested_window_days=requested if capped is not None else None,
    )

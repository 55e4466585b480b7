"""One question, start to end: read it (with the conversation's earlier turns), search, compose.

The steps, each in its own module: ``understand`` reads the question into
filters; a follow-up ("and from Acme?") is merged into the previous answered
question of the same conversation, read back from its event log; the intent
(``intents``) makes at most three search requests; ``compose`` writes the text
from what was found. The ``search`` block lists exactly what was searched,
with the merged filters, so the page can show it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.assistant.answer import citation
from shared.assistant.compose import compose
from shared.assistant.intents import Context, Result, run_intent
from shared.assistant.intents.base import terms_of, window_of
from shared.assistant.understand import Understanding, is_follow_up, refine, understand
from shared.core.events import EventType
from shared.core.settings import Settings
from shared.realtime.eventlog import EventLog

TURNS_READ_BACK = 60  # events read back for the previous question (a few answers' worth)


@dataclass(frozen=True)
class Answered:
    answer: str
    citations: list[dict[str, Any]]
    search: dict[str, Any]
    elasticsearch_seconds: float
    search_requests: int
    assistant_seconds: float  # the assistant's own time: everything but the search server's


def previous_turn(
    r: redis.Redis, settings: Settings, conversation_id: str, before_event_id: str
) -> tuple[Understanding, int] | None:
    """The last answered question before this one in the conversation, as understood then."""
    if not before_event_id:
        return None
    events = EventLog(r, settings)
    stream = events.conversation_stream(conversation_id)
    for event in events.read_back(stream, before=before_event_id, count=TURNS_READ_BACK):
        if event.type != EventType.DONE or event.data.get("cancelled"):
            continue
        search = event.data.get("search") or {}
        if isinstance(search.get("understood"), dict):
            try:
                return Understanding.from_dict(search["understood"]), int(
                    search.get("window_days", 0)
                )
            except (TypeError, ValueError, KeyError):
                return None
    return None


def describe(ctx: Context, result: Result) -> dict[str, Any]:
    """The ``search`` block: what was searched, in plain terms, and what came back."""
    u = ctx.understanding
    window = window_of(ctx)
    terms = terms_of(ctx)
    filters: dict[str, Any] = {
        "from": list(u.senders) or None,
        "window": window.describe(),
        "category": u.category,
        "label": u.label,
        "attachment": u.attachment_type or (True if u.attachment else None),
        "unread": u.unread or None,
        "from_me": u.from_me or None,
        "received_within_days": window.shown_days,
        "owner": "you",
    }
    if "window" in result.relaxed:
        filters["window"] = f"last {ctx.kept_days} days"
    search: dict[str, Any] = {
        "query": " ".join(terms.used),
        "filters": filters,
        "window_days": ctx.kept_days if "window" in result.relaxed else window.shown_days,
        "total_hits": result.total_hits,
        "relaxed": list(result.relaxed),
        "intent": str(result.intent),
        "ignored_terms": list(terms.ignored),
        "timed_out": ctx.tally.timed_out,
        "follow_up": u.follow_up,
        "search_requests": ctx.tally.requests,
        "understood": u.to_dict(),
    }
    if result.count is not None:
        search["count"] = result.count
    if window.capped_from is not None:
        search["window_capped_to"] = ctx.kept_days
        search["requested_window_days"] = window.capped_from
    return search


def answer_question(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    *,
    owner_id: str,
    conversation_id: str,
    question: str,
    question_event_id: str,
    window_days: int,
    now: datetime | None = None,
) -> Answered:
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    understood = understand(question, now)
    previous_days = None
    if is_follow_up(understood):
        earlier = previous_turn(r, settings, conversation_id, question_event_id)
        if earlier is not None:
            understood, previous_days = refine(earlier[0], understood), earlier[1]
        else:
            understood = replace(understood, follow_up=False, older_than_previous=False)
    ctx = Context(es, settings, owner_id, understood, window_days, now,
                  previous_window_days=previous_days)  # fmt: skip
    result = run_intent(ctx)
    search = describe(ctx, result)
    text = compose(result, search)
    citations = [citation(hit) for hit in result.hits]
    total = time.perf_counter() - started
    return Answered(
        text,
        citations,
        search,
        ctx.tally.seconds,
        ctx.tally.requests,
        max(0.0, total - ctx.tally.seconds),
    )

"""Summarize / digest: "summarize my week", grouped by category and sender, from aggregations.

One ``msearch`` (one request): the window's counts by category and by sender
(``terms`` aggregations, exact on this one owner's mail) with the newest emails,
and the most important emails of the window (job mail first: an offer before an
interview before a rejection before a recruiter's note), which the answer cites.
"""

from __future__ import annotations

from typing import Any

from shared.assistant.intents.base import Context, Result, parts_for, window_of
from shared.index.query import build_bool
from shared.index.search import SOURCE_FIELDS, EmailHit, run_searches

IMPORTANT = ("offer", "interview", "rejection", "recruiter_outreach")
GROUPS = 10  # categories and senders listed per digest


def run_digest(ctx: Context) -> Result:
    window = window_of(ctx)
    parts = parts_for(ctx, window)
    query = build_bool(parts)
    important = {**query, "bool": {**query["bool"], "filter": [
        *query["bool"]["filter"], {"terms": {"category": list(IMPORTANT)}}
    ]}}  # fmt: skip
    overview: dict[str, Any] = {
        "query": query,
        "size": ctx.size,
        "sort": [{"received_at": "desc"}],
        "_source": SOURCE_FIELDS,
        "track_total_hits": True,
        "aggs": {
            "categories": {"terms": {"field": "category", "size": GROUPS}},
            "senders": {"terms": {"field": "from_address", "size": GROUPS}},
        },
    }
    top = {"query": important, "size": 4 * ctx.size, "sort": [{"received_at": "desc"}],
           "_source": SOURCE_FIELDS}  # fmt: skip
    everything, key_mail = run_searches(ctx.es, ctx.settings, [overview, top], ctx.tally)
    newest = [EmailHit.from_hit(h) for h in everything["hits"]["hits"]]
    ranked = sorted(
        (EmailHit.from_hit(h) for h in key_mail["hits"]["hits"]),
        key=lambda hit: IMPORTANT.index(hit.category) if hit.category in IMPORTANT else 99,
    )  # stable: newest first within a category
    result = Result(ctx.understanding.intent, (ranked or newest)[: ctx.size])
    result.total_hits = int(everything["hits"]["total"]["value"])
    aggs = everything.get("aggregations") or {}
    for name in ("categories", "senders"):
        buckets = (aggs.get(name) or {}).get("buckets") or []
        result.groups[name] = [(str(b["key"]), int(b["doc_count"])) for b in buckets]
    return result

"""Needs reply and unsubscribe candidates: answers about threads and senders, not single emails.

Both are one search with aggregations, bounded by ``MAX_BUCKETS``:

- needs reply: the owner's conversations (threads of two or more messages)
  whose newest message is from someone else and arrived inside the window,
  newest first (a ``terms`` aggregation on ``thread_id`` with each thread's
  newest message as ``top_hits``);
- unsubscribe: bulk senders (a List-Unsubscribe header) by how often they
  write, leaving out any the owner ever wrote to, each with its unsubscribe
  link or address and its newest email cited.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from shared.assistant.intents.base import Context, Result, window_of
from shared.index.query import QueryParts, build_bool
from shared.index.search import SOURCE_FIELDS, EmailHit, run_searches

MAX_BUCKETS = 500  # threads (or senders) one answer considers
_LINK = re.compile(r"<(https://[^>\s]+)>")
_MAILTO = re.compile(r"<mailto:([^>\s?]+)")


def _newest(bucket: dict[str, Any]) -> EmailHit:
    return EmailHit.from_hit(bucket["newest"]["hits"]["hits"][0])


def _top_hits() -> dict[str, Any]:
    return {"top_hits": {"size": 1, "sort": [{"received_at": "desc"}], "_source": SOURCE_FIELDS}}


def run_needs_reply(ctx: Context) -> Result:
    window = window_of(ctx)
    owner_only = build_bool(QueryParts(owner_id=ctx.owner_id, window_days=ctx.kept_days))
    request = {
        "query": owner_only,
        "size": 0,
        "aggs": {
            "threads": {
                "terms": {"field": "thread_id", "size": MAX_BUCKETS, "min_doc_count": 2},
                "aggs": {"newest": _top_hits()},
            }
        },
    }
    (response,) = run_searches(ctx.es, ctx.settings, [request], ctx.tally)
    since = ctx.now - timedelta(days=window.days or ctx.kept_days)
    waiting = []
    for bucket in (response.get("aggregations") or {}).get("threads", {}).get("buckets", []):
        if int(bucket["doc_count"]) < 2:
            continue  # a lone message is not a conversation (and some servers ignore min_doc_count)
        newest = _newest(bucket)
        if newest.from_me or newest.list_unsubscribe:
            continue
        try:
            received = datetime.fromisoformat(newest.received_at)
        except ValueError:
            continue
        if received >= since:
            waiting.append((received, newest))
    waiting.sort(key=lambda pair: pair[0], reverse=True)
    result = Result(ctx.understanding.intent, [hit for _, hit in waiting[: ctx.size]])
    result.total_hits = len(waiting)
    result.count = len(waiting)
    return result


def unsubscribe_target(header: str) -> str:
    """The one-click https link of a List-Unsubscribe header, else its mailto address."""
    if link := _LINK.search(header):
        return link.group(1)
    if mailto := _MAILTO.search(header):
        return f"mailto:{mailto.group(1)}"
    return ""


def run_unsubscribe(ctx: Context) -> Result:
    window = window_of(ctx)
    bulk = build_bool(
        QueryParts(owner_id=ctx.owner_id, window_days=window.days, has_unsubscribe=True)
    )
    mine = build_bool(QueryParts(owner_id=ctx.owner_id, from_me=True))
    request = {
        "query": {"bool": {"filter": [{"term": {"owner_id": ctx.owner_id}}]}},
        "size": 0,
        "aggs": {
            "bulk": {
                "filter": bulk,
                "aggs": {
                    "senders": {
                        "terms": {"field": "from_address", "size": MAX_BUCKETS},
                        "aggs": {"newest": _top_hits()},
                    }
                },
            },
            "mine": {
                "filter": mine,
                "aggs": {"to": {"terms": {"field": "to", "size": MAX_BUCKETS}}},
            },
        },
    }
    (response,) = run_searches(ctx.es, ctx.settings, [request], ctx.tally)
    aggs = response.get("aggregations") or {}
    written_to = {
        str(b["key"]).lower() for b in aggs.get("mine", {}).get("to", {}).get("buckets", [])
    }
    candidates = []
    for bucket in aggs.get("bulk", {}).get("senders", {}).get("buckets", []):
        if str(bucket["key"]).lower() in written_to:
            continue
        newest = _newest(bucket)
        candidates.append((int(bucket["doc_count"]), newest))
    result = Result(ctx.understanding.intent, [hit for _, hit in candidates[: ctx.size]])
    result.total_hits = len(candidates)
    result.count = len(candidates)
    result.extra = {
        hit.id: {"emails": n, "unsubscribe": unsubscribe_target(hit.list_unsubscribe)}
        for n, hit in candidates[: ctx.size]
    }
    return result

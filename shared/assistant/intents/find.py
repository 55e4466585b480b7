"""Find / list, count, latest ("when did Acme last write?") and attachments ("the PDF Priya sent").

They differ in what they ask of one search: ``count`` needs the exact total
(``track_total_hits``, the filters shown), ``latest`` the newest first, find and
attachments the best matches. One strict request, then at most one ``msearch``
of relaxed variants (``shared.assistant.relax``) when it found nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.assistant import relax
from shared.assistant.intents.base import Context, Result, Window, hit_sort, parts_for, window_of
from shared.assistant.understand import Intent
from shared.index.query import QueryParts, build_bool, is_name
from shared.index.search import SOURCE_FIELDS, EmailHit, run_searches


def body(parts: QueryParts, size: int, *, newest_first: bool = False) -> dict[str, Any]:
    return {
        "query": build_bool(parts),
        "size": size,
        "sort": hit_sort(parts, newest_first),
        "_source": SOURCE_FIELDS,
        "track_total_hits": True,
    }


def _hits(response: dict[str, Any]) -> tuple[list[EmailHit], int]:
    hits = [EmailHit.from_hit(h) for h in response["hits"]["hits"]]
    return hits, int(response["hits"]["total"]["value"])


def run_find(ctx: Context) -> Result:
    u = ctx.understanding
    window = window_of(ctx)
    newest = u.intent in (Intent.LATEST, Intent.ATTACHMENTS) or not u.keywords
    parts = parts_for(ctx, window)
    tiers = [parts]
    if any(is_name(s) for s in parts.senders):
        # Named senders by their own domain first, in the same request (one msearch).
        tiers.insert(0, replace(parts, sender_domains_only=True))
    bodies = [body(p, ctx.size, newest_first=newest) for p in tiers]
    responses = run_searches(ctx.es, ctx.settings, bodies, ctx.tally)
    for tier, response in zip(tiers, responses, strict=True):
        hits, total = _hits(response)
        parts = tier
        if total:
            break
    result = Result(u.intent, hits, total)
    if u.intent is Intent.COUNT:
        result.count = total
    if total == 0:
        _relax(ctx, window, parts, result, newest)
    return result


def _relax(ctx: Context, window: Window, parts: QueryParts, result: Result, newest: bool) -> None:
    """The relaxed variants and (for a named window) the count over all kept mail, in one msearch.

    A count is exact for what was asked, so ``count`` never cites relaxed mail: it
    only learns how many match in all kept mail, for the answer to suggest.
    """
    variants = (
        []
        if result.intent is Intent.COUNT
        else relax.relaxations(parts, window_named=window.named, kept_days=ctx.kept_days)
    )
    wider = (
        relax.wider(parts, ctx.kept_days) if window.named or result.intent is Intent.COUNT else None
    )
    bodies = [body(p, ctx.size, newest_first=newest) for _, p in variants]
    if wider is not None:
        bodies.append({"query": build_bool(wider), "size": 0, "track_total_hits": True})
    if not bodies:
        return
    responses = run_searches(ctx.es, ctx.settings, bodies, ctx.tally)
    result.tried = list(variants[-1][0]) if variants else []
    for (steps, _), response in zip(variants, responses, strict=False):
        hits, total = _hits(response)
        if total:
            result.hits, result.total_hits, result.relaxed = hits, total, list(steps)
            break
    if wider is not None:
        result.wider_total = int(responses[-1]["hits"]["total"]["value"])

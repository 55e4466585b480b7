"""What every intent shares: the question's context, its result, and its query parts.

An intent turns an ``Understanding`` into at most ``MAX_REQUESTS`` search
requests (``SearchTally`` counts them) and a ``Result``: the emails it cites
and the figures its answer states. Composing the answer's text is
``shared.assistant.compose``'s job, from the ``Result`` alone, so another
phrasing (an LLM's) can replace it without touching the search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from shared.assistant.understand import Intent, Understanding
from shared.assistant.vocabulary import ATTACHMENT_TYPES, SYNONYMS
from shared.assistant.when import MAX_WINDOW_DAYS, days_back
from shared.core.settings import Settings
from shared.index.query import QueryParts, compile_terms
from shared.index.search import EmailHit, SearchTally

# The window an intent searches when the question names none (None: the request's window).
DEFAULT_WINDOWS: dict[Intent, int | None] = {
    Intent.FIND: None,
    Intent.COUNT: None,
    Intent.SUMMARIZE: 7,
    Intent.NEEDS_REPLY: None,
    Intent.UNSUBSCRIBE: MAX_WINDOW_DAYS,
    Intent.LATEST: MAX_WINDOW_DAYS,
    Intent.ATTACHMENTS: MAX_WINDOW_DAYS,
    Intent.UNSUPPORTED: None,
}


@dataclass
class Context:
    es: Elasticsearch
    settings: Settings
    owner_id: str
    understanding: Understanding
    request_window_days: int
    now: datetime
    tally: SearchTally = field(default_factory=SearchTally)
    previous_window_days: int | None = None  # for "older than that"

    @property
    def kept_days(self) -> int:
        """How far back mail is kept (the widest window a search can usefully have)."""
        kept = self.settings.retention_days
        return min(kept, MAX_WINDOW_DAYS) if kept > 0 else MAX_WINDOW_DAYS

    @property
    def size(self) -> int:
        return max(1, self.settings.search_result_size)


@dataclass
class Result:
    """What an intent found; ``compose`` writes the answer from it."""

    intent: Intent
    hits: list[EmailHit] = field(default_factory=list)
    total_hits: int = 0
    relaxed: list[str] = field(default_factory=list)  # the steps that found the hits
    tried: list[str] = field(default_factory=list)  # every relaxation step searched
    count: int | None = None
    wider_total: int | None = None  # matches over the whole kept window, when none in the asked one
    groups: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # digest aggregations
    extra: dict[str, Any] = field(default_factory=dict)  # per-hit facts (unsubscribe links ...)


@dataclass(frozen=True)
class Window:
    """The window a search uses: rolling (``days``) or an absolute range (``start``/``end``)."""

    days: int | None
    start: str | None
    end: str | None
    shown_days: int  # the answer's ``window_days``
    named: bool
    capped_from: int | None = None

    def describe(self) -> str:
        if self.start and self.end:
            return f"{self.start} to {self.end} (end excluded)"
        if self.start:
            return f"since {self.start}"
        if self.end:
            return f"before {self.end}"
        return f"last {self.shown_days} day{'s' if self.shown_days != 1 else ''}"


def window_of(ctx: Context) -> Window:
    """The question's window: named in it, the intent's default, or the request's."""
    u, kept = ctx.understanding, ctx.kept_days
    if u.older_than_previous and ctx.previous_window_days:
        before = (ctx.now - timedelta(days=ctx.previous_window_days)).isoformat()
        return Window(kept, None, before, kept, True)
    if u.time.start is not None:
        until = u.time.end.isoformat() if u.time.end else None
        shown = min(kept, days_back(u.time, ctx.now) or kept)
        return Window(None, u.time.start.isoformat(), until, shown, True)
    if u.time.window_days is not None:
        requested = u.time.window_days
        return Window(min(requested, kept), None, None, min(requested, kept), True,
                      requested if requested > kept else None)  # fmt: skip
    default = DEFAULT_WINDOWS.get(u.intent) or ctx.request_window_days
    days = min(default, kept)
    capped = default if default > kept and DEFAULT_WINDOWS.get(u.intent) is None else None
    return Window(days, None, None, days, False, capped)


@dataclass(frozen=True)
class Terms:
    used: tuple[str, ...]
    ignored: tuple[str, ...]


def terms_of(ctx: Context) -> Terms:
    compiled = compile_terms(" ".join(ctx.understanding.keywords), ctx.settings.search_max_terms)
    return Terms(compiled.terms, compiled.ignored_terms)


def parts_for(ctx: Context, window: Window, **overrides: Any) -> QueryParts:
    """The understanding as query parts over ``window`` (``overrides`` for relaxed variants)."""
    u = ctx.understanding
    terms = terms_of(ctx).used
    synonyms = tuple((t, SYNONYMS[t.casefold()]) for t in terms if t.casefold() in SYNONYMS)
    parts = QueryParts(
        owner_id=ctx.owner_id,
        terms=terms,
        synonyms=synonyms,
        senders=u.senders,
        category=u.category,
        label=u.label,
        attachment=u.attachment,
        attachment_suffixes=ATTACHMENT_TYPES.get(u.attachment_type or "", ()),
        unread=u.unread,
        from_me=True if u.from_me else None,
        window_days=window.days,
        start=window.start,
        end=window.end,
    )
    if overrides:
        from dataclasses import replace

        parts = replace(parts, **overrides)
    return parts


def hit_sort(parts: QueryParts, newest_first: bool = False) -> list[Any]:
    """Best match first when words score; newest first otherwise (and then)."""
    if parts.terms and not newest_first:
        return ["_score", {"received_at": "desc"}]
    return [{"received_at": "desc"}]

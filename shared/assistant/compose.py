"""The answer's text, written from what the search found (and nothing else).

Each function takes the intent's ``Result`` (the retrieved emails and figures)
and the ``search`` description, and returns text whose numbered references
``[n]`` are the citations in order. An optional LLM phrasing step may replace
this text; the citations never change with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.assistant.answer import IGNORED_SHOWN, _day, _sender
from shared.assistant.intents.base import Result
from shared.assistant.understand import Intent

CAPABILITIES = (
    "I can search your mail and answer from it: find emails (by sender, time, category such "
    "as interviews or receipts, label, attachment, unread), count them (“how many rejections "
    "this month?”), summarize a period (“summarize my week”), tell when someone last wrote, "
    "list threads that still need your reply, and suggest newsletters to unsubscribe from."
)
RELAXED_SAYS = {
    "window": "all the mail that is kept",
    "fuzzy": "allowing for misspellings",
    "drop_word": "leaving out one of the words",
    "any_words": "matching only some of the words",
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def what_searched(search: dict[str, Any], n: int | None = None) -> str:
    """“3 interview emails about “contract” from Northwind in the last 30 days”.

    With ``n`` the phrase starts with the number; without, it names what was looked for.
    """
    f = search.get("filters") or {}
    noun = "email" if n == 1 else "emails"
    if f.get("category"):
        noun = f"{str(f['category']).replace('_', ' ')} {noun}"
    if f.get("unread"):
        noun = f"unread {noun}"
    parts = [f"{n} {noun}" if n is not None else noun]
    if search.get("query"):
        parts.append(f"about “{search['query']}”")
    if f.get("from_me"):
        parts.append("sent by you")
    if f.get("from"):
        parts.append("from " + " or ".join(f["from"]))
    if f.get("label"):
        parts.append(f"labelled {f['label']}")
    if f.get("attachment"):
        kind = f["attachment"]
        parts.append("with an attachment" if kind is True else f"with a {kind} attachment")
    window = str(f.get("window", ""))
    parts.append(f"in the {window}" if window.startswith("last") else window)
    return " ".join(p for p in parts if p)


def _line(number: int, hit: Any) -> str:
    subject = hit.subject or "(no subject)"
    return f"{number}. “{subject}” from {_sender(hit)}, {_day(hit.received_at)} [{number}]"


def _nothing(result: Result, search: dict[str, Any]) -> str:
    """Said only after every relaxation step found nothing: what was tried, what to try."""
    text = f"I found no {what_searched(search)}"
    if result.tried:
        text += "; I also tried " + ", ".join(RELAXED_SAYS[step] for step in result.tried)
    text += "."
    if result.wider_total:
        text += (
            f" In all the mail that is kept there {'is' if result.wider_total == 1 else 'are'} "
            f"{_plural(result.wider_total, 'match')}: ask again with a wider window to see them."
        )
    else:
        text += " Try a wider window or other words."
    return text


def compose_find(result: Result, search: dict[str, Any]) -> str:
    if not result.hits:
        return _nothing(result, search)
    head = f"I found {what_searched(search, result.total_hits)}"
    if result.relaxed:
        head = (
            f"Nothing matched exactly; {', '.join(RELAXED_SAYS[s] for s in result.relaxed)}, "
            f"I found {what_searched(search, result.total_hits)}"
        )
    head += "." if result.total_hits <= len(result.hits) else f". The {len(result.hits)} best:"
    return "\n".join([head, *(_line(n, h) for n, h in enumerate(result.hits, 1))])


def compose_count(result: Result, search: dict[str, Any]) -> str:
    n = result.count or 0
    text = f"{what_searched(search, n)[0].upper()}{what_searched(search, n)[1:]}."
    if n == 0:
        return _nothing(result, search)
    if result.hits:
        text += " The newest:" if len(result.hits) < n else ""
        return "\n".join([text, *(_line(i, h) for i, h in enumerate(result.hits, 1))])
    return text


def compose_latest(result: Result, search: dict[str, Any]) -> str:
    if not result.hits:
        return _nothing(result, search)
    hit = result.hits[0]
    text = (
        f"The latest is “{hit.subject or '(no subject)'}” from {_sender(hit)} on "
        f"{_day(hit.received_at)} [1] (of {what_searched(search, result.total_hits)})."
    )
    return "\n".join([text, *(_line(n, h) for n, h in enumerate(result.hits[1:], 2))])


def compose_digest(result: Result, search: dict[str, Any]) -> str:
    if not result.total_hits:
        return _nothing(result, search)
    window = (search.get("filters") or {}).get("window", "")
    lines = [f"{_plural(result.total_hits, 'email')} in the {window}."]
    categories = result.groups.get("categories") or []
    if categories:
        lines.append(
            "By category: " + ", ".join(f"{c.replace('_', ' ')} {n}" for c, n in categories) + "."
        )
    senders = result.groups.get("senders") or []
    if senders:
        lines.append(
            "Most frequent senders: " + ", ".join(f"{s} ({n})" for s, n in senders[:5]) + "."
        )
    if result.hits:
        lines.append("The most important:")
        lines += [_line(n, h) for n, h in enumerate(result.hits, 1)]
    return "\n".join(lines)


def compose_needs_reply(result: Result, search: dict[str, Any]) -> str:
    window = (search.get("filters") or {}).get("window", "")
    if not result.hits:
        return f"No conversation is waiting for your reply in the {window}."
    lines = [
        f"{_plural(result.count or 0, 'conversation')} in the {window} end with a message "
        f"you have not answered:"
    ]
    return "\n".join(lines + [_line(n, h) for n, h in enumerate(result.hits, 1)])


def compose_unsubscribe(result: Result, search: dict[str, Any]) -> str:
    if not result.hits:
        return "I found no mailing list you could unsubscribe from in the mail that is kept."
    lines = [f"{_plural(result.count or 0, 'mailing list')} you never wrote to:"]
    for n, hit in enumerate(result.hits, 1):
        facts = result.extra.get(hit.id, {})
        how = f", unsubscribe: {facts['unsubscribe']}" if facts.get("unsubscribe") else ""
        lines.append(
            f"{n}. {_sender(hit)}: {_plural(int(facts.get('emails', 1)), 'email')}{how} [{n}]"
        )
    return "\n".join(lines)


def compose_unsupported(result: Result, search: dict[str, Any]) -> str:
    return (
        "I can't do that: I only read your mail, I don't send, change or delete it. " + CAPABILITIES
    )


COMPOSERS: dict[Intent, Callable[[Result, dict[str, Any]], str]] = {
    Intent.FIND: compose_find,
    Intent.ATTACHMENTS: compose_find,
    Intent.COUNT: compose_count,
    Intent.LATEST: compose_latest,
    Intent.SUMMARIZE: compose_digest,
    Intent.NEEDS_REPLY: compose_needs_reply,
    Intent.UNSUBSCRIBE: compose_unsubscribe,
    Intent.UNSUPPORTED: compose_unsupported,
}


def notes(search: dict[str, Any]) -> list[str]:
    """What the search left out, said plainly so a short answer is not mistaken for a full one."""
    out = []
    ignored = search.get("ignored_terms") or []
    if ignored:
        shown = ", ".join(f"“{t}”" for t in ignored[:IGNORED_SHOWN])
        more = " …" if len(ignored) > IGNORED_SHOWN else ""
        out.append(
            f"I searched only the first {len(str(search.get('query', '')).split())} words; "
            f"{len(ignored)} more {'was' if len(ignored) == 1 else 'were'} ignored: {shown}{more}"
        )
    if search.get("window_capped_to") is not None:
        out.append(
            f"You asked for {search.get('requested_window_days')} days, but mail older than "
            f"{search['window_capped_to']} days is not kept."
        )
    if search.get("timed_out"):
        out.append("The search ran out of time, so more emails may match.")
    return out


def compose(result: Result, search: dict[str, Any]) -> str:
    """The answer's text for ``result``, with the notes on what the search left out."""
    return "\n".join([COMPOSERS[result.intent](result, search), *notes(search)])

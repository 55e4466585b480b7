"""Answer helpers every intent shares: a citation's shape and the answer's ``delta`` pieces.

The question itself is read by ``shared.assistant.understand`` and answered by
``shared.assistant.pipeline``. The plain keyword reading below (``parse_question``,
``compose_answer``) was the first assistant; ``make bench``'s chat benchmark still
uses it to send the same words to the search server alone, as its floor.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.index.search import EmailHit, SearchOutcome

log = logging.getLogger(__name__)

IGNORED_SHOWN = 5  # ignored words quoted in the answer (the search event lists them all)
MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 365

_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_WINDOW_PHRASE = re.compile(
    r"\b(?:in|within|during|over|from|for)?\s*(?:the\s+)?(?:last|past|previous)\s+"
    r"(?:(\d{1,3})\s+)?(day|week|month|year)s?\b",
    re.IGNORECASE,
)
_RELATIVE_WORDS = re.compile(r"\b(today|yesterday|this\s+week|this\s+month)\b", re.IGNORECASE)
_RELATIVE_DAYS = {"today": 1, "yesterday": 2, "this week": 7, "this month": 30}
_WORD = re.compile(r"[\w][\w.'@+-]*[\w]|\w", re.UNICODE)

# Words that shape a question but say nothing about which emails are meant.
FILLER_WORDS = frozenset(
    """
    a about all am an and any anyone anything are as at be been by can could did do does email
    emails for from get got give had has have how i if in inbox is it its last latest let list
    mail mails me message messages mine my of on or past please recent recently received sent
    show some tell than that the their them there these they this those to up was we were what
    when where which who whom why will with wrote written you your
    """.split()
)


@dataclass(frozen=True)
class ParsedQuestion:
    """A question reduced to what the search needs."""

    keywords: str
    window_days: int
    window_from_question: bool


def parse_question(question: str, default_window_days: int) -> ParsedQuestion:
    """Pull a time window and the meaningful words out of a question."""
    window = default_window_days
    from_question = False
    text = question
    match = _WINDOW_PHRASE.search(text)
    if match:
        count = int(match.group(1)) if match.group(1) else 1
        window = count * _UNIT_DAYS[match.group(2).lower()]
        from_question = True
        text = text[: match.start()] + " " + text[match.end() :]
    else:
        relative = _RELATIVE_WORDS.search(text)
        if relative:
            window = _RELATIVE_DAYS[" ".join(relative.group(1).lower().split())]
            from_question = True
            text = text[: relative.start()] + " " + text[relative.end() :]
    window = max(MIN_WINDOW_DAYS, min(MAX_WINDOW_DAYS, window))
    words = [w for w in _WORD.findall(text) if w.lower() not in FILLER_WORDS]
    return ParsedQuestion(" ".join(words), window, from_question)


def _sender(hit: EmailHit) -> str:
    if hit.from_name and hit.from_address:
        return f"{hit.from_name} <{hit.from_address}>"
    return hit.from_name or hit.from_address or "unknown sender"


def _day(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d")
    except ValueError:
        return iso[:10]


def compose_answer(outcome: SearchOutcome) -> str:
    """A short answer grounded only in the hits, naming what was searched."""
    looked_for = f"“{outcome.keywords}”" if outcome.keywords else "all your mail"
    window = f"the last {outcome.window_days} day{'s' if outcome.window_days != 1 else ''}"
    window += outcome.retention_note  # a capped window says why (retention by mail age)
    if outcome.total_hits == 0:
        return "\n".join(
            [f"I searched {looked_for} in {window} and nothing matched.", *_notes(outcome)]
        )
    noun = "email" if outcome.total_hits == 1 else "emails"
    lines = [f"I found {outcome.total_hits} {noun} for {looked_for} in {window}."]
    if outcome.total_hits > len(outcome.hits):
        lines[0] += f" The {len(outcome.hits)} most relevant:"
    for number, hit in enumerate(outcome.hits, start=1):
        subject = hit.subject or "(no subject)"
        lines.append(
            f"{number}. “{subject}” from {_sender(hit)}, {_day(hit.received_at)} [{number}]"
        )
    return "\n".join(lines + _notes(outcome))


def _notes(outcome: SearchOutcome) -> list[str]:
    """What the search left out, said plainly so a short answer is not mistaken for a full one."""
    notes = []
    if outcome.ignored_terms:
        count = len(outcome.ignored_terms)
        shown = ", ".join(f"“{term}”" for term in outcome.ignored_terms[:IGNORED_SHOWN])
        more = " …" if count > IGNORED_SHOWN else ""
        notes.append(
            f"I searched only the first {len(outcome.keywords.split())} words; "
            f"{count} more {'was' if count == 1 else 'were'} ignored: {shown}{more}"
        )
    if outcome.timed_out:
        notes.append("The search ran out of time, so more emails may match.")
    return notes


def citation(hit: EmailHit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "subject": hit.subject,
        "from": _sender(hit),
        "received_at": hit.received_at,
        "snippet": hit.snippet,
    }


# Words per ``delta``: big enough that an answer is a dozen events, not thirty-five
# (each costs Redis round trips), small enough to render as it arrives.
WORDS_PER_PIECE = 16


def answer_pieces(text: str, words_per_piece: int = WORDS_PER_PIECE) -> list[str]:
    """Split an answer into the small ``delta`` pieces a client renders as they arrive.

    Joining the pieces gives back the text exactly (spaces and newlines kept).
    """
    pieces: list[str] = []
    for line in text.splitlines(keepends=True):
        words = line.split(" ")
        for start in range(0, len(words), words_per_piece):
            chunk = " ".join(words[start : start + words_per_piece])
            if start + words_per_piece < len(words):
                chunk += " "
            pieces.append(chunk)
    return [piece for piece in pieces if piece]

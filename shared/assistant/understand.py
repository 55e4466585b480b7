"""From a question to a typed ``Understanding``: intent, senders, time, category, label, files.

Why: sending the person's words to one text query answered "summarize my week"
with *nothing matched "summarize week"*. Here each part of the question that
names a filter becomes that filter (shown back to the person in the answer's
``search`` block), its words are taken out, and only the words left are searched
as text, with mail synonyms ("offer" also finds "offer letter").

Reading is a few regular expressions and table look-ups (``vocabulary``,
``when``), a fraction of a millisecond per question.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from shared.assistant import vocabulary as v
from shared.assistant.when import TimeRange, read_time


class Intent(StrEnum):
    FIND = "find"
    COUNT = "count"
    SUMMARIZE = "summarize"
    LATEST = "latest"
    NEEDS_REPLY = "needs_reply"
    UNSUBSCRIBE = "unsubscribe"
    ATTACHMENTS = "attachments"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Understanding:
    """What the question asks for; every field maps to one bounded query part."""

    intent: Intent = Intent.FIND
    senders: tuple[str, ...] = ()
    time: TimeRange = field(default_factory=TimeRange)
    category: str | None = None
    label: str | None = None
    attachment: bool = False
    attachment_type: str | None = None
    unread: bool = False
    from_me: bool = False
    keywords: tuple[str, ...] = ()
    follow_up: bool = False  # refines the conversation's previous question
    older_than_previous: bool = False  # "older than that": before the previous window

    def to_dict(self) -> dict[str, Any]:
        """A JSON form, stored with the answer so a follow-up can refine it."""
        data = asdict(self)
        data["time"] = {
            "window_days": self.time.window_days,
            "start": self.time.start.isoformat() if self.time.start else None,
            "end": self.time.end.isoformat() if self.time.end else None,
            "phrase": self.time.phrase,
        }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Understanding:
        raw_time = data.get("time") or {}
        time = TimeRange(
            window_days=raw_time.get("window_days"),
            start=date.fromisoformat(raw_time["start"]) if raw_time.get("start") else None,
            end=date.fromisoformat(raw_time["end"]) if raw_time.get("end") else None,
            phrase=str(raw_time.get("phrase") or ""),
        )
        return cls(
            intent=Intent(data.get("intent") or Intent.FIND),
            senders=tuple(data.get("senders") or ()),
            time=time,
            category=data.get("category"),
            label=data.get("label"),
            attachment=bool(data.get("attachment")),
            attachment_type=data.get("attachment_type"),
            unread=bool(data.get("unread")),
            from_me=bool(data.get("from_me")),
            keywords=tuple(data.get("keywords") or ()),
        )


_WORD = re.compile(r"\w(?:[\w.'@+&-]*\w)?", re.UNICODE)
_ADDRESS = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DOMAIN = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|dev|ai|de|uk|fr|example)\b", re.I)

_INTENTS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        Intent.COUNT,
        re.compile(r"\bhow\s+many\b|\bnumber\s+of\b|\bcount\b|\bhow\s+much\s+mail", re.I),
    ),
    (
        Intent.SUMMARIZE,
        re.compile(
            r"\bsummar(?:y|i[sz]e)\b|\bdigest\b|\brecap\b|\boverview\b|\bwhat\s+happened\b"
            r"|\bcatch\s+me\s+up\b|\bbrief\s+me\b|\bwhat'?s\s+new\b",
            re.I,
        ),
    ),
    (
        Intent.NEEDS_REPLY,
        re.compile(
            r"\bneeds?\s+(?:a\s+|an\s+|my\s+)?(?:reply|replies|answer|response)\b|\bunanswered\b"
            r"|\b(?:not|never|n't|haven'?t|didn'?t)\s+(?:\w+\s+)?(?:yet\s+)?(?:replied|answered|responded)\b"
            r"|\bwaiting\s+(?:on|for)\s+(?:my|a)\s+(?:reply|answer|response)\b"
            r"|\bowe\s+(?:a\s+)?(?:reply|replies|answer)\b|\breply\s+to\s+still\b",
            re.I,
        ),
    ),
    (Intent.UNSUBSCRIBE, re.compile(r"\bunsubscrib\w*\b|\bopt\s+out\b|\bstop\s+getting\b", re.I)),
    (
        Intent.LATEST,
        re.compile(
            r"\bwhen\s+(?:did|was|has)\b|\blast\s+(?:wrote|write|written|emailed|sent|heard)\b"
            r"|\b(?:latest|newest|most\s+recent)\s+(?:email|mail|message)\s+from\b"
            r"|^\s*who\s+(?:sent|wrote|emailed)\b|\bheard\s+from\b",
            re.I,
        ),
    ),
)
_UNSUPPORTED = re.compile(
    r"^\s*(?:please\s+|can\s+you\s+|could\s+you\s+)?(?:send|write|draft|compose|reply\s+to|"
    r"delete|archive|forward|move|mark|schedule|book|cancel|translate|remind|buy|order|pay)\b"
    r"|\bweather\b|\bstock\s+price\b|\bjoke\b",
    re.I,
)
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|but|also|only|just|what\s+about|how\s+about|now|then|same|those|these|"
    r"the\s+ones|of\s+those|of\s+them|older|newer|earlier)\b",
    re.I,
)
_OLDER = re.compile(
    r"\b(?:older|earlier)\s+than\s+(?:that|those|this|these)\b|\bbefore\s+that\b", re.I
)
_WITH_ATTACHMENT = re.compile(
    r"\b(?:with|having|has|have|contain(?:s|ing)?)\s+(?:an?\s+|any\s+)?(?:attachments?|attached\s+files?|files?)\b"
    r"|\battachments?\b",
    re.I,
)
_UNREAD = re.compile(r"\bunread\b|\bnot\s+(?:yet\s+)?read\b|\bhaven'?t\s+read\b", re.I)
_FROM_ME = re.compile(r"\b(?:i|I)\s+(?:sent|wrote|emailed)\b|\bmy\s+sent\b|\bsent\s+by\s+me\b")
# Where a sender is named: "from X", "by X", "did X send/write", "X sent", "X's".
_SENDER_PATTERNS = (
    re.compile(r"\b(?:from|by)\s+(?P<who>[^,?!.;:]+)", re.I),
    re.compile(
        r"\b(?:did|has|have|does)\s+(?P<who>.+?)\s+(?:last\s+)?(?:send|sent|write|wrote|written|email|emailed|reach\w*)\b",
        re.I,
    ),
    re.compile(
        r"\b(?:the|any|an?)\s+\w+\s+(?P<who>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)\s+(?:sent|wrote|emailed|shared)\b"
    ),
    re.compile(r"^\s*(?P<who>[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)'s\s+(?:emails?|mail|messages?)\b"),
)
_NOT_SENDERS = frozenset(
    v.FILLER_WORDS | v.STRUCTURE_WORDS | set(v.CATEGORY_WORDS) | set(v.ATTACHMENT_TYPE_WORDS)
    | v.ATTACHMENT_WORDS | v.CATEGORY_COMPANIONS | set(v.LABEL_WORDS)
    | {"anyone", "anybody", "someone", "somebody", "people", "everyone", "nobody", "whom"}
)  # fmt: skip
MAX_SENDERS = 3
MAX_SENDER_WORDS = 3


def _sender_words(phrase: str) -> str:
    """The name at the start of ``phrase`` (up to three words that are not question words)."""
    words: list[str] = []
    for word in _WORD.findall(phrase):
        if v.canonical_word(word) in _NOT_SENDERS or word.casefold() in _NOT_SENDERS:
            break
        words.append(word)
        if len(words) == MAX_SENDER_WORDS:
            break
    return " ".join(words)


def _senders(text: str) -> tuple[list[str], str]:
    found: list[str] = []
    for address in _ADDRESS.findall(text):
        found.append(address.lower())
    text = _ADDRESS.sub(" ", text)
    for domain in _DOMAIN.findall(text):
        found.append(domain.lower())
    text = _DOMAIN.sub(" ", text)
    for pattern in _SENDER_PATTERNS:
        for match in pattern.finditer(text):
            name = _sender_words(match.group("who"))
            if name and name.casefold() not in (s.casefold() for s in found):
                found.append(name)
                start = match.start("who")
                text = text[:start] + text[start:].replace(name, " ", 1)
    return found[:MAX_SENDERS], text


def understand(question: str, now: datetime | None = None) -> Understanding:
    """Read ``question`` into filters and the words left to search."""
    now = now or datetime.now(UTC)
    text = " ".join(question.split())
    time, text = read_time(text, now)
    intent = next((i for i, pattern in _INTENTS if pattern.search(text)), Intent.FIND)
    if intent is Intent.FIND and _UNSUPPORTED.search(text):
        intent = Intent.UNSUPPORTED
    follow_up = bool(_FOLLOW_UP.search(text))
    older = bool(_OLDER.search(text))
    attachment = bool(_WITH_ATTACHMENT.search(text))
    unread = bool(_UNREAD.search(text))
    from_me = bool(_FROM_ME.search(text))
    senders, text = _senders(text)
    category = label = attachment_type = None
    keywords: list[str] = []
    for word in _WORD.findall(text):
        canonical = v.canonical_word(word)
        if canonical in v.CATEGORY_WORDS and category is None:
            category = v.CATEGORY_WORDS[canonical]
        elif canonical in v.ATTACHMENT_TYPE_WORDS and attachment_type is None:
            attachment_type = v.ATTACHMENT_TYPE_WORDS[canonical]
            attachment = True
        elif canonical in v.LABEL_WORDS and label is None:
            label = v.LABEL_WORDS[canonical]
        elif canonical in v.ATTACHMENT_WORDS or canonical in v.CATEGORY_COMPANIONS:
            continue
        elif canonical in v.FILLER_WORDS or canonical in v.STRUCTURE_WORDS:
            continue
        elif canonical in v.CATEGORY_WORDS or canonical in v.ATTACHMENT_TYPE_WORDS:
            continue  # a second category word ("personal emails from friends")
        elif word.casefold() not in (k.casefold() for k in keywords):
            keywords.append(word)
    if intent is Intent.FIND and attachment_type and category is None:
        intent = Intent.ATTACHMENTS  # "the PDF Priya sent": the file is what is asked for
    return Understanding(
        intent=intent,
        senders=tuple(senders),
        time=time,
        category=category,
        label=label,
        attachment=attachment,
        attachment_type=attachment_type,
        unread=unread,
        from_me=from_me,
        keywords=tuple(keywords),
        follow_up=follow_up or older,
        older_than_previous=older,
    )


def refine(previous: Understanding, new: Understanding) -> Understanding:
    """A follow-up's reading merged into the previous question's: what it names replaces.

    "and from Acme?" keeps the previous category and window and sets the sender;
    "only the ones with attachments" adds the attachment filter; "older than that"
    moves the window before the previous one.
    """
    merged = replace(
        previous,
        intent=new.intent if new.intent is not Intent.FIND else previous.intent,
        senders=new.senders or previous.senders,
        category=new.category or previous.category,
        label=new.label or previous.label,
        attachment=new.attachment or previous.attachment,
        attachment_type=new.attachment_type or previous.attachment_type,
        unread=new.unread or previous.unread,
        from_me=new.from_me or previous.from_me,
        keywords=new.keywords or previous.keywords,
        time=new.time if new.time.named else previous.time,
        follow_up=True,
        older_than_previous=False,
    )
    if new.older_than_previous:
        merged = replace(merged, older_than_previous=True)
    return merged


def is_follow_up(new: Understanding) -> bool:
    """Whether a question refines the previous one rather than asking afresh.

    An explicit opener ("and", "only", "what about", "older than that") says so;
    a question that names nothing to look for (no category, sender, words) does too.
    """
    if new.follow_up:
        return True
    names_something = new.category or new.senders or new.keywords or new.label
    return (
        not names_something
        and not new.time.named
        and new.intent is Intent.FIND
        and (new.attachment or new.unread)
    )

"""Time in a question: "last week", "since March", "in October", "between the 3rd and the 10th".

Why hand-written patterns rather than a date-parsing library: a question holds
at most one or two time phrases from a small, well-known set, and the whole
reading of a question must cost well under a millisecond (the assistant's own
time budget is 20 ms at p95); general date parsers scan every word against many
languages and formats and cost tens of milliseconds. Each phrase becomes either
a rolling window ("the last 60 days", searched as ``now-60d``) or an absolute
range of UTC days, and is removed from the text so its words are not searched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 365

_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "couple of": 2, "few": 3,
}  # fmt: skip
_MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
         ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
         ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
         ("december", "dec")],
        start=1,
    )
    for name in names
}  # fmt: skip
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_COUNT = r"(?P<count>\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"
_WINDOW = re.compile(
    r"\b(?:(?:in|within|during|over|from|for)\s+)?(?:the\s+)?(?:last|past|previous)\s+"
    + _COUNT
    + r"?\s*(?P<unit>day|week|month|year)s?\b",
    re.IGNORECASE,
)
_AGO = re.compile(r"\b" + _COUNT + r"\s+(?P<unit>day|week|month|year)s?\s+ago\b", re.I)
_RELATIVE = re.compile(
    r"\b(?P<word>today|yesterday|this\s+(?:week|month|year))\b|\bsince\s+yesterday\b", re.I
)
_DAY = r"(?:the\s+)?(?P<{0}>\d{{1,2}})(?:st|nd|rd|th)?"
_BETWEEN = re.compile(
    r"\bbetween\s+" + _DAY.format("d1") + r"(?:\s+of\s+" + _MONTH.replace("month", "m1") + r")?"
    r"\s+and\s+" + _DAY.format("d2") + r"(?:\s+of\s+" + _MONTH.replace("month", "m2") + r")?",
    re.IGNORECASE,
)
_SINCE = re.compile(
    r"\bsince\s+(?:(?P<iso>\d{4}-\d{2}-\d{2})|(?:the\s+)?(?P<day>\d{1,2})?(?:st|nd|rd|th)?\s*"
    r"(?:of\s+)?" + _MONTH + r"(?:\s+(?P<day2>\d{1,2})(?:st|nd|rd|th)?)?)",
    re.IGNORECASE,
)
_IN_MONTH = re.compile(r"\b(?:in|during|from)\s+(?:early\s+|late\s+)?" + _MONTH, re.IGNORECASE)


@dataclass(frozen=True)
class TimeRange:
    """What a question said about time; ``None`` everywhere when it said nothing."""

    window_days: int | None = None  # a rolling window: the last N days
    start: date | None = None  # an absolute range of UTC days, end exclusive
    end: date | None = None
    phrase: str = ""  # the words that said it, as the answer repeats them

    @property
    def named(self) -> bool:
        return self.window_days is not None or self.start is not None


def _count(text: str | None) -> int:
    if not text:
        return 1
    return int(text) if text.isdigit() else _NUMBER_WORDS[text.lower()]


def clamp_window(days: int) -> int:
    return max(MIN_WINDOW_DAYS, min(MAX_WINDOW_DAYS, days))


def _month_start(month: int, today: date) -> date:
    """The most recent first of ``month`` not after today (October in December: this year's)."""
    year = today.year if month <= today.month else today.year - 1
    return date(year, month, 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _safe_day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def read_time(text: str, now: datetime | None = None) -> tuple[TimeRange, str]:
    """The question's time phrase, and the text without it."""
    now = now or datetime.now(UTC)
    today = now.date()

    def cut(match: re.Match[str]) -> str:
        return text[: match.start()] + " " + text[match.end() :]

    if match := _WINDOW.search(text):
        days = _count(match.group("count")) * _UNIT_DAYS[match.group("unit").lower()]
        return TimeRange(clamp_window(days), phrase=match.group(0).strip()), cut(match)
    if match := _AGO.search(text):
        days = _count(match.group("count")) * _UNIT_DAYS[match.group("unit").lower()]
        return TimeRange(clamp_window(days + 1), phrase=match.group(0).strip()), cut(match)
    if match := _BETWEEN.search(text):
        first, second = int(match.group("d1")), int(match.group("d2"))
        m1 = _MONTHS[match.group("m1").lower()] if match.group("m1") else None
        m2 = _MONTHS[match.group("m2").lower()] if match.group("m2") else m1
        month_start = _month_start(m2 or today.month, today)
        if m2 is None and first > today.day:  # "between the 20th and the 25th" on the 3rd
            month_start = _month_start((today.month - 2) % 12 + 1, today)
        start = _safe_day(month_start.year, m1 or month_start.month, first)
        end = _safe_day(month_start.year, month_start.month, second)
        if start and end and start <= end:
            return (
                TimeRange(start=start, end=end + timedelta(days=1), phrase=match.group(0)),
                cut(match),
            )
    if match := _SINCE.search(text):
        if match.group("iso"):
            start = date.fromisoformat(match.group("iso"))
        else:
            month = _MONTHS[match.group("month").lower()]
            base = _month_start(month, today)
            start = _safe_day(base.year, month, int(match.group("day") or match.group("day2") or 1))
            start = start or base
        return TimeRange(start=start, phrase=match.group(0).strip()), cut(match)
    if match := _IN_MONTH.search(text):
        start = _month_start(_MONTHS[match.group("month").lower()], today)
        return TimeRange(start=start, end=_next_month(start), phrase=match.group(0)), cut(match)
    if match := _RELATIVE.search(text):
        word = " ".join((match.group("word") or "yesterday").lower().split())
        if word == "today":
            return TimeRange(start=today, phrase="today"), cut(match)
        if word == "yesterday":
            yesterday = today - timedelta(days=1)
            if "since" in match.group(0).lower():
                return TimeRange(start=yesterday, phrase="since yesterday"), cut(match)
            return TimeRange(start=yesterday, end=today, phrase="yesterday"), cut(match)
        days = {"this week": 7, "this month": 30, "this year": 365}[word]
        return TimeRange(days, phrase=word), cut(match)
    return TimeRange(), text


def days_back(time_range: TimeRange, now: datetime) -> int | None:
    """How many days back the range reaches (for the answer's ``window_days``)."""
    if time_range.window_days is not None:
        return time_range.window_days
    if time_range.start is not None:
        return clamp_window((now.date() - time_range.start).days + 1)
    return None

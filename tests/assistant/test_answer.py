"""The assistant's question parsing and answer wording (no servers needed)."""

from __future__ import annotations

import pytest

from shared.assistant.answer import compose_answer, parse_question
from shared.core.metrics import window_bucket
from shared.index.search import EmailHit, SearchOutcome


@pytest.mark.parametrize(
    ("question", "keywords", "window"),
    [
        ("interviews in the last 30 days", "interviews", 30),
        ("which recruiters wrote to me?", "recruiters", 30),
        ("Which recruiters wrote to me in the past 2 weeks", "recruiters", 14),
        ("offers over the last month", "offers", 30),
        ("receipts from last week", "receipts", 7),
        ("what did I get today", "", 1),
        ("show me emails from the previous 3 months about Contoso", "Contoso", 90),
        ("invoices in the last 5 years", "invoices", 365),
        ("Zoë's photos", "Zoë's photos", 30),
    ],
)
def test_parse_question(question: str, keywords: str, window: int) -> None:
    parsed = parse_question(question, 30)
    assert parsed.keywords == keywords
    assert parsed.window_days == window


def test_default_window_is_kept_without_a_phrase() -> None:
    parsed = parse_question("offer letter", 60)
    assert parsed.window_days == 60 and not parsed.window_from_question


def hit(number: int) -> EmailHit:
    return EmailHit(
        id=f"u:{number}",
        subject=f"Subject {number}",
        from_address=f"p{number}@example.com",
        from_name=f"Person {number}",
        received_at="2026-11-20T10:00:00+00:00",
        snippet="...",
    )


def test_answer_cites_every_hit_and_says_what_was_searched() -> None:
    answer = compose_answer(SearchOutcome("interview", 30, 12, [hit(1), hit(2)], 0.01))
    assert answer.startswith(
        "I found 12 emails for “interview” in the last 30 days. The 2 most relevant:"
    )
    assert "1. “Subject 1” from Person 1 <p1@example.com>, 2026-11-20 [1]" in answer
    assert "[2]" in answer


def test_answer_without_hits() -> None:
    answer = compose_answer(SearchOutcome("quasar", 7, 0, [], 0.01))
    assert answer == "I searched “quasar” in the last 7 days and nothing matched."
    assert "all your mail" in compose_answer(SearchOutcome("", 1, 0, [], 0.01))


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (1, "7"),
        (7, "7"),
        (8, "30"),
        (30, "30"),
        (45, "60"),
        (60, "60"),
        (61, "90+"),
        (90, "90+"),
        (365, "90+"),
    ],
)
def test_window_buckets(days: int, bucket: str) -> None:
    assert window_bucket(days) == bucket

"""Reading a question: intent, senders, time, category, label, attachments, the words left."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.assistant.understand import Intent, Understanding, is_follow_up, refine, understand

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("interviews in the last 30 days", Intent.FIND),
        ("how many rejections this month?", Intent.COUNT),
        ("summarize my week", Intent.SUMMARIZE),
        ("what happened in my inbox this week?", Intent.SUMMARIZE),
        ("when did Acme last write?", Intent.LATEST),
        ("who sent the invoice?", Intent.LATEST),
        ("which emails still need a reply from me?", Intent.NEEDS_REPLY),
        ("what have I not replied to?", Intent.NEEDS_REPLY),
        ("which newsletters could I unsubscribe from?", Intent.UNSUBSCRIBE),
        ("the PDF Priya sent", Intent.ATTACHMENTS),
        ("send an email to Bob saying hi", Intent.UNSUPPORTED),
        ("delete all newsletters", Intent.UNSUPPORTED),
    ],
)
def test_the_intent_is_read_from_the_question(question: str, intent: Intent) -> None:
    assert understand(question, NOW).intent is intent


def test_summarize_my_week_searches_no_words() -> None:
    """The issue's first complaint: "summarize my week" searched the text "summarize week"."""
    understood = understand("summarize my week", NOW)
    assert understood.keywords == () and understood.intent is Intent.SUMMARIZE


@pytest.mark.parametrize(
    ("question", "category"),
    [
        ("did anyone send me an offer?", "offer"),
        ("which recruiters wrote to me last month?", "recruiter_outreach"),
        ("rejectoins in the last 30 days", "rejection"),  # a swapped pair of letters
        ("intervews", "interview"),
        ("reciepts from the past 60 days", "receipt"),
        ("personal emails from freinds", "personal"),
    ],
)
def test_categories_are_filters_even_misspelt(question: str, category: str) -> None:
    understood = understand(question, NOW)
    assert understood.category == category
    assert understood.keywords == ()  # the category's words are not searched as text
    assert understood.senders == ()  # "from friends" names a category, not a sender


@pytest.mark.parametrize(
    ("question", "senders"),
    [
        ("emails from Acme", ("Acme",)),
        ("what did José Álvarez send me in the last 90 days?", ("José Álvarez",)),
        ("mail from priya.raman@hirewell.example", ("priya.raman@hirewell.example",)),
        ("anything from northwind.example?", ("northwind.example",)),
        ("when did Woodgrove Bank last write to me?", ("Woodgrove Bank",)),
        ("the PDF Priya sent me", ("Priya",)),
    ],
)
def test_senders_by_name_address_or_domain(question: str, senders: tuple[str, ...]) -> None:
    assert understand(question, NOW).senders == senders


@pytest.mark.parametrize(
    ("question", "window", "start", "end"),
    [
        ("interviews in the last 60 days", 60, None, None),
        ("offers over the past 2 weeks", 14, None, None),
        ("receipts last week", 7, None, None),
        ("mail since March", None, date(2026, 3, 1), None),
        ("newsletters in October", None, date(2026, 10, 1), date(2026, 11, 1)),
        ("yesterday", None, date(2026, 11, 30), date(2026, 12, 1)),
        ("between the 3rd and the 10th", None, date(2026, 11, 3), date(2026, 11, 11)),
    ],
)
def test_time_phrases(
    question: str, window: int | None, start: date | None, end: date | None
) -> None:
    time = understand(question, NOW).time
    assert (time.window_days, time.start, time.end) == (window, start, end)


def test_attachments_unread_labels_and_keywords_with_synonyms() -> None:
    understood = understand("unread starred mail with attachments about the offsite budget", NOW)
    assert understood.unread and understood.attachment and understood.label == "Starred"
    assert understood.keywords == ("offsite", "budget")


def test_follow_ups_refine_the_previous_question() -> None:
    base = understand("interviews in the last 90 days", NOW)
    later = understand("and from Northwind?", NOW)
    assert is_follow_up(later)
    merged = refine(base, later)
    assert merged.category == "interview" and merged.senders == ("Northwind",)
    assert merged.time.window_days == 90 and merged.follow_up
    files = refine(base, understand("only the ones with attachments", NOW))
    assert files.attachment and files.category == "interview"
    older = refine(base, understand("older than that", NOW))
    assert older.older_than_previous
    assert not is_follow_up(understand("receipts in the last 7 days", NOW))


def test_the_understanding_round_trips_through_json() -> None:
    understood = understand("unread PDFs from Priya between the 3rd and the 10th", NOW)
    assert Understanding.from_dict(understood.to_dict()) == Understanding.from_dict(
        Understanding.from_dict(understood.to_dict()).to_dict()
    )
    again = Understanding.from_dict(understood.to_dict())
    assert again.time == understood.time and again.senders == understood.senders
    assert again.attachment_type == "pdf" and again.unread

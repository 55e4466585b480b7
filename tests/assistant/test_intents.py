"""The intents against a real noida-db: filters, exact counts, relaxation, at most 3 requests."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.assistant.pipeline import answer_question
from shared.core.clients import get_elasticsearch
from shared.index.writer import import_mbox

pytestmark = pytest.mark.timeout(60)
OWNER_ADDRESS = "intents-owner@example.com"


@pytest.fixture(scope="module")
def owner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    owner_id = "u_intents_" + secrets.token_hex(4)
    folder = Path(tmp_path_factory.mktemp("intents"))
    write_mbox(
        folder / "m.mbox", owner_address=OWNER_ADDRESS, today=date.today(), count=400, days=89
    )
    es = get_elasticsearch(settings)
    import_mbox(
        es, settings, owner_id, folder / "m.mbox", refresh=True, owner_addresses=[OWNER_ADDRESS]
    )
    return owner_id


def ask(settings, owner_id: str, question: str, window_days: int = 30):  # type: ignore[no-untyped-def]
    return answer_question(
        get_elasticsearch(settings),
        None,  # type: ignore[arg-type]  # no conversation: no follow-up to read
        settings,
        owner_id=owner_id,
        conversation_id="c_none",
        question=question,
        question_event_id="",
        window_days=window_days,
    )


def _count(settings, query: dict) -> int:  # type: ignore[type-arg,no-untyped-def]
    es = get_elasticsearch(settings)
    return int(es.count(index=settings.index_alias, query=query)["count"])


def test_a_count_is_exact_from_the_index_and_shows_its_filters(settings, owner) -> None:
    answered = ask(settings, owner, "how many recruiter emails did I get in the last 60 days?")
    expected = _count(
        settings,
        {"bool": {"filter": [
            {"term": {"owner_id": owner}}, {"term": {"category": "recruiter_outreach"}},
            {"range": {"received_at": {"gte": "now-60d"}}},
        ]}},
    )  # fmt: skip
    search = answered.search
    assert search["intent"] == "count" and search["count"] == expected > 0
    assert search["filters"]["category"] == "recruiter_outreach"
    assert search["filters"]["window"] == "last 60 days" and search["window_days"] == 60
    assert answered.answer.startswith(f"{expected} recruiter outreach emails in the last 60 days")


def test_summarize_my_week_groups_by_category_and_cites_the_important_mail(settings, owner) -> None:
    answered = ask(settings, owner, "summarize my week")
    assert answered.search["intent"] == "summarize" and answered.search["query"] == ""
    assert answered.search["window_days"] == 7
    assert "By category:" in answered.answer
    assert answered.search_requests == 1  # overview and key mail in one msearch


def test_a_sender_filter_keeps_to_that_sender(settings, owner) -> None:
    answered = ask(settings, owner, "emails from Northwind in the last 90 days")
    assert answered.search["filters"]["from"] == ["Northwind"]
    assert answered.citations
    assert all("northwind" in c["from"].lower() for c in answered.citations)


def test_a_misspelt_word_is_found_by_relaxing_and_the_answer_says_how(settings, owner) -> None:
    answered = ask(settings, owner, "anything about sourdough loaff?", window_days=90)
    assert answered.citations, answered.answer
    assert "fuzzy" in answered.search["relaxed"]
    assert "misspellings" in answered.answer
    assert answered.search_requests == 2  # the strict query, then one msearch of every step


def test_nothing_is_said_only_after_every_step_and_names_what_was_tried(settings, owner) -> None:
    answered = ask(settings, owner, "emails from Globex about the merger contract")
    assert answered.citations == [] and answered.search["total_hits"] == 0
    assert answered.answer.startswith("I found no emails about") and "Globex" in answered.answer
    assert "leaving out one of the words" in answered.answer
    assert answered.search_requests <= 3


def test_a_named_window_is_kept_but_the_answer_counts_the_wider_one(settings, owner) -> None:
    answered = ask(settings, owner, "job offers in the last 1 day")
    if answered.citations:
        pytest.skip("the generated mailbox happens to hold an offer from today")
    assert answered.search["window_days"] == 1
    wider = _count(
        settings,
        {"bool": {"filter": [{"term": {"owner_id": owner}}, {"term": {"category": "offer"}}]}},
    )
    if wider:
        assert "wider window" in answered.answer and str(wider) in answered.answer


def test_needs_reply_lists_threads_whose_last_message_is_someone_elses(settings, owner) -> None:
    answered = ask(settings, owner, "which emails still need a reply from me?")
    assert answered.search["intent"] == "needs_reply" and answered.citations
    assert all(OWNER_ADDRESS not in c["from"] for c in answered.citations)


def test_unsubscribe_candidates_come_with_their_link(settings, owner) -> None:
    answered = ask(settings, owner, "which newsletters could I unsubscribe from?")
    assert answered.search["intent"] == "unsubscribe" and answered.citations
    assert "unsubscribe: https://" in answered.answer


def test_the_pdf_someone_sent(settings, owner) -> None:
    answered = ask(settings, owner, "the PDF Priya sent me")
    assert answered.search["intent"] == "attachments"
    assert answered.search["filters"]["attachment"] == "pdf"
    for cited in answered.citations:
        assert "priya" in cited["from"].lower()


def test_a_question_it_cannot_serve_searches_nothing_and_says_what_it_can(settings, owner) -> None:
    answered = ask(settings, owner, "send an email to Priya saying yes")
    assert answered.search["intent"] == "unsupported" and answered.search_requests == 0
    assert answered.citations == [] and "I can search your mail" in answered.answer


@pytest.mark.parametrize(
    "question",
    [
        "interviews in the last 30 days",
        "anything about the car insurance renewal policy?",
        "what did Zoë Müller send me?",
        "summarize the last 30 days",
        "how many emails did Hooli send me?",
        "when did Contoso last write to me?",
    ],
)
def test_at_most_three_search_requests_per_question(settings, owner, question: str) -> None:
    assert 1 <= ask(settings, owner, question).search_requests <= 3

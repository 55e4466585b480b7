"""POST /api/chat end to end: Flask app → Redis broker → real Celery worker → Elasticsearch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import auth_header, user_with_mailbox
from tests.faults import blackhole, isolated  # noqa: F401


@pytest.fixture(scope="module")
def demo_user(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A user with the demo mailbox imported."""
    folder = Path(tmp_path_factory.mktemp("demo"))
    return user_with_mailbox(settings, folder, name="demo", count=2000, password="demo-pass-123")


def ask(client, settings, user, **body):  # type: ignore[no-untyped-def]
    return client.post("/api/chat", json=body, headers=auth_header(settings, user))


def test_interviews_in_last_30_days_cites_recent_interview_mail(
    client, settings, demo_user, celery_worker
) -> None:
    response = ask(client, settings, demo_user, q="interviews in the last 30 days")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["search"]["window_days"] == 30
    # "interviews" is the category filter (stored at ingest), not a word to look for.
    assert body["search"]["query"] == "" and body["search"]["filters"]["category"] == "interview"
    assert body["search"]["intent"] == "find" and body["search"]["relaxed"] == []
    assert body["search"]["total_hits"] >= 10
    assert body["conversation_id"].startswith("c_")
    citations = body["citations"]
    assert len(citations) == settings.search_result_size
    cutoff = datetime.now(UTC) - timedelta(days=30, minutes=5)
    for citation in citations:
        assert citation["id"].startswith(f"{demo_user.id}:")
        assert datetime.fromisoformat(citation["received_at"]) >= cutoff
        text = (citation["subject"] + " " + citation["snippet"]).lower()
        assert "interview" in text, citation
    assert citations[0]["subject"] in body["answer"]
    assert "last 30 days" in body["answer"]


def test_window_changes_what_is_found(client, settings, demo_user, celery_worker) -> None:
    week = ask(client, settings, demo_user, q="interview", window_days=7).get_json()
    quarter = ask(client, settings, demo_user, q="interview", window_days=90).get_json()
    assert week["search"]["window_days"] == 7 and quarter["search"]["window_days"] == 90
    assert quarter["search"]["total_hits"] > week["search"]["total_hits"]


def test_no_hits_says_what_was_searched(client, settings, demo_user, celery_worker) -> None:
    body = ask(client, settings, demo_user, q="zyxwvut quasar", window_days=60).get_json()
    assert body["search"]["total_hits"] == 0
    assert body["citations"] == []
    assert body["answer"].startswith("I found no emails about “zyxwvut quasar”"), body["answer"]
    # Every relaxation step was tried before saying so, and the answer names them.
    assert "allowing for misspellings" in body["answer"]
    assert "leaving out one of the words" in body["answer"]


def test_seed_clients_messages_shape_is_accepted(
    client, settings, demo_user, celery_worker
) -> None:
    body = ask(
        client,
        settings,
        demo_user,
        messages=[
            {"role": "user", "content": "receipts"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": "which recruiters wrote to me in the past 2 weeks"},
        ],
    ).get_json()
    assert body["search"]["window_days"] == 14
    assert body["search"]["query"] == "recruiters"
    assert body["search"]["total_hits"] > 0


def test_conversation_is_kept_and_owned(
    client, settings, demo_user, make_user, celery_worker
) -> None:
    first = ask(client, settings, demo_user, q="offer").get_json()
    again = ask(
        client, settings, demo_user, q="offer letter", conversation_id=first["conversation_id"]
    )
    assert again.status_code == 200
    assert again.get_json()["conversation_id"] == first["conversation_id"]
    stranger, _ = make_user("stranger")
    stolen = ask(client, settings, stranger, q="offer", conversation_id=first["conversation_id"])
    assert stolen.status_code == 404
    assert stolen.get_json()["error"]["field"] == "conversation_id"


def test_metrics_count_the_chat(client, settings, demo_user, celery_worker) -> None:
    ask(client, settings, demo_user, q="order confirmed", window_days=45)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'assistant_tool_queries_total{has_hits="true",window_bucket="60"}' in text
    assert "assistant_elasticsearch_duration_seconds_count" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"q": "   "}, "q"),
        ({}, "q"),
        ({"q": 5}, "q"),
        ({"q": "x", "window_days": 0}, "window_days"),
        ({"q": "x", "window_days": 366}, "window_days"),
        ({"q": "x", "window_days": "thirty"}, "window_days"),
        ({"q": "x", "window_days": True}, "window_days"),
        ({"q": "x", "conversation_id": "../etc"}, "conversation_id"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"messages": "hi"}, "messages"),
    ],
)
def test_invalid_requests_name_the_field(client, settings, make_user, body, field) -> None:
    user, _ = make_user()
    response = ask(client, settings, user, **body)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_non_json_body_is_a_400(client, settings, make_user) -> None:
    user, _ = make_user()
    response = client.post("/api/chat", data="q=hi", headers=auth_header(settings, user))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "body"


def test_oversized_body_is_a_413(client, settings, make_user) -> None:
    user, _ = make_user()
    response = client.post(
        "/api/chat",
        data=b'{"q": "' + b"a" * (settings.max_request_bytes + 10) + b'"}',
        headers={**auth_header(settings, user), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"]


def test_repeating_a_client_message_id_returns_the_first_answer(
    client, settings, demo_user, celery_worker
) -> None:
    """Issue 10 item 14: without ``conversation_id`` a repeat asked again, in a new conversation."""
    import secrets

    cmid = "m_" + secrets.token_hex(6)
    first = ask(client, settings, demo_user, q="interviews", client_message_id=cmid)
    again = ask(client, settings, demo_user, q="interviews", client_message_id=cmid)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    listed = client.get("/api/conversations", headers=auth_header(settings, demo_user)).get_json()
    ids = [c["id"] for c in listed["conversations"]]
    assert ids.count(first.get_json()["conversation_id"]) == 1
    events = client.get(
        f"/api/conversations/{first.get_json()['conversation_id']}/events",
        headers=auth_header(settings, demo_user),
    ).get_json()["events"]
    assert [e["type"] for e in events].count("question") == 1
    assert [e["type"] for e in events].count("done") == 1


@pytest.mark.timeout(60)
def test_an_answer_ended_by_a_retryable_error_is_a_503(isolated, blackhole) -> None:  # noqa: F811
    """A hung search ends the answer with search_timeout: the JSON client is told to retry."""
    from shared.identity.users import create_user
    from web import create_app

    iso = isolated(7, elasticsearch_url=blackhole.url, search_timeout_seconds=0.3)
    iso.start_worker("chat-503-worker")
    user = create_user(iso.redis, iso.settings, "retryable@example.com", "retryable-pass")
    app = create_app(iso.settings)
    try:
        response = app.test_client().post(
            "/api/chat", json={"q": "interview"}, headers=auth_header(iso.settings, user)
        )
    finally:
        app.extensions["mailchat"].relay.stop()
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"]["code"] == "search_timeout"
    assert response.headers["Retry-After"]

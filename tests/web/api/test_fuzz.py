"""Hypothesis over what people (and attackers) type: never a 5xx, never somebody else's mail.

Questions mix Lucene syntax, JSON fragments, wildcards, regexes, lone
surrogates and 10,000-character texts with the other user's id and canary
word; they go through ``POST /api/chat`` to a real worker, Redis and
noida-db. Event ids (``after``, ``Last-Event-ID``) are fuzzed on the replay
and the stream. Bob owns a canary email full of common words: whatever
Alice asks, it is never cited, quoted, replayed or opened for her.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from shared.core.clients import get_elasticsearch, get_redis
from shared.identity.users import create_user
from shared.index.writer import import_mbox
from shared.realtime.conversations import claim_conversation
from tests.conftest import auth_header, user_with_mailbox
from tests.index.test_writer import write_raw_mbox

pytestmark = pytest.mark.timeout(300)

CANARY = f"canary{secrets.token_hex(6)}"  # a word of the canary email the fuzzer types
SECRET = f"secret{secrets.token_hex(6)}"  # only in the canary email: never typed, never shown
FUZZ = fuzz_settings(
    deadline=None,
    database=None,
    derandomize=True,  # the same inputs every run: a failure is reproducible
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="module")
def people(settings, celery_worker, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Alice with a mailbox; Bob with one canary email and a conversation of his own."""
    folder = Path(tmp_path_factory.mktemp("fuzz"))
    alice = user_with_mailbox(settings, folder, name="fuzz-alice", count=40)
    r = get_redis(settings)
    bob = create_user(r, settings, f"fuzz-bob-{secrets.token_hex(4)}@example.com", "bob-pw-123")
    sent = format_datetime(datetime.now(UTC) - timedelta(days=1))
    canary = (
        f"From: Recruiter <hr@example.com>\nTo: {bob.email}\nSubject: Interview {CANARY} {SECRET}\n"
        f"Date: {sent}\nMessage-ID: <{CANARY}@example.com>\n\n"
        f"Interview meeting invoice project update report {CANARY} for Bob only: {SECRET}.\n"
    ).encode()
    write_raw_mbox(folder / "bob.mbox", [canary])
    import_mbox(get_elasticsearch(settings), settings, bob.id, folder / "bob.mbox", refresh=True)
    bob_conversation = claim_conversation(r, settings, bob.id, None)
    return alice, bob, bob_conversation


def _fragments(other: str) -> list[str]:
    return [
        # Lucene query syntax
        "*:*",
        "owner_id:*",
        f"owner_id:{other}",
        f"_id:{other}*",
        "_exists_:owner_id",
        "AND",
        "OR",
        "NOT",
        "&&",
        "||",
        "!",
        "+",
        "-",
        "(",
        ")",
        '"',
        "\\",
        "~2",
        "^9",
        "[* TO *]",
        "{a TO z}",
        "subject:interview",
        "received_at:[now-10y TO now]",
        # JSON, as if it could reach the query body
        '{"match_all": {}}',
        f'"}}}}, {{"term": {{"owner_id": "{other}"}}}}',
        "[",
        "]",
        "{",
        "}",
        '{"bool":{"should":[{"match_all":{}}]}}',
        "null",
        "true",
        "1e309",
        # wildcards and regexes
        "*",
        "?",
        "inter*",
        "*view",
        "te?t",
        "/.*/",
        "/[a-z]+/",
        "(a+)+$",
        ".*",
        "[^]",
        # the other user's things, and words of the canary
        other,
        CANARY,
        "interview",
        "invoice",
        "meeting",
        "Bob",
        "hr@example.com",
        "in the last 2 weeks",
        "last 365 days",
    ]


def questions(other: str) -> st.SearchStrategy[str]:
    fragment = st.sampled_from(_fragments(other)) | st.text(max_size=12)
    return st.one_of(
        st.lists(fragment, min_size=1, max_size=8).map(" ".join),
        st.text(min_size=1, max_size=60),
        st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
        st.lists(fragment, min_size=1, max_size=4).map(lambda parts: " ".join(parts) * 500),
    )


def _never_the_canary(body: bytes, alice_id: str) -> dict[str, Any] | None:
    assert SECRET.encode() not in body
    if not body:
        return None
    payload = json.loads(body)
    for citation in payload.get("citations", []) if isinstance(payload, dict) else []:
        assert citation["id"].startswith(f"{alice_id}:"), citation
    return payload


def test_questions_never_500_nor_cross_owners(app, settings, people) -> None:
    alice, bob, _ = people
    client = app.test_client()
    headers = auth_header(settings, alice)
    seen: dict[int, int] = {}

    @fuzz_settings(FUZZ, max_examples=80)
    @given(question=questions(bob.id))
    @example(question="x" * 10_000)
    @example(question="interview \ud800 invoice")
    @example(question=f"{CANARY} OR owner_id:{bob.id} OR *:*")
    def ask(question: str) -> None:
        # json.dumps escapes a lone surrogate as \\ud800, as a browser's JSON.stringify does.
        response = client.post(
            "/api/chat",
            data=json.dumps({"q": question, "window_days": 365}),
            content_type="application/json",
            headers=headers,
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.get_data()[:300])
        payload = _never_the_canary(response.get_data(), alice.id)
        if response.status_code != 200:
            assert payload is not None and set(payload["error"]) == {"code", "message", "field"}

    ask()
    assert seen.get(200, 0) >= 10 and seen.get(400, 0) >= 3, seen  # both kinds were reached
    print(f"fuzz: chat answers by status {seen}")


def test_the_canary_is_found_by_its_owner(app, settings, people) -> None:
    """The control: the canary is searchable, so Alice never finding it means something."""
    _, bob, _ = people
    response = app.test_client().post(
        "/api/chat",
        json={"q": f"interview {CANARY}", "window_days": 365},
        headers=auth_header(settings, bob),
    )
    assert response.status_code == 200
    assert any(SECRET in c["subject"] for c in response.get_json()["citations"])


def event_ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.from_regex(r"\A[0-9]{1,25}(-[0-9]{0,25})?\Z"),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=30),
        st.sampled_from(["²", "0-²", "１２３", "0x10", "1e5", "-0", "0-", "-1-1", "+1", " 1"]),
    )


def test_event_ids_never_500_nor_open_anothers_conversation(app, settings, people) -> None:
    alice, _, bob_conversation = people
    r = get_redis(settings)
    mine = claim_conversation(r, settings, alice.id, None)
    client = app.test_client()
    headers = auth_header(settings, alice)
    seen: dict[int, int] = {}

    @fuzz_settings(FUZZ, max_examples=150)
    @given(after=event_ids())
    def replay(after: str) -> None:
        for conversation in (mine, bob_conversation):
            response = client.get(
                f"/api/conversations/{conversation}/events",
                query_string={"after": after},
                headers=headers,
            )
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (after, response.get_data()[:300])
            if conversation == bob_conversation:
                assert response.status_code in (400, 404), after
            _never_the_canary(response.get_data(), alice.id)
        # HTTP cannot carry a line break inside a header (a client refuses to send one).
        header = after.encode("utf-8", "replace").decode("latin-1")
        header = header.replace("\r", " ").replace("\n", " ")
        stream = client.get(
            f"/api/conversations/{bob_conversation}/stream",
            headers={**headers, "Last-Event-ID": header},
        )
        assert stream.status_code in (400, 404), after
        stream.close()

    replay()
    assert seen.get(200, 0) >= 10 and seen.get(400, 0) >= 10, seen
    print(f"fuzz: replays by status {seen}")


def test_the_canary_is_never_opened_for_anybody_else(app, settings, people) -> None:
    alice, bob, _ = people
    client = app.test_client()
    hits = get_elasticsearch(settings).search(
        index=settings.index_alias, query={"term": {"owner_id": bob.id}}, size=5
    )["hits"]["hits"]
    assert hits, "the canary is indexed"
    canary_id = hits[0]["_id"]
    assert (
        client.get(f"/api/emails/{canary_id}", headers=auth_header(settings, bob)).status_code
        == 200
    )
    opened = client.get(f"/api/emails/{canary_id}", headers=auth_header(settings, alice))
    assert opened.status_code == 404 and SECRET.encode() not in opened.get_data()

"""User A never sees user B's mail, whatever A types."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch
from shared.index.query import compile_terms
from shared.index.search import build_query, search_emails
from shared.index.writer import import_mbox
from tests.conftest import auth_header

HOSTILE_QUESTIONS = [
    "*",
    "owner_id:*",
    "owner:*",
    "user_id:{other}",
    "owner_id:{other}",
    "{other}",
    "interview OR owner_id:{other}",
    '{{"match_all": {{}}}}',
    '"}}, {{"term": {{"owner_id": "{other}"}}}}',
    "*:*",
    "_id:{other}*",
    "interview | * | -zzz",
]


@pytest.fixture(scope="module")
def two_users(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    import secrets

    from shared.core.clients import get_redis
    from shared.identity.users import create_user

    r = get_redis(settings)
    alice = create_user(r, settings, f"alice-{secrets.token_hex(3)}@example.com", "alice-password")
    bob = create_user(r, settings, f"bob-{secrets.token_hex(3)}@example.com", "bob-password-1")
    folder = Path(tmp_path_factory.mktemp("tenancy"))
    es = get_elasticsearch(settings)
    # Bob has mail; Alice has a small, different mailbox (other seed).
    write_mbox(folder / "bob.mbox", owner_address=bob.email, today=date.today(), count=200)
    write_mbox(
        folder / "alice.mbox", owner_address=alice.email, today=date.today(), count=40, seed=7
    )
    import_mbox(es, settings, bob.id, folder / "bob.mbox", refresh=True)
    import_mbox(es, settings, alice.id, folder / "alice.mbox", refresh=True)
    return alice, bob


@pytest.mark.parametrize("template", HOSTILE_QUESTIONS)
def test_search_never_crosses_owners(settings, two_users, template: str) -> None:
    alice, bob = two_users
    question = template.format(other=bob.id)
    outcome = search_emails(
        get_elasticsearch(settings), settings, alice.id, question, 365, size=100
    )
    assert all(hit.id.startswith(f"{alice.id}:") for hit in outcome.hits), question
    assert outcome.total_hits <= 40


@pytest.mark.parametrize("template", HOSTILE_QUESTIONS[:6])
def test_chat_never_crosses_owners(
    client, settings, two_users, celery_worker, template: str
) -> None:
    alice, bob = two_users
    response = client.post(
        "/api/chat",
        json={"q": template.format(other=bob.id), "window_days": 365},
        headers=auth_header(settings, alice),
    )
    assert response.status_code == 200
    for citation in response.get_json()["citations"]:
        assert citation["id"].startswith(f"{alice.id}:")


def test_owner_filter_is_built_server_side() -> None:
    query = build_query("u_alice", compile_terms("owner_id:u_bob", 8), 30)
    assert {"term": {"owner_id": "u_alice"}} in query["bool"]["filter"]
    assert "u_bob" not in str(query["bool"]["filter"])
    with pytest.raises(ValueError):
        build_query("", compile_terms("anything", 8), 30)

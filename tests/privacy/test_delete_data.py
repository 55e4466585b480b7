"""Delete my data: afterwards no search, log read or key scan finds the person; others keep theirs.

Both users get mail in two generations of the index (plus one index that fell
off the alias), conversations with event logs, a notification log, a mail
account with cursors, an import lock and a dead-lettered delivery, all
written through the real writers where they exist.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.core.keys import RedisKeys
from shared.identity.users import (
    TokenError,
    User,
    create_user,
    find_user,
    issue_token,
    verify_token,
)
from shared.index.lifecycle import rollover
from shared.index.search import search_emails
from shared.index.writer import import_messages
from shared.privacy.delete_data import glob_escape
from shared.realtime.conversations import claim_conversation
from shared.realtime.delivery import Delivery, dead_letter
from shared.realtime.eventlog import EventLog
from tests.index.test_lifecycle import bootstrapped, message, run_flask


@dataclass
class Person:
    user: User
    password: str
    conversations: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    documents: int = 0

    def markers(self) -> set[str]:
        """Every id that names this person's data."""
        return {self.user.id, *self.conversations, *self.accounts}


@pytest.fixture()
def world(settings):  # type: ignore[no-untyped-def]
    """An isolated alias with two people's data in every kind of place."""
    s, es, r = bootstrapped(settings)
    people = [_person(r, s, name) for name in ("alice", "bob")]
    when = datetime.now(UTC)
    for n, person in enumerate(people):
        _mail(es, s, person, [f"{person.user.id}-a{i}" for i in range(5 + n)], when)
    assert rollover(es, r, s, now=when + timedelta(days=31)).outcome == "rolled_over"
    orphan = f"{s.index_alias}-000099"  # matches the pattern, fell off the alias
    for n, person in enumerate(people):
        _mail(es, s, person, [f"{person.user.id}-b{i}" for i in range(3 + n)], when)
        es.index(
            index=orphan,
            id=f"{person.user.id}:orphan",
            document={"owner_id": person.user.id, "subject": "stray"},
            refresh=True,
        )
        person.documents += 1
        _conversations_and_logs(r, s, person)
        _account(r, s, person)
        r.set(RedisKeys(s.key_prefix).import_lock(person.user.id), "held")
        dead_letter(r, s, Delivery("user", person.user.id, "notification", {}, "x"), "gave up")
    return s, es, r, people[0], people[1]


def _person(r, s, name: str) -> Person:  # type: ignore[no-untyped-def]
    password = secrets.token_urlsafe(12)
    email = f"{name}-{secrets.token_hex(4)}@example.com"
    return Person(create_user(r, s, email, password), password)


def _mail(es, s, person: Person, keys: list[str], when: datetime) -> None:  # type: ignore[no-untyped-def]
    stats = import_messages(
        es, s, person.user.id, [message(k, when) for k in keys], source="t", refresh=True
    )
    assert stats.indexed == len(keys)
    person.documents += len(keys)


def _conversations_and_logs(r, s, person: Person) -> None:  # type: ignore[no-untyped-def]
    events = EventLog(r, s)
    keys = RedisKeys(s.key_prefix)
    for n in range(2):
        conversation = claim_conversation(r, s, person.user.id, None)
        person.conversations.append(conversation)
        stream = events.conversation_stream(conversation)
        for kind in ("question", "done"):
            events.append(
                stream, kind, {"text": kind}, dedup_key=f"{kind}-{n}", conversation_id=conversation
            )
        r.set(keys.active_question(conversation), f"m{n}")
        r.set(keys.client_message_conversation(person.user.id, f"m{n}"), conversation)
    events.append(events.user_stream(person.user.id), "sync.done", {"n": 1}, dedup_key="sync-1")


def _account(r, s, person: Person) -> None:  # type: ignore[no-untyped-def]
    keys = RedisKeys(s.key_prefix)
    account = "a_" + secrets.token_hex(8)
    address = f"{person.user.id}@gmail.example"
    r.hset(
        keys.account(account),
        mapping={"user_id": person.user.id, "provider": "gmail", "address": address},
    )
    r.sadd(keys.user_accounts(person.user.id), account)
    r.sadd(keys.all_accounts(), account)
    r.sadd(keys.gmail_address_accounts(address), account)
    r.hset(keys.account_cursor(account), mapping={"history_id": "42"})
    r.hset(keys.account_messages(account), mapping={"k1": json.dumps({"labels": ["INBOX"]})})
    r.set(keys.account_queued(account), "1")  # a lock would be waited for: no sync runs here
    person.accounts.append(account)


def _documents(es, s, person: Person) -> int:  # type: ignore[no-untyped-def]
    targets = f"{s.index_alias},{s.index_alias}-*"
    es.indices.refresh(index=targets)
    return int(es.count(index=targets, query={"term": {"owner_id": person.user.id}})["count"])


def _mentions(r, s, markers: set[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Every key whose name or value mentions one of ``markers`` -> where it was seen."""
    found: dict[str, str] = {}
    for key in r.scan_iter(match=glob_escape(s.key_prefix) + "*", count=1000):
        kind = r.type(key)
        if kind == "string":
            values: list[Any] = [r.get(key)]
        elif kind == "hash":
            values = list(r.hgetall(key).items())
        elif kind == "set":
            values = list(r.smembers(key))
        elif kind == "zset":
            values = list(r.zrange(key, 0, -1))
        elif kind == "stream":
            values = r.xrange(key)
        else:
            values = []
        if any(m in key for m in markers):
            found[key] = "name"
        elif any(m in str(values) for m in markers):
            found[key] = "value"
    return found


def _login(client, person: Person) -> str:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/auth/login", json={"email": person.user.email, "password": person.password}
    )
    assert response.status_code == 200
    return str(response.get_json()["access_token"])


def test_delete_my_data_removes_everything_of_one_user_only(world) -> None:
    from web import create_app

    s, es, r, alice, bob = world
    keys = RedisKeys(s.key_prefix)
    bob_before = _mentions(r, s, bob.markers())
    bob_logs = [EventLog(r, s).read(keys.conversation_events(c)) for c in bob.conversations]
    assert _documents(es, s, alice) == alice.documents == 9
    assert set(_mentions(r, s, alice.markers())) > {keys.user(alice.user.id)}

    client = create_app(s).test_client()
    token = _login(client, alice)
    bob_token = _login(client, bob)
    bob_before = _mentions(r, s, bob.markers())  # his login opened a session: his too
    response = client.delete("/api/me/data", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    deleted = response.get_json()["deleted"]
    assert deleted["documents"] == 9 and deleted["conversations"] == 2
    assert deleted["event_logs"] == 3 and deleted["accounts"] == 1
    assert deleted["dead_letters"] == 1 and deleted["tokens_revoked"] is True

    # No search finds anything of hers: through the assistant's search or any index.
    assert _documents(es, s, alice) == 0
    assert search_emails(es, s, alice.user.id, "", 365, size=50).total_hits == 0
    # No key scan: only her login remains (hash of email/password/token version, email index).
    left = _mentions(r, s, alice.markers())
    left.pop(keys.user_by_email(alice.user.email), None)
    assert left == {keys.user(alice.user.id): "name"}, left
    assert set(r.hgetall(keys.user(alice.user.id))) == {
        "email",
        "password_hash",
        "created_at",
        "token_version",
    }
    # No log read (after the scan: reading a missing stream sets a fresh, empty epoch).
    for conversation in alice.conversations:
        assert EventLog(r, s).read(keys.conversation_events(conversation)).events == []
    assert EventLog(r, s).read(keys.user_events(alice.user.id)).events == []
    # Her old token is dead; logging in again works, and a repeat deletes nothing more.
    again = client.delete("/api/me/data", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401 and again.get_json()["error"]["code"] == "invalid_token"
    fresh = _login(client, alice)
    repeat = client.delete("/api/me/data", headers={"Authorization": f"Bearer {fresh}"})
    assert repeat.status_code == 200 and repeat.get_json()["deleted"]["documents"] == 0

    # Bob is untouched: mail, logs, account, token.
    assert _documents(es, s, bob) == bob.documents == 11
    assert _mentions(r, s, bob.markers()) == bob_before
    assert [EventLog(r, s).read(keys.conversation_events(c)) for c in bob.conversations] == bob_logs
    assert verify_token(s, bob_token).id == bob.user.id


def test_operator_cli_can_delete_the_user_too(world) -> None:
    s, es, r, alice, bob = world
    env = {"MAILCHAT_INDEX_ALIAS": s.index_alias, "MAILCHAT_INDEX_TEMPLATE": s.index_template}
    refused = run_flask("users", "delete-data", alice.user.email, env=env)
    assert refused.returncode != 0, "without --yes it asks, and stdin is empty"
    assert _documents(es, s, alice) == alice.documents

    done = run_flask("users", "delete-data", alice.user.email, "--yes", "--delete-user", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["documents"] == alice.documents and report["user_deleted"] is True
    assert _mentions(r, s, alice.markers()) == {}
    assert find_user(r, s, alice.user.email) is None
    with pytest.raises(TokenError, match="no longer exists"):
        verify_token(s, issue_token(s, alice.user))
    assert _documents(es, s, bob) == bob.documents
    missing = run_flask("users", "delete-data", "nobody@example.com", "--yes", env=env)
    assert missing.returncode == 2 and "no user" in missing.stderr


def test_revoked_tokens_fail_everywhere_a_token_is_checked(settings, make_user) -> None:
    from shared.core.clients import get_redis
    from shared.identity.users import revoke_tokens

    user, _ = make_user("revoke")
    r = get_redis(settings)
    token = issue_token(settings, user)
    assert verify_token(settings, token) == user
    revoke_tokens(r, settings, user.id)
    with pytest.raises(TokenError, match="revoked"):
        verify_token(settings, token)
    assert revoke_tokens(r, settings, "u_nobody") == 0
    assert not r.exists(RedisKeys(settings.key_prefix).user("u_nobody"))


def test_a_sync_that_does_not_stop_makes_the_deletion_retryable(settings, make_user) -> None:
    """A held account lock (a sync mid-batch) is waited for, then answered 503, not ignored."""
    from shared.core.clients import get_elasticsearch, get_redis
    from shared.privacy.delete_data import SyncStillRunning, delete_user_data
    from shared.sync import accounts

    r, es = get_redis(settings), get_elasticsearch(settings)
    keys = RedisKeys(settings.key_prefix)
    user, _ = make_user("busy")
    account = accounts.create_account(r, settings, user.id, "mbox", "x.mbox", {}, None)
    r.set(keys.account_lock(account.id), "sync:running", px=30_000)
    token = issue_token(settings, user)
    started = time.monotonic()
    with pytest.raises(SyncStillRunning):
        delete_user_data(es, r, settings, user.id, lock_wait_seconds=0.5)
    assert time.monotonic() - started >= 0.5
    # Nothing was revoked (the same token retries) and the running sync was told to stop.
    assert verify_token(settings, token).id == user.id
    assert accounts.removal_state(r, settings, account.id) == "deleting"
    r.delete(keys.account_lock(account.id))  # the sync stopped
    report = delete_user_data(es, r, settings, user.id)
    assert report.accounts == 1 and accounts.get_account(r, settings, account.id) is None

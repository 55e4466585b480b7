"""Retention by the age of the mail: what is older than MAILCHAT_RETENTION_DAYS is not kept.

Import and sync skip it (and say how many), a question cannot look further back
than what is kept (and the answer says so), Gmail's backfill does not fetch it,
and what ages out after indexing is purged. 0 keeps everything.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.assistant.answer import compose_answer
from shared.core.clients import get_elasticsearch, get_redis
from shared.index.mail_age import backfill_days, purge_expired_mail
from shared.index.search import search_emails
from shared.index.writer import ImportStats, import_messages
from shared.sync import accounts
from shared.sync.engine import sync_account
from tests.conftest import auth_header
from tests.index.test_lifecycle import message, raw_email

NOW = datetime.now(UTC)


def owner_keys(es, s, owner: str) -> set[str]:  # type: ignore[no-untyped-def]
    es.indices.refresh(index=f"{s.index_alias}-*")
    found = es.search(
        index=f"{s.index_alias}-*",
        query={"term": {"owner_id": owner}},
        size=100,
        source=["subject"],
    )
    return {hit["_id"].split(":", 1)[1] for hit in found["hits"]["hits"]}


def test_import_skips_mail_older_than_the_retention_and_acknowledges_its_batch(
    settings, make_user
) -> None:
    user, _ = make_user("age-import")
    s = dataclasses.replace(settings, import_batch_size=2, retention_days=90)
    es = get_elasticsearch(s)
    ages = {"old-a": 400, "old-b": 91, "new-a": 89, "old-c": 200}  # batches of two
    messages = [
        dataclasses.replace(message(key, NOW - timedelta(days=age)), cursor=i, message_key=key)
        for i, (key, age) in enumerate(ages.items())
    ]
    acknowledged: list[int | str | None] = []

    def on_batch(stats: ImportStats) -> None:
        acknowledged.append(stats.cursor)

    stats = import_messages(es, s, user.id, messages, source="t", on_batch_indexed=on_batch)
    assert (stats.seen, stats.indexed, stats.skipped_expired) == (4, 1, 3)
    assert acknowledged == [1, 3], "an all-old batch is acknowledged too, so a cursor moves on"
    assert owner_keys(es, s, user.id) == {"new-a"}

    keep_all = dataclasses.replace(s, retention_days=0)
    again = import_messages(es, keep_all, user.id, messages, source="t")
    assert (again.indexed, again.skipped_expired) == (4, 0), "0 keeps everything"


def _mbox(path: Path, dates: list[datetime]) -> None:
    with open(path, "wb") as out:
        for n, when in enumerate(dates):
            out.write(f"From x@y {when.ctime()}\n".encode())
            out.write(raw_email(f"mbox-{n}", when) + b"\n")


def test_a_sync_counts_and_shows_what_it_did_not_keep(settings, make_user, tmp_path) -> None:
    user, _ = make_user("age-sync")
    s = dataclasses.replace(settings, import_batch_size=2, retention_days=90)
    r, es = get_redis(s), get_elasticsearch(s)
    path = tmp_path / "aged.mbox"
    _mbox(path, [NOW - timedelta(days=d) for d in (300, 250, 120, 60, 5)])
    account = accounts.create_account(r, s, user.id, "mbox", path.name, {"path": str(path)}, None)
    events: list[tuple[str, dict]] = []
    result = sync_account(
        r,
        es,
        s,
        account.id,
        run_id=secrets.token_hex(4),
        notify=lambda _u, kind, data, _k: events.append((kind, data)),
    )
    assert result.outcome == "ok" and (result.new, result.skipped) == (2, 3)
    cursor = json.loads(accounts.cursor(r, s, account.id)["mbox"])
    assert cursor["offset"] == cursor["size"] == path.stat().st_size, "read to the end"
    stored = accounts.get_account(r, s, account.id)
    assert stored is not None and stored.last_run["skipped"] == 3
    done = [data for kind, data in events if kind == "sync.done"][-1]
    assert done["skipped"] == 3
    assert done["text"] == "2 new emails; 3 emails older than 90 days not kept"
    assert len(owner_keys(es, s, user.id)) == 2


def test_a_question_cannot_look_further_back_than_what_is_kept(settings, make_user) -> None:
    user, _ = make_user("age-window")
    s = dataclasses.replace(settings, retention_days=90)
    es = get_elasticsearch(s)
    outcome = search_emails(es, s, user.id, "", 365)
    assert outcome.window_days == 90
    described = outcome.description()
    assert described["window_capped_to"] == 90 and described["requested_window_days"] == 365
    assert described["filters"]["received_within_days"] == 90
    assert "mail older than 90 days is not kept" in compose_answer(outcome)
    within = search_emails(es, s, user.id, "", 60)
    assert within.window_days == 60 and "window_capped_to" not in within.description()
    assert "not kept" not in compose_answer(within)
    kept = search_emails(es, dataclasses.replace(s, retention_days=0), user.id, "", 365)
    assert kept.window_days == 365 and "window_capped_to" not in kept.description()


@pytest.mark.timeout(60)
def test_the_chat_answer_says_its_window_was_capped(
    client, settings, make_user, celery_worker
) -> None:
    user, _ = make_user("age-chat")
    response = client.post(
        "/api/chat",
        json={"q": "anything at all", "window_days": 365},
        headers=auth_header(settings, user),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["search"]["window_days"] == settings.retention_days == 90
    assert body["search"]["window_capped_to"] == 90
    assert "not kept" in body["answer"]


def test_mail_that_aged_out_after_indexing_is_purged(settings, make_user) -> None:
    user, _ = make_user("age-purge")
    s = dataclasses.replace(settings, retention_days=90)
    es = get_elasticsearch(s)
    keep_all = dataclasses.replace(s, retention_days=0)  # indexed back when it was young
    olds = [
        dataclasses.replace(message(key, NOW - timedelta(days=age)), message_key=key)
        for key, age in (("aged", 95), ("young", 3))
    ]
    import_messages(es, keep_all, user.id, olds, source="t", refresh=True)
    assert len(owner_keys(es, s, user.id)) == 2
    assert purge_expired_mail(es, keep_all) == 0, "0 keeps everything"
    assert purge_expired_mail(es, s) >= 1
    assert owner_keys(es, s, user.id) == {"young"}


def test_gmail_backfill_never_reaches_beyond_what_is_kept(settings) -> None:
    def days(backfill: int, retention: int) -> int:
        return backfill_days(
            dataclasses.replace(settings, gmail_backfill_days=backfill, retention_days=retention)
        )

    assert days(365, 90) == 90 and days(30, 90) == 30
    assert days(0, 90) == 90, "'all of it' still means all that is kept"
    assert days(365, 0) == 365 and days(0, 0) == 0

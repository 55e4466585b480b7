"""Live progress of an import: ``sync.progress {account_id, done, total, rate}`` at most twice
a second, then ``sync.done {added, updated, deleted, skipped}``; a truncated or malformed mbox
imports every message it can and says how many were read only in part."""

from __future__ import annotations

import dataclasses
import time
from datetime import date
from typing import Any

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.mail.mbox import iter_mbox
from shared.sync import accounts
from shared.sync.engine import sync_account
from tests.conftest import CORPUS_DIR
from tests.index.test_writer import write_raw_mbox


@pytest.mark.timeout(60)
def test_progress_is_throttled_and_carries_a_rate(settings, make_user, tmp_path) -> None:
    batched = dataclasses.replace(settings, import_batch_size=20)
    user, _ = make_user("progress")
    path = tmp_path / "progress.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=600, days=60)
    total = len(list(iter_mbox(path)))
    r, es = get_redis(batched), get_elasticsearch(batched)
    account = accounts.create_account(
        r, batched, user.id, "mbox", "p.mbox", {"path": str(path)}, None
    )
    sent: list[tuple[float, str, dict[str, Any]]] = []

    def record(user_id: str, event_type: str, data: dict[str, Any], dedup_key: str) -> None:
        sent.append((time.monotonic(), event_type, data))

    result = sync_account(r, es, batched, account.id, run_id="p", notify=record)
    assert result.outcome == "ok" and result.new == total
    progress = [(at, data) for at, kind, data in sent if kind == "sync.progress"]
    assert progress, "at least one progress event"
    assert total // 20 > len(progress), "not one per batch: throttled"
    gaps = [b[0] - a[0] for a, b in zip(progress, progress[1:], strict=False)]
    assert all(gap >= 0.5 for gap in gaps), f"at most 2 per second, gaps {gaps}"
    first = progress[0][1]
    assert first["account_id"] == account.id and first["done"] > 0
    assert first["total"] and first["rate"] > 0 and "eta_seconds" in first
    done = [data for _, kind, data in sent if kind == "sync.done"]
    assert len(done) == 1
    assert {"added", "updated", "deleted", "skipped"} <= set(done[0])
    assert done[0]["added"] == total and done[0]["message_count"] == total
    searchable = es.count(index=batched.index_alias, query={"term": {"owner_id": user.id}})
    assert searchable["count"] == total, "searchable when sync.done says so (no refresh here)"


def test_a_truncated_malformed_mbox_imports_what_it_can_and_says_so(
    settings, make_user, tmp_path
) -> None:
    user, _ = make_user("truncated")
    malformed = (CORPUS_DIR / "malformed" / "000.eml").read_bytes()
    good = tmp_path / "good.mbox"
    write_mbox(good, owner_address=user.email, today=date.today(), count=5, days=60)
    bad = tmp_path / "bad.mbox"
    write_raw_mbox(bad, [malformed])
    whole = good.read_bytes() + bad.read_bytes()
    path = tmp_path / "cut.mbox"
    envelope = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime()).encode()
    cut = b"From x@y " + envelope + b"\nSubject: cut off\nContent-Type: multipart/mixed; bo"
    path.write_bytes(whole + cut)  # the last message stops mid-header: a truncated download
    r, es = get_redis(settings), get_elasticsearch(settings)
    account = accounts.create_account(
        r, settings, user.id, "mbox", "cut", {"path": str(path)}, None
    )
    sent: list[tuple[str, dict[str, Any]]] = []
    result = sync_account(
        r, es, settings, account.id, run_id="t", notify=lambda u, k, d, key: sent.append((k, d))
    )
    expected = len(list(iter_mbox(good))) + 2
    assert result.outcome == "ok" and result.new == expected, "every message, even the cut one"
    assert result.partly_read >= 1
    done = [d for k, d in sent if k == "sync.done"][0]
    assert done["partly_read"] == result.partly_read and "malformed" in done["text"]


def test_make_run_and_the_mailbox_view_warn_when_a_mailbox_outgrows_the_engine(
    settings, make_user, tmp_path
) -> None:
    from devtools.run import engine_warnings
    from web import create_app

    user, _ = make_user("big-mailbox")
    path = tmp_path / "big.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=30, days=60)
    r, es = get_redis(settings), get_elasticsearch(settings)
    account = accounts.create_account(r, settings, user.id, "mbox", "b", {"path": str(path)}, None)
    sync_account(r, es, settings, account.id, run_id="w")
    small = dataclasses.replace(
        settings, embedded_search_engine=True, embedded_engine_warn_emails=20
    )
    assert any("outgrows" in line for line in engine_warnings(small))
    assert engine_warnings(dataclasses.replace(small, embedded_search_engine=False)) == []
    from tests.conftest import auth_header

    client = create_app(small).test_client()
    listed = client.get("/api/accounts", headers=auth_header(settings, user)).get_json()
    assert listed["total_emails"] >= 30 and "Elasticsearch" in listed["warning"]
    roomy = create_app(dataclasses.replace(small, embedded_engine_warn_emails=10**6)).test_client()
    assert (
        roomy.get("/api/accounts", headers=auth_header(settings, user)).get_json()["warning"]
        is None
    )

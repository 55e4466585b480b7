"""The owner's own addresses (for ``from_me``), and a sync marking the owner's mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.core.clients import get_elasticsearch, get_redis
from shared.sync import accounts
from shared.sync.engine import sync_account
from tests.index.test_writer import write_raw_mbox

pytestmark = pytest.mark.timeout(60)


def _mail(key: str, sender: str) -> bytes:
    return (
        f"From: {sender}\nTo: someone@example.org\nSubject: note {key}\n"
        f"Message-ID: <{key}@accounts.test>\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n\nhello\n"
    ).encode()


def test_owner_addresses_are_the_sign_in_email_and_every_account_address(
    settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    user, _ = make_user("owners")
    r = get_redis(settings)
    assert accounts.owner_addresses(r, settings, user.id) == [user.email]
    accounts.create_account(r, settings, user.id, "imap", "Work@Corp.Example", {}, None)
    accounts.create_account(r, settings, user.id, "mbox", "takeout.mbox", {}, None)  # no address
    assert accounts.owner_addresses(r, settings, user.id) == sorted(
        [user.email, "work@corp.example"]
    )
    assert accounts.owner_addresses(r, settings, "u_nobody") == []


def test_a_sync_marks_mail_from_any_of_the_owners_addresses(
    settings, make_user, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    user, _ = make_user("fromme")
    r, es = get_redis(settings), get_elasticsearch(settings)
    accounts.create_account(r, settings, user.id, "imap", "me@work.example", {}, None)
    path = tmp_path / "m.mbox"
    write_raw_mbox(
        path,
        [
            _mail("a", f"Me <{user.email}>"),
            _mail("b", "me@work.example"),
            _mail("c", "x@y.example"),
        ],
    )
    account = accounts.create_account(
        r, settings, user.id, "mbox", "m.mbox", {"path": str(path)}, None
    )
    assert sync_account(r, es, settings, account.id, run_id="fm").outcome == "ok"
    es.indices.refresh(index=settings.index_alias)
    hits = es.search(
        index=settings.index_alias,
        query={"term": {"owner_id": user.id}},
        source=["subject", "from_me"],
        size=10,
    )["hits"]["hits"]
    mine = {h["_source"]["subject"]: h["_source"]["from_me"] for h in hits}
    assert mine == {"note a": True, "note b": True, "note c": False}

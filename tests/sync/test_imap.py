"""IMAP sync against a real Dovecot: append, sync, append more, expunge, flags, UIDVALIDITY.

The sync runs in this process through ``shared.sync.engine.sync_account`` (the same
function the ``mail.sync_account`` task calls), against the session's real
Redis, noida-db and Dovecot; ``tests/test_accounts_api.py`` drives the same
thing through the API and the Celery worker.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from imapclient import IMAPClient
from prometheus_client import REGISTRY

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.index.writer import document_id
from shared.sync import accounts
from shared.sync.engine import SyncOptions, sync_account
from shared.sync.providers.base import digest, message_key_for
from tests.conftest import CORPUS_DIR


@pytest.fixture()
def settings(settings):  # type: ignore[no-untyped-def]
    """The session's settings with loopback IMAP allowed: the test Dovecot listens there."""
    return dataclasses.replace(settings, imap_allow_private_hosts=True)


def make_message(subject: str, message_id: str, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Recruiter <recruiter@example.com>"
    msg["To"] = "me@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    # Recent, whenever the tests run: mail older than the retention would not be kept.
    msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(days=1))
    msg.set_content(body)
    return msg.as_bytes()


class Mailbox:
    """One Dovecot user, reached with a plain IMAPClient (the test's side of the server)."""

    def __init__(self, dovecot: Any) -> None:
        self.server = dovecot
        self.username = f"u{secrets.token_hex(5)}"
        self.client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=30)
        self.client.login(self.username, dovecot.password)

    def append(self, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()) -> int:
        if folder != "INBOX" and not self.client.folder_exists(folder):
            self.client.create_folder(folder)
        response = self.client.append(folder, raw, flags=flags)
        return int(response.split(b"APPENDUID ")[1].split(b" ")[1].rstrip(b"]"))

    def expunge(self, folder: str, uid: int) -> None:
        self.client.select_folder(folder)
        self.client.add_flags([uid], [b"\\Deleted"])
        self.client.uid_expunge([uid])
        self.client.unselect_folder()

    def flag(self, folder: str, uid: int, flag: bytes) -> None:
        self.client.select_folder(folder)
        self.client.add_flags([uid], [flag])
        self.client.unselect_folder()

    def close(self) -> None:
        self.client.logout()


@pytest.fixture()
def mailbox(dovecot):  # type: ignore[no-untyped-def]
    box = Mailbox(dovecot)
    yield box
    box.close()


def imap_account(settings, user_id: str, mailbox: Mailbox, password: str | None = None):  # type: ignore[no-untyped-def]
    config = {
        "host": mailbox.server.host,
        "port": mailbox.server.port,
        "username": mailbox.username,
        "tls": "none",
        "folders": [],
    }
    secret = {"password": password if password is not None else mailbox.server.password}
    return accounts.create_account(
        get_redis(settings), settings, user_id, "imap", mailbox.username, config, secret
    )


def docs(settings, owner_id: str) -> dict[str, dict[str, Any]]:
    """The owner's documents by message key (after a refresh, so the last writes show)."""
    es = get_elasticsearch(settings)
    es.indices.refresh(index=f"{settings.index_alias}-*")
    found = es.search(
        index=f"{settings.index_alias}-*",
        query={"term": {"owner_id": owner_id}},
        size=1000,
    )
    return {hit["_source"]["message_key"]: hit["_source"] for hit in found["hits"]["hits"]}


def run(settings, account_id: str, events: list | None = None, **options: Any):  # type: ignore[no-untyped-def]
    def notify(user_id: str, event_type: str, data: dict, dedup_key: str) -> None:
        if events is not None:
            events.append((event_type, data, dedup_key))

    return sync_account(
        get_redis(settings),
        get_elasticsearch(settings),
        settings,
        account_id,
        run_id=secrets.token_hex(4),
        notify=notify,
        options=SyncOptions(**options),
    )


def folder_cursor(settings, account_id: str, folder: str) -> dict[str, Any]:
    stored = accounts.cursor(get_redis(settings), settings, account_id)
    return json.loads(stored["imap:" + digest(folder)])


def key_of(raw: bytes) -> str:
    return message_key_for(raw)


def test_append_sync_append_more_expunge_flags_and_uidvalidity(
    settings, make_user, mailbox
) -> None:
    small = dataclasses.replace(settings, sync_batch_size=2)  # several batches per folder
    user, _ = make_user("imap")
    account = imap_account(small, user.id, mailbox)
    raws = [make_message(f"Interview {n}", f"m{n}@example.com") for n in range(3)]
    uids = [mailbox.append("INBOX", raw) for raw in raws]
    archived = mailbox.append("Archive", raws[0], flags=(b"\\Seen",))  # the same message twice

    events: list = []
    first = run(small, account.id, events, announce=True)
    assert first.outcome == "ok" and first.new == 4  # three from INBOX, one from Archive
    found = docs(small, user.id)
    assert set(found) == {key_of(r) for r in raws}, "one document per message, not per copy"
    shared_doc = found[key_of(raws[0])]
    assert {"Inbox", "Archive", "Unread", "Opened"} <= set(shared_doc["labels"])
    assert shared_doc["subject"] == "Interview 0" and shared_doc["source"] == "imap"
    assert folder_cursor(small, account.id, "INBOX")["last_uid"] == uids[-1]
    assert [e[0] for e in events].count("sync.done") == 1
    assert events[-1][1]["text"] == "4 new emails"
    assert any(e[0] == "sync.progress" for e in events)

    # Nothing changed: nothing is fetched, nothing announced.
    quiet: list = []
    again = run(small, account.id, quiet)
    assert (again.new, again.deleted, again.updated) == (0, 0, 0)
    assert quiet == []

    more = [make_message(f"Offer {n}", f"o{n}@example.com") for n in range(2)]
    more_uids = [mailbox.append("INBOX", raw) for raw in more]
    second = run(small, account.id)
    assert second.new == 2
    assert len(docs(small, user.id)) == 5
    assert folder_cursor(small, account.id, "INBOX")["last_uid"] == more_uids[-1]

    # Expunged from its only folder: the document goes. Expunged from one of two
    # folders: the document stays, labelled by the folder that still holds it.
    mailbox.expunge("INBOX", uids[1])
    mailbox.expunge("INBOX", uids[0])
    mailbox.flag("INBOX", uids[2], b"\\Flagged")
    third = run(small, account.id)
    assert third.deleted == 1
    found = docs(small, user.id)
    assert key_of(raws[1]) not in found
    assert found[key_of(raws[0])]["labels"] == ["Archive", "Opened"]
    assert "Starred" in found[key_of(raws[2])]["labels"], "a flag change relabels (CONDSTORE)"

    # A new UIDVALIDITY: the folder is read again into a fresh uid map; nothing doubles,
    # and the old generation's map is gone.
    r = get_redis(small)
    keys = RedisKeys(small.key_prefix)
    old_validity = folder_cursor(small, account.id, "Archive")["uidvalidity"]
    mailbox.server.doveadm(
        "mailbox",
        "update",
        "--uid-validity",
        str(old_validity + 1000),
        "-u",
        mailbox.username,
        "Archive",
    )
    fourth = run(small, account.id)
    assert fourth.outcome == "ok" and any("UIDVALIDITY" in note for note in fourth.notes)
    assert folder_cursor(small, account.id, "Archive")["uidvalidity"] == old_validity + 1000
    assert not r.exists(keys.account_folder_uids(account.id, digest("Archive"), old_validity))
    assert r.hgetall(
        keys.account_folder_uids(account.id, digest("Archive"), old_validity + 1000)
    ) == {str(archived): key_of(raws[0])}
    found = docs(small, user.id)
    assert len(found) == 4 and found[key_of(raws[0])]["labels"] == ["Archive", "Opened"]
    assert accounts.message_count(r, small, account.id) == 4


def test_uidvalidity_change_drops_messages_no_longer_there(settings, make_user, mailbox) -> None:
    """After a UIDVALIDITY change, copies the server no longer has are swept out."""
    user, _ = make_user("imap-reset")
    account = imap_account(settings, user.id, mailbox)
    keep, gone = make_message("keep", "keep@x"), make_message("gone", "gone@x")
    mailbox.append("Projects", keep)
    gone_uid = mailbox.append("Projects", gone)
    assert run(settings, account.id).new == 2
    validity = folder_cursor(settings, account.id, "Projects")["uidvalidity"]
    mailbox.expunge("Projects", gone_uid)
    mailbox.server.doveadm(
        "mailbox", "update", "--uid-validity", str(validity + 7), "-u", mailbox.username, "Projects"
    )
    result = run(settings, account.id)
    assert result.deleted == 1
    assert set(docs(settings, user.id)) == {key_of(keep)}


def test_a_refused_login_marks_needs_reauth_and_stops_retrying(
    settings, make_user, mailbox
) -> None:
    user, _ = make_user("imap-auth")
    account = imap_account(settings, user.id, mailbox, password="not-the-password")
    result = run(settings, account.id)
    assert result.outcome == "needs_reauth"
    stored = accounts.get_account(get_redis(settings), settings, account.id)
    assert stored is not None and stored.state == "needs_reauth"
    assert "refused the login" in (stored.last_error or "")
    assert "not-the-password" not in (stored.last_error or "")
    # It is not retried: the next run does not even connect.
    assert run(settings, account.id).outcome == "skipped"
    # A new password (what PATCH /api/accounts/<id> stores) makes it sync again.
    accounts.set_secret(
        get_redis(settings), settings, account.id, {"password": mailbox.server.password}
    )
    assert run(settings, account.id).outcome == "ok"


def test_malformed_messages_are_indexed_with_what_could_be_decoded(
    settings, make_user, mailbox
) -> None:
    user, _ = make_user("imap-malformed")
    account = imap_account(settings, user.id, mailbox)
    appended = []
    for path in sorted((CORPUS_DIR / "malformed").glob("*.eml")):
        raw = path.read_bytes()
        try:
            mailbox.append("INBOX", raw)
        except Exception:  # noqa: BLE001 - Dovecot refuses a few (e.g. bare NUL bytes)
            continue
        appended.append(raw)
    assert len(appended) >= 15, "Dovecot should accept most of the malformed corpus"
    # The corpus spans decades: keep every age, this test is about malformed mail.
    result = run(dataclasses.replace(settings, retention_days=0), account.id)
    assert result.outcome == "ok" and result.new == len(appended)
    found = docs(settings, user.id)
    assert len(found) == len({key_of(r) for r in appended})
    assert any(doc["parse_warnings"] for doc in found.values()), "problems travel as warnings"


def test_two_syncs_of_one_account_never_overlap(settings, make_user, mailbox) -> None:
    user, _ = make_user("imap-lock")
    account = imap_account(settings, user.id, mailbox)
    mailbox.append("INBOX", make_message("one", "one@x"))
    r = get_redis(settings)
    keys = RedisKeys(settings.key_prefix)
    holder = RedisLock(r, keys.account_lock(account.id), 30, owner="test")
    assert holder.acquire()
    try:
        blocked = run(settings, account.id)
        assert blocked.outcome == "locked" and blocked.new == 0
        assert r.exists(keys.account_rerun(account.id)), "the running sync is asked to go again"
    finally:
        holder.release()

    # A sync asked for while one runs makes the running one go round again.
    def ask_again(user_id: str, event_type: str, data: dict, dedup_key: str) -> None:
        if event_type == "sync.progress":
            r.set(keys.account_rerun(account.id), "1")
            mailbox.append("INBOX", make_message("late", f"late-{secrets.token_hex(3)}@x"))

    run_id = "overlap-test"
    result = sync_account(
        r, get_elasticsearch(settings), settings, account.id, run_id=run_id, notify=ask_again
    )
    assert result.outcome == "ok"
    assert len(docs(settings, user.id)) >= 2, "the second round picked up the late message"
    assert not r.exists(keys.account_lock(account.id))


def test_sync_metrics_are_counted(settings, make_user, mailbox) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    runs_before = sample("mail_sync_runs_total", provider="imap", outcome="ok")
    messages_before = sample("mail_sync_messages_total", provider="imap")
    user, _ = make_user("imap-metrics")
    account = imap_account(settings, user.id, mailbox)
    mailbox.append("INBOX", make_message("counted", "counted@x"))
    assert run(settings, account.id).outcome == "ok"
    assert sample("mail_sync_runs_total", provider="imap", outcome="ok") == runs_before + 1
    assert sample("mail_sync_messages_total", provider="imap") == messages_before + 1


def test_documents_carry_the_owner_and_deterministic_ids(settings, make_user, mailbox) -> None:
    user, _ = make_user("imap-ids")
    account = imap_account(settings, user.id, mailbox)
    raw = make_message("ids", "ids@x")
    mailbox.append("INBOX", raw)
    run(settings, account.id)
    es = get_elasticsearch(settings)
    es.indices.refresh(index=f"{settings.index_alias}-*")
    hit = es.search(
        index=f"{settings.index_alias}-*",
        query={"ids": {"values": [document_id(user.id, key_of(raw))]}},
    )["hits"]["hits"]
    assert len(hit) == 1 and hit[0]["_source"]["owner_id"] == user.id


def test_gmail_imap_labels_and_keys_match_the_gmail_api() -> None:
    """Gmail's IMAP (X-GM-EXT-1): labels spelled as Takeout spells them, and X-GM-MSGID
    keyed like the API's hex message id, so both paths address one document."""
    from shared.sync.providers.base import gmail_message_key
    from shared.sync.providers.imap import folder_labels

    labels = folder_labels(
        "[Gmail]/All Mail",
        (b"\\HasNoChildren", b"\\All"),
        (b"\\Flagged",),
        [b"\\Inbox", b"\\Important", "Recruiters"],
    )
    assert labels == ["Important", "Inbox", "Recruiters", "Starred", "Unread"]
    assert gmail_message_key(format(1278455344230334865, "x")) == "gmail-11bdfc5cae0c8191"

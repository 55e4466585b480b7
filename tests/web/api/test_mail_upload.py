"""Takeout uploads: streamed to disk under a size limit, refused with a reason when not
an mbox, imported by the real worker with progress, and resumed from the exact offset
after a batch Elasticsearch would not take."""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.mail.mbox import iter_mbox
from shared.sync import accounts
from shared.sync.engine import sync_account
from shared.sync.providers.base import BatchNotIndexed
from shared.sync.providers.mbox import NotAnMbox, check_mbox_head, upload_dir
from tests.conftest import CORPUS_DIR, auth_header
from tests.index.test_writer import write_raw_mbox
from tests.web.api.test_accounts import owner_count, user_events, wait_for


def mbox_bytes(tmp_path: Path, owner: str, count: int) -> bytes:
    path = tmp_path / f"{secrets.token_hex(3)}.mbox"
    write_mbox(path, owner_address=owner, today=date.today(), count=count, days=60)
    return path.read_bytes()


def upload(client, headers, content: bytes, name: str = "All mail Including Spam and Trash.mbox"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/mail/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
        headers=headers,
    )


def leftovers(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    return list(upload_dir(settings).glob("*.part"))


def test_upload_is_imported_by_the_worker_with_progress(
    mail_app, settings, make_user, tmp_path, celery_worker
) -> None:
    user, _ = make_user("upload")
    headers = auth_header(settings, user)
    client = mail_app.test_client()
    malformed = (CORPUS_DIR / "malformed" / "000.eml").read_bytes()
    demo = tmp_path / "demo.mbox"
    write_mbox(demo, owner_address=user.email, today=date.today(), count=60, days=60)
    extra = tmp_path / "extra.mbox"
    write_raw_mbox(extra, [malformed])
    content = demo.read_bytes() + extra.read_bytes()
    expected = len(list(iter_mbox(demo))) + 1
    assert len(content) > settings.max_request_bytes, "bigger than any JSON request may be"

    response = upload(client, headers, content)
    assert response.status_code == 202, response.get_json()
    account = response.get_json()["account"]
    assert account["provider"] == "mbox" and response.get_json()["bytes"] == len(content)
    assert "path" not in account["settings"], "server paths are not shown"

    def imported() -> Any:
        listed = client.get("/api/accounts", headers=headers).get_json()["accounts"]
        found = [a for a in listed if a["id"] == account["id"]]
        ok = found and found[0]["last_success_at"] and found[0]["message_count"] == expected
        return found[0] if ok else None

    wait_for(imported, "the upload's import")
    assert owner_count(settings, user.id) == expected
    events = wait_for(
        lambda: (
            [e for e in user_events(settings, user.id) if e.type == "sync.done"]
            and user_events(settings, user.id)
        ),
        "the import's notifications",
    )
    types = [e.type for e in events]
    assert "sync.progress" in types
    done = [e for e in events if e.type == "sync.done"][0]
    assert done.data["text"].startswith(f"{expected} new emails")
    assert done.data["partly_read"] == 1, "the malformed message is reported"
    cursor = json.loads(accounts.cursor(get_redis(settings), settings, account["id"])["mbox"])
    assert cursor == {"offset": len(content), "size": len(content)}

    stored = accounts.get_account(get_redis(settings), settings, account["id"])
    assert stored is not None
    path = Path(stored.config["path"])
    assert path.read_bytes() == content, "streamed to disk byte for byte"
    deleted = client.delete(f"/api/accounts/{account['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.get_json()["documents_deleted"] == expected
    assert not path.exists() and owner_count(settings, user.id) == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PK\x03\x04" + b"\x00" * 200, "ZIP archive"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 100, "gzip"),
        (b"Return-Path: <a@b>\nSubject: hi\n\nbody\n", "single email"),
        (b"hello, this is a text file\n", "starts with a 'From ' line"),
        (b"", "empty"),
    ],
)
def test_what_is_not_an_mbox_is_refused_with_the_reason(
    mail_app, settings, make_user, content, reason
) -> None:
    user, _ = make_user("upload-bad")
    headers = auth_header(settings, user)
    response = upload(mail_app.test_client(), headers, content, "Takeout.zip")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "not_mbox" and error["field"] == "file" and reason in error["message"]
    assert accounts.list_accounts(get_redis(settings), settings, user.id) == []
    assert leftovers(settings) == []


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(settings, make_user, tmp_path) -> None:
    from web import create_app

    small = create_app(dataclasses.replace(settings, upload_max_bytes=2000))
    user, _ = make_user("upload-big")
    response = upload(
        small.test_client(), auth_header(settings, user), mbox_bytes(tmp_path, user.email, 20)
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "upload_too_large"
    assert leftovers(settings) == []


def test_upload_needs_a_multipart_file(mail_app, settings, make_user) -> None:
    user, _ = make_user("upload-form")
    client = mail_app.test_client()
    headers = auth_header(settings, user)
    assert client.post("/api/mail/import", json={"file": "x"}, headers=headers).status_code == 400
    no_file = client.post(
        "/api/mail/import", data={"other": "x"}, content_type="multipart/form-data", headers=headers
    )
    assert no_file.status_code == 400 and no_file.get_json()["error"]["field"] == "file"
    assert client.post("/api/mail/import", data={}).status_code == 401


def test_a_broken_multipart_body_is_400_and_leaves_nothing(mail_app, settings, make_user) -> None:
    """Found by Schemathesis: a part without headers made Werkzeug's parser raise (a 500)."""
    user, _ = make_user("upload-broken")
    boundary = "7c5156fb04a2177cf9e322ad31ebde44"
    before = set(upload_dir(settings).glob("*"))
    response = mail_app.test_client().post(
        "/api/mail/import",
        data=f"--{boundary}\r\nNone--{boundary}--\r\n".encode(),
        headers={
            **auth_header(settings, user),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_upload",
        "message": "The upload is not a well-formed multipart/form-data body.",
        "field": "file",
    }
    assert set(upload_dir(settings).glob("*")) == before


def test_check_mbox_head_accepts_mboxes() -> None:
    check_mbox_head(b"\nFrom someone@example.com Mon Nov  2 10:00:00 2026\nSubject: x\n\nbody\n")
    with pytest.raises(NotAnMbox, match="binary"):
        check_mbox_head(b"\x00\x01\x02binary data")


def test_a_batch_elasticsearch_refuses_is_imported_again_from_its_offset(
    settings, make_user, tmp_path
) -> None:
    """The cursor rule: the offset is stored after each indexed batch and never past a
    batch that failed; the next run starts exactly at the failed batch."""
    batched = dataclasses.replace(settings, import_batch_size=10)
    user, _ = make_user("upload-resume")
    path = tmp_path / "resume.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=35, days=60)
    offsets = [m.offset for m in iter_mbox(path)]
    total = len(offsets)
    r, es = get_redis(batched), get_elasticsearch(batched)
    account = accounts.create_account(
        r, batched, user.id, "mbox", "resume.mbox", {"path": str(path)}, None
    )
    write_index = next(
        name
        for name, data in es.indices.get_alias(name=batched.index_alias).items()
        if data["aliases"][batched.index_alias].get("is_write_index")
    )

    def block_after_first_batch(user_id: str, event_type: str, data: dict, dedup_key: str) -> None:
        if event_type == "sync.progress":
            es.indices.put_settings(index=write_index, settings={"index.blocks.write": True})

    try:
        with pytest.raises(BatchNotIndexed):
            sync_account(r, es, batched, account.id, run_id="first", notify=block_after_first_batch)
    finally:
        es.indices.put_settings(index=write_index, settings={"index.blocks.write": False})
    cursor = json.loads(accounts.cursor(r, batched, account.id)["mbox"])
    assert cursor["offset"] == offsets[10], "stored after batch one, not past batch two"
    stored = accounts.get_account(r, batched, account.id)
    assert (
        stored is not None and stored.state == "error" and "rejected" in (stored.last_error or "")
    )

    result = sync_account(r, es, batched, account.id, run_id="second")
    assert result.outcome == "ok" and result.new == total - 10
    assert owner_count(batched, user.id) == total
    assert accounts.message_count(r, batched, account.id) == total

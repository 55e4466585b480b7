"""Resumable uploads (tus 1.0 core): chunked appends at the server's offset, checks before the
first byte (size, quota, free disk) and on the first bytes (mbox), a dropped connection
resumed from HEAD's offset on real gunicorn, one import per file however often it is sent."""

from __future__ import annotations

import base64
import dataclasses
import secrets
import socket
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.mail.mbox import iter_mbox
from shared.sync import accounts
from shared.sync.providers.mbox import upload_dir
from tests.conftest import auth_header
from tests.live import http, start_web
from tests.web.api.test_accounts import owner_count, wait_for

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 100_000


@pytest.fixture(scope="module")
def upload_app(settings):  # type: ignore[no-untyped-def]
    """The app with small PATCH chunks, so a few hundred KB take several requests."""
    from web import create_app

    flask_app = create_app(dataclasses.replace(settings, upload_chunk_max_bytes=CHUNK))
    flask_app.config["TESTING"] = True
    return flask_app


def mbox_file(tmp_path: Path, owner: str, count: int) -> Path:
    path = tmp_path / f"{secrets.token_hex(3)}.mbox"
    write_mbox(path, owner_address=owner, today=date.today(), count=count, days=60)
    return path


def create(client, headers, length: int, name: str = "All mail.mbox"):  # type: ignore[no-untyped-def]
    meta = "filename " + base64.b64encode(name.encode()).decode()
    return client.post(
        "/api/uploads",
        headers={**headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": meta},
    )


def patch(client, headers, location: str, offset: int, data: bytes):  # type: ignore[no-untyped-def]
    return client.patch(
        location,
        data=data,
        headers={
            **headers,
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def send_all(client, headers, content: bytes, name: str = "All mail.mbox") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Upload ``content`` chunk by chunk; returns (upload location, account id)."""
    created = create(client, headers, len(content), name)
    assert created.status_code == 201, created.get_json()
    location = created.headers["Location"]
    offset = 0
    account_id = ""
    while offset < len(content):
        response = patch(client, headers, location, offset, content[offset : offset + CHUNK])
        assert response.status_code == 204, response.get_json()
        offset = int(response.headers["Upload-Offset"])
        account_id = response.headers.get("Mailchat-Account-Id", "")
    return location, account_id


def test_a_chunked_upload_is_imported_once_however_often_it_is_sent(
    upload_app, settings, make_user, tmp_path, celery_worker
) -> None:
    user, _ = make_user("tus")
    headers = auth_header(settings, user)
    client = upload_app.test_client()
    path = mbox_file(tmp_path, user.email, 300)
    content = path.read_bytes()
    assert len(content) > 3 * CHUNK, "several PATCHes, each over the 64 KB JSON limit"
    expected = len(list(iter_mbox(path)))

    location, account_id = send_all(client, headers, content)
    assert account_id.startswith("a_")
    head = client.head(location, headers={**headers, **TUS})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(len(content))
    shown = client.get(location, headers=headers).get_json()["upload"]
    assert shown["complete"] and shown["account_id"] == account_id

    def imported() -> Any:
        listed = client.get("/api/accounts", headers=headers).get_json()["accounts"]
        found = [a for a in listed if a["id"] == account_id]
        return found and found[0]["message_count"] == expected and found[0]["last_success_at"]

    wait_for(imported, "the upload's import")
    assert owner_count(settings, user.id) == expected

    second, again = send_all(client, headers, content, name="same file again.mbox")
    assert again == account_id, "the same file maps to the same account"
    listed = client.get("/api/accounts", headers=headers).get_json()["accounts"]
    assert [a["id"] for a in listed] == [account_id]
    time.sleep(1)
    assert owner_count(settings, user.id) == expected, "nothing doubled"
    assert not (upload_dir(settings) / f"{second.rsplit('/', 1)[1]}.upload").exists()


def test_what_is_not_an_mbox_is_refused_after_its_first_bytes(
    upload_app, settings, make_user
) -> None:
    user, _ = make_user("tus-zip")
    headers = auth_header(settings, user)
    client = upload_app.test_client()
    created = create(client, headers, 1_000_000, "takeout.zip")
    location = created.headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    response = patch(client, headers, location, 0, b"PK\x03\x04" + b"\x00" * 8000)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "not_mbox" and "ZIP" in error["message"] and error["field"] == "file"
    assert not (upload_dir(settings) / f"{upload_id}.upload").exists(), "nothing is kept"
    assert client.head(location, headers={**headers, **TUS}).status_code == 404
    assert accounts.list_accounts(get_redis(settings), settings, user.id) == []


def test_size_quota_and_free_disk_are_checked_before_the_first_byte(settings, make_user) -> None:
    from web import create_app

    user, _ = make_user("tus-quota")
    headers = auth_header(settings, user)
    small = create_app(dataclasses.replace(settings, upload_quota_bytes=5000)).test_client()
    refused = create(small, headers, 6000)
    assert refused.status_code == 413
    assert refused.get_json()["error"]["code"] == "quota_exceeded"
    assert "5,000" in refused.get_json()["error"]["message"]
    assert create(small, headers, 3000).status_code == 201
    second = create(small, headers, 3000)
    assert second.status_code == 413, "an unfinished upload counts against the quota"

    full = create_app(dataclasses.replace(settings, upload_min_free_bytes=10**18)).test_client()
    disk = create(full, headers, 1000)
    assert disk.status_code == 507 and disk.get_json()["error"]["code"] == "disk_full"

    tiny = create_app(dataclasses.replace(settings, upload_max_bytes=999)).test_client()
    too_big = create(tiny, headers, 1000)
    assert too_big.status_code == 413
    assert too_big.get_json()["error"]["field"] == "Upload-Length"


def test_protocol_errors_name_the_header(upload_app, settings, make_user) -> None:
    user, _ = make_user("tus-bad")
    headers = auth_header(settings, user)
    client = upload_app.test_client()
    missing = client.post("/api/uploads", headers={**headers, "Upload-Length": "10"})
    assert missing.status_code == 412 and missing.get_json()["error"]["field"] == "Tus-Resumable"
    no_length = client.post("/api/uploads", headers={**headers, **TUS})
    assert no_length.status_code == 400
    assert no_length.get_json()["error"]["field"] == "Upload-Length"
    location = create(client, headers, 10_000).headers["Location"]
    wrong = patch(client, headers, location, 5, b"From a@b Mon Jan  1 00:00:00 2024\n")
    assert wrong.status_code == 409 and wrong.get_json()["error"]["field"] == "Upload-Offset"
    typed = client.patch(location, data=b"x", headers={**headers, **TUS, "Upload-Offset": "0"})
    assert typed.status_code == 415
    big = patch(client, headers, location, 0, b"F" * (CHUNK + 1))
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "chunk_too_large"
    other, _ = make_user("tus-other")
    stranger = client.head(location, headers={**auth_header(settings, other), **TUS})
    assert stranger.status_code == 404, "another person's upload does not exist for them"
    assert client.delete(location, headers={**headers, **TUS}).status_code == 204
    assert client.head(location, headers={**headers, **TUS}).status_code == 404


def test_delete_my_data_removes_unfinished_uploads(upload_app, settings, make_user) -> None:
    user, _ = make_user("tus-delete")
    headers = auth_header(settings, user)
    client = upload_app.test_client()
    location = create(client, headers, 500_000).headers["Location"]
    upload_id = location.rsplit("/", 1)[1]
    patch(client, headers, location, 0, b"From a@b Mon Jan  1 00:00:00 2024\n" + b"x" * 5000)
    assert (upload_dir(settings) / f"{upload_id}.upload").exists()
    assert client.delete("/api/me/data", headers=headers).status_code == 200
    assert not (upload_dir(settings) / f"{upload_id}.upload").exists()
    r = get_redis(settings)
    keys = RedisKeys(settings.key_prefix)
    left = set(r.scan_iter(match=f"{keys.prefix}*{user.id}*")) - {keys.user(user.id)}
    assert not left, "only the login stays"


def _raw_patch_then_drop(
    port: int, path: str, token: str, offset: int, declared: int, data: bytes
) -> None:
    """A PATCH that announces ``declared`` bytes, sends ``data`` (fewer) and hangs up."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + data)
        time.sleep(0.5)
        sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.timeout(90)
def test_a_dropped_upload_resumes_from_heads_offset_on_gunicorn(
    settings, make_user, tmp_path, celery_worker
) -> None:
    user, _ = make_user("tus-drop")
    token = auth_header(settings, user)["Authorization"].split(" ", 1)[1]
    headers = {"Authorization": f"Bearer {token}", **TUS}
    content = mbox_file(tmp_path, user.email, 400).read_bytes()
    web = start_web(tmp_path)
    try:
        status, got, _ = http(
            "POST",
            f"{web.base}/api/uploads",
            headers={**headers, "Upload-Length": str(len(content))},
        )
        assert status == 201
        location = got["Location"]
        half = len(content) // 2
        _raw_patch_then_drop(web.port, location, token, 0, len(content), content[:half])

        def offset() -> int:
            code, answer, _ = http("HEAD", f"{web.base}{location}", headers=headers)
            assert code == 200
            return int(answer["Upload-Offset"])

        kept = wait_for(lambda: offset() or None, "the first half on disk")
        assert 0 < kept <= half, "what arrived before the cut is kept, nothing more"
        request = _patch_request(f"{web.base}{location}", headers, kept, content[kept:])
        import urllib.request

        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 204
            assert int(answer.headers["Upload-Offset"]) == len(content)
            account_id = answer.headers["Mailchat-Account-Id"]
        stored = accounts.get_account(get_redis(settings), settings, account_id)
        assert stored is not None
        assert Path(stored.config["path"]).read_bytes() == content, "byte for byte the file"
    finally:
        web.stop()


def _patch_request(url: str, headers: dict[str, str], offset: int, data: bytes) -> Any:
    import urllib.request

    return urllib.request.Request(
        url,
        data=data,
        method="PATCH",
        headers={
            **headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


@pytest.mark.timeout(60)
def test_a_multipart_upload_over_150_kb_works_on_gunicorn(settings, make_user, tmp_path) -> None:
    """Issue 11: POST /api/mail/import refused anything over ~150 KB (the 64 KB JSON limit)."""
    import urllib.request

    user, _ = make_user("multipart-big")
    content = mbox_file(tmp_path, user.email, 300).read_bytes()
    assert len(content) > 150_000
    boundary = "mailchat" + secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mbox"\r\n'
            "Content-Type: application/mbox\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    web = start_web(tmp_path)
    try:
        request = urllib.request.Request(
            f"{web.base}/api/mail/import",
            data=body,
            method="POST",
            headers={
                **auth_header(settings, user),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        assert status == 202, payload[:300]
    finally:
        web.stop()


@pytest.mark.timeout(60)
def test_a_patch_of_exactly_the_chunk_limit_is_taken_whole_on_gunicorn(
    settings, make_user, tmp_path
) -> None:
    """A body as large as MAILCHAT_UPLOAD_CHUNK_MAX_BYTES used to end in "interrupted":
    reading one byte past it hit the request stream's limit."""
    import urllib.request

    user, _ = make_user("tus-exact")
    headers = {**auth_header(settings, user), **TUS}
    limit = 256 * 1024
    content = mbox_file(tmp_path, user.email, 400).read_bytes()
    assert len(content) > 2 * limit
    web = start_web(tmp_path, {"MAILCHAT_UPLOAD_CHUNK_MAX_BYTES": str(limit)})
    try:
        status, got, _ = http(
            "POST",
            f"{web.base}/api/uploads",
            headers={**headers, "Upload-Length": str(len(content))},
        )
        assert status == 201
        request = _patch_request(f"{web.base}{got['Location']}", headers, 0, content[:limit])
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 204 and int(answer.headers["Upload-Offset"]) == limit
    finally:
        web.stop()

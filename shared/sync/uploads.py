"""Resumable mbox uploads on disk: the storage behind the tus 1.0 views in web/api/uploads.py.

A Takeout mbox is often several GB and a browser's connection drops; so an
upload is created with its full length first (quota and free disk are checked
then, before a byte is sent), and its bytes arrive in any number of appends,
each starting at the offset the server has. The offset is the size of the
file on disk (``DATA_DIR/uploads/<id>.upload``), not a counter kept elsewhere,
so it cannot disagree with the bytes actually kept: a connection cut mid-append
keeps what arrived and the client resumes from there. Bytes are copied in
small chunks, never held whole.

The first bytes are checked as an mbox as soon as they arrive; a file that is
not one is refused and deleted then. The finished file becomes an account of
provider ``mbox`` (``accounts``) and its import is queued; the same file
uploaded twice (same size, same first and last MiB) is recognised and the
existing account is returned instead of a second import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.core.logs import user_hash
from shared.core.settings import Settings
from shared.core.task_names import MAIL_IMPORT_MBOX
from shared.sync import accounts
from shared.sync.accounts import AccountError
from shared.sync.providers.mbox import HEAD_BYTES, NotAnMbox, check_mbox_head, upload_dir

log = logging.getLogger(__name__)

COPY_CHUNK = 64 * 1024
FINGERPRINT_SPAN = 1024 * 1024
FINISHED_TTL_SECONDS = 7 * 86400  # a finished upload's record answers HEAD a while longer
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
_ID = re.compile(r"^up_[0-9a-f]{24}$")

SendTask = Callable[..., Any]


class UploadError(Exception):
    """An upload cannot go on as asked; ``kind`` says why (the web maps it to a status)."""

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Upload:
    id: str
    user_id: str
    length: int
    filename: str
    created_at: float
    checked: bool = False
    account_id: str | None = None

    def path(self, settings: Settings) -> Path:
        return upload_dir(settings) / f"{self.id}.upload"

    def offset(self, settings: Settings) -> int:
        """Bytes kept so far: the size of the file (the length once it became an account)."""
        if self.account_id:
            return self.length
        try:
            return self.path(settings).stat().st_size
        except FileNotFoundError:
            return 0

    def public(self, settings: Settings) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "length": self.length,
            "offset": self.offset(settings),
            "complete": self.account_id is not None,
            "account_id": self.account_id,
        }


def safe_filename(name: str) -> str:
    return _SAFE_NAME.sub("_", Path(name or "upload.mbox").name)[:120] or "upload.mbox"


def _keys(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix)


def _from_hash(upload_id: str, data: dict[Any, Any]) -> Upload:
    return Upload(
        id=upload_id,
        user_id=str(data["user_id"]),
        length=int(data["length"]),
        filename=str(data.get("filename", "upload.mbox")),
        created_at=float(data.get("created_at", 0)),
        checked=data.get("checked") == "1",
        account_id=str(data["account_id"]) if data.get("account_id") else None,
    )


def get_upload(r: redis.Redis, settings: Settings, user_id: str, upload_id: str) -> Upload | None:
    """The upload if it exists and is ``user_id``'s (nobody learns of another's)."""
    if not _ID.match(upload_id):
        return None
    data = r.hgetall(_keys(settings).upload(user_id, upload_id))
    return _from_hash(upload_id, data) if data else None


def _user_uploads(r: redis.Redis, settings: Settings, user_id: str) -> list[Upload]:
    keys = _keys(settings)
    found = []
    for upload_id in sorted(map(str, r.smembers(keys.user_uploads(user_id)))):
        upload = get_upload(r, settings, user_id, upload_id)
        if upload is None:
            r.srem(keys.user_uploads(user_id), upload_id)
        else:
            found.append(upload)
    return found


def bytes_kept(r: redis.Redis, settings: Settings, user_id: str) -> int:
    """What counts against the quota: unfinished uploads at full length, imported files."""
    pending = sum(u.length for u in _user_uploads(r, settings, user_id) if not u.account_id)
    imported = sum(
        int(a.config.get("size", 0))
        for a in accounts.list_accounts(r, settings, user_id)
        if a.provider == "mbox"
    )
    return pending + imported


def purge_stale(r: redis.Redis, settings: Settings, user_id: str, now: float | None = None) -> int:
    """Delete the person's unfinished uploads untouched for ``upload_stale_hours``."""
    now = time.time() if now is None else now
    limit = settings.upload_stale_hours * 3600
    purged = 0
    for upload in _user_uploads(r, settings, user_id):
        if upload.account_id:
            continue
        path = upload.path(settings)
        touched = path.stat().st_mtime if path.exists() else upload.created_at
        if now - touched > limit:
            delete_upload(r, settings, upload)
            purged += 1
    return purged


def create_upload(
    r: redis.Redis, settings: Settings, user_id: str, length: int, filename: str
) -> Upload:
    """Reserve an upload of ``length`` bytes after checking the size, quota and free disk."""
    if length <= 0:
        raise UploadError("invalid", "The upload is empty.", "Upload-Length")
    if length > settings.upload_max_bytes:
        raise UploadError(
            "too_large",
            f"The mbox is larger than {settings.upload_max_bytes:,} bytes.",
            "Upload-Length",
        )
    purge_stale(r, settings, user_id)
    kept = bytes_kept(r, settings, user_id)
    if kept + length > settings.upload_quota_bytes:
        raise UploadError(
            "quota",
            f"This upload needs {length:,} bytes but only "
            f"{max(0, settings.upload_quota_bytes - kept):,} of your "
            f"{settings.upload_quota_bytes:,}-byte upload quota are left; remove an "
            "uploaded mailbox first.",
            "Upload-Length",
        )
    folder = upload_dir(settings)
    free = shutil.disk_usage(folder).free
    if free - length < settings.upload_min_free_bytes:
        raise UploadError(
            "disk_full",
            f"The server has {free:,} bytes free; this upload needs {length:,} and "
            f"{settings.upload_min_free_bytes:,} must stay free.",
            "Upload-Length",
        )
    upload = Upload(
        "up_" + secrets.token_hex(12), user_id, length, safe_filename(filename), time.time()
    )
    keys = _keys(settings)
    upload.path(settings).touch(exist_ok=False)
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        keys.upload(user_id, upload.id),
        mapping={
            "user_id": user_id,
            "length": length,
            "filename": upload.filename,
            "created_at": repr(upload.created_at),
        },
    )
    pipe.sadd(keys.user_uploads(user_id), upload.id)
    pipe.execute()
    log.info("upload %s of %d bytes started for %s", upload.id, length, user_hash(user_id))
    return upload


def append(
    r: redis.Redis,
    settings: Settings,
    upload: Upload,
    offset: int,
    read: Callable[[int], bytes],
    declared: int | None,
) -> int:
    """Append the bytes ``read`` yields at ``offset``; returns the new offset.

    ``offset`` must be the server's (a client that lost track asks HEAD).
    Only one append per upload at a time (a Redis lock). If the sender stops
    mid-way, ``read`` raises or returns short: what arrived is flushed and
    kept. A file whose first bytes are not an mbox is deleted here.
    """
    if upload.account_id:
        raise UploadError("complete", "This upload is complete.")
    lock = RedisLock(r, _keys(settings).upload_lock(upload.user_id, upload.id), 120)
    if not lock.acquire():
        raise UploadError("busy", "Another request is appending to this upload; ask HEAD.")
    try:
        path = upload.path(settings)
        if not path.exists():
            raise UploadError("gone", "This upload was removed; start again.")
        current = path.stat().st_size
        if offset != current:
            raise UploadError(
                "offset_mismatch",
                f"Upload-Offset is {offset} but the server has {current} bytes.",
                "Upload-Offset",
            )
        room = upload.length - current
        if declared is not None and declared > room:
            raise UploadError(
                "too_large",
                f"This request sends {declared:,} bytes; only {room:,} remain of the upload.",
                "Content-Length",
            )
        if declared is not None:  # never read past the body: a bounded stream raises there
            room = declared
        failure: BaseException | None = None
        with open(path, "ab") as handle:
            try:
                while room > 0:
                    chunk = read(min(COPY_CHUNK, room))
                    if not chunk:
                        break
                    handle.write(chunk)
                    room -= len(chunk)
                    lock.extend()
            except Exception as exc:  # the client went away: keep what arrived
                failure = exc
            handle.flush()
            os.fsync(handle.fileno())
        size = path.stat().st_size
        if not upload.checked and (size >= HEAD_BYTES or size == upload.length):
            _check_head(r, settings, upload)
        if failure is not None:
            log.info("upload %s: the sender stopped at byte %d", upload.id, size)
            raise UploadError("interrupted", f"The connection dropped at byte {size}.") from failure
        return size
    finally:
        lock.release()


def _check_head(r: redis.Redis, settings: Settings, upload: Upload) -> None:
    with open(upload.path(settings), "rb") as handle:
        head = handle.read(HEAD_BYTES)
    try:
        check_mbox_head(head)
    except NotAnMbox as exc:
        delete_upload(r, settings, upload)
        raise UploadError("not_mbox", str(exc), "file") from exc
    r.hset(_keys(settings).upload(upload.user_id, upload.id), "checked", "1")


def fingerprint(path: Path) -> str:
    """Size plus the first and last MiB: recognises a re-upload without reading GBs again."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_SPAN))
        if size > FINGERPRINT_SPAN:
            handle.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN))
            digest.update(handle.read(FINGERPRINT_SPAN))
    return digest.hexdigest()


def complete(r: redis.Redis, settings: Settings, upload: Upload, send_task: SendTask) -> str:
    """Turn a fully received upload into an mbox account and queue its import.

    Returns the account id. The same file already imported by this person
    returns that account: the second copy is deleted, nothing is imported twice.
    """
    path = upload.path(settings)
    if path.stat().st_size != upload.length:
        raise UploadError("incomplete", "The upload is not complete yet.")
    mark = fingerprint(path)
    for existing in accounts.list_accounts(r, settings, upload.user_id):
        if existing.provider == "mbox" and existing.config.get("fingerprint") == mark:
            path.unlink(missing_ok=True)
            _finished(r, settings, upload, existing.id)
            log.info("upload %s repeats account %s; not imported again", upload.id, existing.id)
            return existing.id
    config = {"path": "", "filename": upload.filename, "size": upload.length, "fingerprint": mark}
    try:
        account = accounts.create_account(
            r, settings, upload.user_id, "mbox", upload.filename, config, None
        )
    except AccountError as exc:
        raise UploadError("account_limit", str(exc)) from exc
    final = path.with_name(f"{account.id}.mbox")
    path.rename(final)
    accounts.update(r, settings, account.id, config={**config, "path": str(final)})
    _finished(r, settings, upload, account.id)
    send_task(
        MAIL_IMPORT_MBOX, args=[upload.user_id, str(final)], kwargs={"account_id": account.id}
    )
    log.info("upload %s complete: account %s queued for import", upload.id, account.id)
    return account.id


def _finished(r: redis.Redis, settings: Settings, upload: Upload, account_id: str) -> None:
    key = _keys(settings).upload(upload.user_id, upload.id)
    pipe = r.pipeline(transaction=True)
    pipe.hset(key, "account_id", account_id)
    pipe.expire(key, FINISHED_TTL_SECONDS)
    pipe.execute()


def delete_upload(r: redis.Redis, settings: Settings, upload: Upload) -> None:
    """Forget an upload and delete its file (an imported file belongs to its account)."""
    if not upload.account_id:
        upload.path(settings).unlink(missing_ok=True)
    keys = _keys(settings)
    pipe = r.pipeline(transaction=True)
    pipe.delete(keys.upload(upload.user_id, upload.id))
    pipe.srem(keys.user_uploads(upload.user_id), upload.id)
    pipe.execute()


def delete_user_uploads(r: redis.Redis, settings: Settings, user_id: str) -> int:
    """Delete-my-data: every upload of the person, finished or not; returns how many."""
    found = _user_uploads(r, settings, user_id)
    for upload in found:
        delete_upload(r, settings, upload)
    r.delete(_keys(settings).user_uploads(user_id))
    return len(found)

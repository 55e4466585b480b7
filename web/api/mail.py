"""``POST /api/mail/import``: upload a Takeout mbox, streamed to disk, then imported.

The multipart body is parsed as it arrives and the file part is written
straight into DATA_DIR/uploads (never held in memory, never copied from a
temporary file); anything beyond ``MAILCHAT_UPLOAD_MAX_BYTES`` is a 413.
A file that is not an mbox is refused with the reason. The upload becomes
an account of provider ``mbox``, so its progress, state and message count
show in ``GET /api/accounts`` and the person's notifications, and deleting
that account deletes the imported mail and the file.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from shared.core.ratelimit import for_settings
from shared.core.task_names import MAIL_IMPORT_MBOX
from shared.sync import accounts
from shared.sync.accounts import AccountError
from shared.sync.providers.mbox import NotAnMbox, check_mbox, upload_dir
from web.api.auth import current_user
from web.errors import ApiError, queue_errors
from web.extensions import services
from web.ratelimits import per_user

log = logging.getLogger(__name__)

bp = Blueprint("mail_upload", __name__, url_prefix="/api/mail")

# Werkzeug applies max_form_memory_size to its parse buffer too, which holds up to one
# 64 KiB read plus what is left of the previous one: at 64 KiB any mbox over ~150 KB sent
# through a real server (reads not aligned to parts) was refused as "too large" (issue 11).
# 1 MiB still bounds what a text field may hold in memory.
FORM_MEMORY_BYTES = 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "upload_too_large", f"The mbox is larger than {limit:,} bytes.", field="file"
    )


def spend_upload_bytes(size: int) -> None:
    """Count ``size`` bytes against the person's daily upload budget; 429 beyond it."""
    svc = services()
    decision = for_settings(svc.settings).spend(
        "upload_bytes", f"{svc.settings.upload_bytes_per_day} per day", current_user().id, size
    )
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"At most {svc.settings.upload_bytes_per_day:,} upload bytes a day; try later.",
            field="file",
            retry_after=decision.retry_after_seconds,
        )


@bp.post("/import")
@per_user("upload", "upload_rate_limit")
def upload_mbox() -> Any:
    svc = services()
    limit = svc.settings.upload_max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    # Declared bytes are spent before reading them; a body without a length after.
    declared = request.content_length
    if declared:
        spend_upload_bytes(declared)
    if not (request.mimetype or "").startswith("multipart/form-data"):
        raise ApiError(
            400,
            "invalid_upload",
            "Send the mbox as multipart/form-data field 'file'.",
            field="file",
        )
    token = secrets.token_hex(12)
    partial = upload_dir(svc.settings) / f"{token}.part"
    opened: list[IO[bytes]] = []

    def to_disk(*_args: Any, **_kwargs: Any) -> IO[bytes]:
        if opened:  # only one file part is accepted
            raise ApiError(400, "invalid_upload", "Send exactly one file.", field="file")
        handle = open(partial, "wb")  # noqa: SIM115 - closed below, after parsing
        opened.append(handle)
        return handle

    try:
        _, _, files = parse_form_data(
            request.environ,
            stream_factory=to_disk,
            max_form_memory_size=FORM_MEMORY_BYTES,
            max_content_length=limit,
            silent=False,
        )
        for handle in opened:
            handle.close()
        upload = files.get("file")
        if upload is None or not opened:
            raise ApiError(400, "invalid_upload", "The form has no 'file' part.", field="file")
        check_mbox(partial)
    except RequestEntityTooLarge as exc:
        _discard(partial, opened)
        raise _too_large(limit) from exc
    except NotAnMbox as exc:
        _discard(partial, opened)
        raise ApiError(400, "not_mbox", str(exc), field="file") from exc
    except ValueError as exc:  # Werkzeug's multipart parser on a malformed body
        _discard(partial, opened)
        raise ApiError(
            400,
            "invalid_upload",
            "The upload is not a well-formed multipart/form-data body.",
            field="file",
        ) from exc
    except BaseException:
        _discard(partial, opened)
        raise
    size = partial.stat().st_size
    if not declared:
        try:
            spend_upload_bytes(size)
        except ApiError:
            _discard(partial, opened)
            raise
    filename = _SAFE_NAME.sub("_", Path(upload.filename or "upload.mbox").name)[:120] or "upload"
    user = current_user()
    try:
        account = accounts.create_account(
            svc.redis,
            svc.settings,
            user.id,
            "mbox",
            filename,
            {"path": "", "filename": filename, "size": size},
            None,
        )
    except AccountError as exc:
        _discard(partial, opened)
        raise ApiError(409, "account_limit", str(exc)) from exc
    final = partial.with_name(f"{account.id}.mbox")
    partial.rename(final)
    accounts.update(
        svc.redis,
        svc.settings,
        account.id,
        config={"path": str(final), "filename": filename, "size": size},
    )
    with queue_errors():
        svc.celery.send_task(
            MAIL_IMPORT_MBOX, args=[user.id, str(final)], kwargs={"account_id": account.id}
        )
    log.info("mbox upload %s (%d bytes) queued for import", account.id, size)
    stored = accounts.get_account(svc.redis, svc.settings, account.id)
    assert stored is not None
    return jsonify({"account": stored.public(0), "bytes": size}), 202


def _discard(path: Path, opened: list[IO[bytes]]) -> None:
    for handle in opened:
        handle.close()
    path.unlink(missing_ok=True)

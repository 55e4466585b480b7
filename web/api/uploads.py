"""Resumable mbox uploads over the tus 1.0 core protocol (https://tus.io/protocols/resumable-upload).

A documented protocol rather than our own: creation (``POST /api/uploads``
with ``Upload-Length`` and ``Upload-Metadata: filename <base64>``), the
offset (``HEAD /api/uploads/<id>`` answers ``Upload-Offset``), appends
(``PATCH`` with ``Content-Type: application/offset+octet-stream`` and
``Upload-Offset``) and termination (``DELETE``). Every request carries
``Tus-Resumable: 1.0.0``. The views only translate headers; the storage,
quota and mbox checks live in ``shared.sync.uploads``.

Each PATCH body may be up to ``MAILCHAT_UPLOAD_CHUNK_MAX_BYTES`` (the app's
64 KB JSON limit does not apply to it) and is copied to disk in 64 KiB
pieces. The PATCH that brings the offset to the length turns the file into an
mbox account and queues its import; its response names the account in
``Mailchat-Account-Id``, and ``GET /api/uploads/<id>`` says the same in JSON.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from shared.sync import uploads
from shared.sync.uploads import Upload, UploadError
from web.api.auth import current_user
from web.api.mail import spend_upload_bytes
from web.errors import ApiError, queue_errors
from web.extensions import services
from web.ratelimits import per_user

log = logging.getLogger(__name__)

bp = Blueprint("uploads", __name__, url_prefix="/api/uploads")

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_STATUS = {
    "invalid": 400,
    "interrupted": 400,
    "not_mbox": 400,
    "too_large": 413,
    "quota": 413,
    "disk_full": 507,
    "offset_mismatch": 409,
    "busy": 409,
    "complete": 409,
    "incomplete": 409,
    "account_limit": 409,
    "gone": 404,
}
_CODE = {"quota": "quota_exceeded", "too_large": "upload_too_large", "gone": "upload_not_found"}


def _api_error(exc: UploadError) -> ApiError:
    return ApiError(
        _STATUS.get(exc.kind, 400), _CODE.get(exc.kind, exc.kind), exc.message, field=exc.field
    )


def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.after_request
def _always_tus(response: Response) -> Response:
    return _tus_headers(response)


def _require_tus() -> None:
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        raise ApiError(
            412,
            "tus_version",
            f"Send 'Tus-Resumable: {TUS_VERSION}' (this server speaks tus {TUS_VERSION}).",
            field="Tus-Resumable",
        )


def _int_header(name: str) -> int:
    raw = request.headers.get(name, "")
    if not raw.isdigit():
        raise ApiError(400, "invalid_header", f"'{name}' must be a whole number.", field=name)
    return int(raw)


def _filename(metadata: str) -> str:
    """The ``filename`` pair of ``Upload-Metadata`` (``key base64,key base64``)."""
    for pair in metadata.split(","):
        key, _, value = pair.strip().partition(" ")
        if key == "filename" and value:
            try:
                return base64.b64decode(value, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError) as exc:
                raise ApiError(
                    400,
                    "invalid_header",
                    "'Upload-Metadata' values must be base64.",
                    field="Upload-Metadata",
                ) from exc
    return "upload.mbox"


def _owned(upload_id: str) -> Upload:
    svc = services()
    upload = uploads.get_upload(svc.redis, svc.settings, current_user().id, upload_id)
    if upload is None:
        raise ApiError(404, "upload_not_found", "No such upload.")
    return upload


@bp.post("")
@per_user("upload", "upload_rate_limit")
def create() -> Any:
    _require_tus()
    if request.headers.get("Upload-Defer-Length"):
        raise ApiError(
            400,
            "invalid_header",
            "Send 'Upload-Length': the size is needed to check quota and disk.",
            field="Upload-Length",
        )
    length = _int_header("Upload-Length")
    name = _filename(request.headers.get("Upload-Metadata", ""))
    svc = services()
    if length <= svc.settings.upload_max_bytes:
        spend_upload_bytes(length)  # the daily byte budget, spent when the size is declared
    try:
        upload = uploads.create_upload(svc.redis, svc.settings, current_user().id, length, name)
    except UploadError as exc:
        raise _api_error(exc) from exc
    response = jsonify({"upload": upload.public(svc.settings)})
    response.status_code = 201
    response.headers["Location"] = f"/api/uploads/{upload.id}"
    response.headers["Upload-Offset"] = "0"
    return response


@bp.route("/<upload_id>", methods=["HEAD"])
def offset(upload_id: str) -> Any:
    _require_tus()
    upload = _owned(upload_id)
    settings = services().settings
    response = Response(status=200)
    response.headers["Upload-Offset"] = str(upload.offset(settings))
    response.headers["Upload-Length"] = str(upload.length)
    if upload.account_id:
        response.headers["Mailchat-Account-Id"] = upload.account_id
    return response


@bp.get("/<upload_id>")
def show(upload_id: str) -> Any:
    return jsonify({"upload": _owned(upload_id).public(services().settings)})


@bp.patch("/<upload_id>")
def patch(upload_id: str) -> Any:
    _require_tus()
    svc = services()
    if request.mimetype != OFFSET_CONTENT_TYPE:
        raise ApiError(
            415,
            "invalid_content_type",
            f"Send the bytes as '{OFFSET_CONTENT_TYPE}'.",
            field="Content-Type",
        )
    at = _int_header("Upload-Offset")
    limit = svc.settings.upload_chunk_max_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError(
            413,
            "chunk_too_large",
            f"One PATCH may carry at most {limit:,} bytes; send the rest in further PATCHes.",
            field="Content-Length",
        )
    request.max_content_length = limit  # the app-wide limit is for JSON bodies
    upload = _owned(upload_id)
    stream = request.stream
    try:
        new_offset = uploads.append(svc.redis, svc.settings, upload, at, stream.read, declared)
        account_id = None
        if new_offset == upload.length:
            with queue_errors():
                account_id = uploads.complete(svc.redis, svc.settings, upload, svc.celery.send_task)
    except UploadError as exc:
        raise _api_error(exc) from exc
    response = Response(status=204)
    response.headers["Upload-Offset"] = str(new_offset)
    if account_id:
        response.headers["Mailchat-Account-Id"] = account_id
    return response


@bp.delete("/<upload_id>")
def terminate(upload_id: str) -> Any:
    """tus termination: drop an unfinished upload and its bytes (an imported one stays)."""
    _require_tus()
    svc = services()
    uploads.delete_upload(svc.redis, svc.settings, _owned(upload_id))
    return Response(status=204)

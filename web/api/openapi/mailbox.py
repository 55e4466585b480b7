"""Operations of "your own mailbox" (issue 11): sign-up, tus uploads, the IMAP connection test."""

from __future__ import annotations

from web.api.openapi.components import path
from web.api.openapi.op import BEARER, NO_CONTENT, Op, obj, ok

TUS_HEADERS = (
    "Every request carries `Tus-Resumable: 1.0.0` (else 412); see "
    "https://tus.io/protocols/resumable-upload (core protocol, creation and termination)."
)
UPLOAD = obj(
    ["id", "filename", "length", "offset", "complete", "account_id"],
    id={"type": "string"},
    filename={"type": "string"},
    length={"type": "integer"},
    offset={"type": "integer"},
    complete={"type": "boolean"},
    account_id={"type": ["string", "null"]},
)


def mailbox_operations() -> dict[tuple[str, str], Op]:
    upload_id = path("upload_id", {"type": "string"}, "One of the caller's uploads.")
    return {
        ("POST", "/api/auth/register"): Op(
            "Sign up (then log in with POST /api/auth/login)",
            "auth",
            {
                201: ok(
                    obj(
                        ["user"],
                        user=obj(["id", "email"], id={"type": "string"}, email={"type": "string"}),
                    )
                )
            },
            errors_described={
                400: "Not an email address, or a weak password (`weak_password`: the message states the rules).",
                403: "Sign-up is off (`registration_disabled`).",
                409: "The address has an account (`email_taken`).",
                429: "Too many requests from this address.",
            },
            body=obj(
                ["email", "password"],
                email={"type": "string", "maxLength": 254},
                password={"type": "string", "minLength": 8, "maxLength": 1024},
            ),
        ),
        ("POST", "/api/uploads"): Op(
            "Start a resumable mbox upload (tus creation)",
            "uploads",
            {
                201: ok(
                    obj(["upload"], upload=UPLOAD),
                    "Created; `Location` names it, `Upload-Offset: 0`.",
                )
            },
            errors_described={
                400: "No or a bad `Upload-Length`/`Upload-Metadata`.",
                412: "Not `Tus-Resumable: 1.0.0`.",
                413: "Larger than the limit, or over the person's quota (`quota_exceeded`).",
                429: "Too many uploads or upload bytes today.",
                507: "Not enough free disk (`disk_full`).",
            },
            description=TUS_HEADERS,
            security=BEARER,
        ),
        ("GET", "/api/uploads/<upload_id>"): Op(
            "An upload's state as JSON (HEAD: the tus offset)",
            "uploads",
            {200: ok(obj(["upload"], upload=UPLOAD))},
            errors=(404,),
            description="`HEAD` on the same path (with `Tus-Resumable: 1.0.0`) answers the "
            "server's `Upload-Offset` and `Upload-Length` to resume from, and "
            "`Mailchat-Account-Id` once the upload is complete.",
            parameters=[upload_id],
            security=BEARER,
        ),
        ("PATCH", "/api/uploads/<upload_id>"): Op(
            "Append bytes at `Upload-Offset` (`application/offset+octet-stream`)",
            "uploads",
            {
                204: {
                    "description": "Kept; the new `Upload-Offset`; `Mailchat-Account-Id` when the upload completed and its import was queued."
                }
            },
            errors_described={
                400: "Not an mbox (`not_mbox`, the file is deleted) or the body was cut off.",
                404: "No such upload.",
                409: "`Upload-Offset` is not the server's, or another request is appending.",
                412: "Not `Tus-Resumable: 1.0.0`.",
                413: "More than `MAILCHAT_UPLOAD_CHUNK_MAX_BYTES` or than the upload has left.",
                415: "Not `application/offset+octet-stream`.",
            },
            parameters=[upload_id],
            security=BEARER,
            description=TUS_HEADERS,
        ),
        ("DELETE", "/api/uploads/<upload_id>"): Op(
            "Drop an unfinished upload (tus termination)",
            "uploads",
            {204: NO_CONTENT},
            errors=(404,),
            errors_described={412: "Not `Tus-Resumable: 1.0.0`."},
            parameters=[upload_id],
            security=BEARER,
        ),
        ("POST", "/api/accounts/imap/test"): Op(
            "Test an IMAP login (the form's Test connection), within 10 s",
            "accounts",
            {
                200: ok(
                    obj(
                        ["ok", "code", "message", "field", "folders"],
                        ok={"type": "boolean"},
                        code={"type": "string"},
                        message={"type": "string"},
                        field={"type": ["string", "null"]},
                        folders={"type": "array", "items": {"type": "string"}},
                    ),
                    "The answer either way: `ok`, or the reason and the field to fix.",
                )
            },
            body=obj(
                ["host", "username", "password"],
                host={"type": "string", "minLength": 1, "maxLength": 253},
                port={"type": "integer", "minimum": 1, "maximum": 65535},
                tls={"anyOf": [{"type": "boolean"}, {"enum": ["ssl", "starttls", "none"]}]},
                username={"type": "string", "minLength": 1, "maxLength": 320},
                password={"type": "string", "minLength": 1, "maxLength": 1024},
            ),
            security=BEARER,
        ),
    }

"""Gmail API responses shaped like the API reference, served by the library's own
``HttpMockSequence`` (Google cannot be reached from here; the client, its
bundled discovery document, its batch parser and google-auth's token refresh
all run for real on top of it)."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.http import HttpMockSequence

from shared.sync.providers.gmail_api import SCOPE

Response = tuple[dict[str, str], str]

LABELS = {
    "labels": [
        {"id": "INBOX", "name": "INBOX", "type": "system"},
        {"id": "UNREAD", "name": "UNREAD", "type": "system"},
        {"id": "STARRED", "name": "STARRED", "type": "system"},
        {"id": "Label_7", "name": "Recruiters", "type": "user"},
    ]
}


def ok(body: dict[str, Any], **headers: str) -> Response:
    return (
        {"status": "200", "content-type": "application/json; charset=UTF-8", **headers},
        json.dumps(body),
    )


def error(status: int, reason: str, message: str, grpc: str, **headers: str) -> Response:
    """A Google API error body: ``{"error": {"code", "message", "errors": [...], "status"}}``."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": grpc,
        }
    }
    return (
        {"status": str(status), "content-type": "application/json; charset=UTF-8", **headers},
        json.dumps(body),
    )


def token(scope: str = SCOPE) -> Response:
    """The OAuth token endpoint answering a refresh."""
    return ok(
        {
            "access_token": "ya29." + secrets.token_hex(8),
            "expires_in": 3599,
            "scope": scope,
            "token_type": "Bearer",
        }
    )


def revoked() -> Response:
    return (
        {"status": "400", "content-type": "application/json; charset=utf-8"},
        json.dumps(
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        ),
    )


def profile(history_id: str, total: int = 0, address: str = "me@gmail.com") -> Response:
    return ok(
        {
            "emailAddress": address,
            "messagesTotal": total,
            "threadsTotal": total,
            "historyId": history_id,
        }
    )


def labels() -> Response:
    return ok(LABELS)


def listing(ids: list[str], next_token: str | None = None, estimate: int | None = None) -> Response:
    body: dict[str, Any] = {
        "messages": [{"id": i, "threadId": f"t{i}"} for i in ids],
        "resultSizeEstimate": len(ids) if estimate is None else estimate,
    }
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


def history(
    records: list[dict[str, Any]], history_id: str, next_token: str | None = None
) -> Response:
    body: dict[str, Any] = (
        {"history": records, "historyId": history_id} if records else {"historyId": history_id}
    )
    if next_token:
        body["nextPageToken"] = next_token
    return ok(body)


def raw_email(message_id: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Recruiter <jobs@example.com>"
    msg["To"] = "me@gmail.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}@mail.gmail.com>"
    # Recent, whenever the tests run: mail older than the retention would not be kept.
    msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(days=1))
    msg.set_content(f"Body of {subject}")
    return msg.as_bytes()


def message(
    gmail_id: str, label_ids: list[str] | None = None, raw: bytes | None = None
) -> dict[str, Any]:
    """A ``messages.get format=raw`` resource."""
    data = raw if raw is not None else raw_email(gmail_id, f"Subject {gmail_id}")
    return {
        "id": gmail_id,
        "threadId": f"t{gmail_id}",
        "labelIds": ["INBOX", "UNREAD"] if label_ids is None else label_ids,
        "snippet": "",
        "sizeEstimate": len(data),
        "historyId": "1",
        "internalDate": str(int(datetime.now(UTC).timestamp() * 1000)),
        "raw": base64.urlsafe_b64encode(data).decode().rstrip("="),
    }


_REASONS = {
    200: "OK",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def batch(parts: list[tuple[str, int, dict[str, Any]]]) -> Response:
    """A multipart/mixed batch response; each part answers the request whose Content-ID it names."""
    boundary = "batch_" + secrets.token_hex(6)
    chunks = []
    for request_id, status, body in parts:
        chunks.append(
            f"--{boundary}\r\n"
            "Content-Type: application/http\r\n"
            f"Content-ID: <response-{secrets.token_hex(4)} + {request_id}>\r\n\r\n"
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Content-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(body)}\r\n"
        )
    payload = "".join(chunks) + f"--{boundary}--\r\n"
    return ({"status": "200", "content-type": f"multipart/mixed; boundary={boundary}"}, payload)


def batch_of(*messages: dict[str, Any]) -> Response:
    return batch([(m["id"], 200, m) for m in messages])


def transport(responses: list[Response]) -> tuple[HttpMockSequence, Any]:
    """The mock and a factory wrapping it the way production wraps httplib2 (AuthorizedHttp)."""
    mock = HttpMockSequence(list(responses))
    return mock, lambda creds: AuthorizedHttp(creds, http=mock)


def batch_ids(mock: HttpMockSequence) -> list[list[str]]:
    """The message ids asked for in each batch request the client sent."""
    asked = []
    for uri, _method, body, _headers in mock.request_sequence:
        if "/batch" in uri:
            text = body if isinstance(body, str) else body.decode()
            asked.append(
                [
                    line.split("/messages/")[1].split("?")[0]
                    for line in text.splitlines()
                    if line.startswith("GET ")
                ]
            )
    return asked


def uris(mock: HttpMockSequence) -> list[str]:
    return [uri for uri, *_ in mock.request_sequence]

"""Every JSON endpoint's operation: request (body, query, path), answers, errors.

To document a new route, add one entry to ``operations()`` keyed by the
method and the Flask rule exactly as ``app.url_map`` shows it (``<id>``, not
``{id}``); ``tests/web/api/test_openapi.py`` fails while a route has none.
``Op`` (op.py) adds what every operation of its kind shares.
"""

from __future__ import annotations

from typing import Any

from shared.assistant.answer import MAX_WINDOW_DAYS, MIN_WINDOW_DAYS
from shared.core.settings import Settings
from web.api.openapi.accounts import account_operations
from web.api.openapi.components import (
    EMAIL_ID_PATTERN,
    EVENT_ID_PATTERN,
    ID_PATTERN,
    Schema,
    path,
    query,
    ref,
)
from web.api.openapi.mailbox import mailbox_operations
from web.api.openapi.op import BEARER, BEARER_OR_TICKET, NO_CONTENT, Op, obj, ok


def window_days_schema(*, in_query: bool) -> Schema:
    """1..365; JSON bodies may also send it as a string of digits (as query strings are)."""
    number: Schema = {"type": "integer", "minimum": MIN_WINDOW_DAYS, "maximum": MAX_WINDOW_DAYS}
    if in_query:
        return number
    digits = r"^\s*0*([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-5])\s*$"
    return {"anyOf": [number, {"type": "string", "pattern": digits}]}


def ask_fields(settings: Settings, *, in_query: bool) -> dict[str, Schema]:
    question = {"type": "string", "minLength": 1, "maxLength": settings.max_question_chars}
    an_id = (
        {"type": "string", "pattern": ID_PATTERN}
        if in_query
        else {
            "type": ["string", "null"],
            "pattern": ID_PATTERN,
        }
    )
    return {
        "q": question,
        "window_days": window_days_schema(in_query=in_query),
        "conversation_id": an_id,
        "client_message_id": an_id,
    }


def chat_body(settings: Settings) -> Schema:
    fields = ask_fields(settings, in_query=False)
    question = fields.pop("q")
    user_message = obj(["role", "content"], role={"const": "user"}, content=question)
    return {
        "type": "object",
        "description": "`q`, or the seed clients' `messages` (the last user message is the "
        "question; `messages` is ignored when `q` is present).",
        "properties": {"q": question, **fields},
        "oneOf": [
            {"required": ["q"]},
            {
                "required": ["messages"],
                "not": {"required": ["q"]},
                "properties": {"messages": {"type": "array", "contains": user_message}},
            },
        ],
    }


def sse(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


# An event id, or empty (the same as none given).
POSITION = {"type": "string", "pattern": "^([0-9]{1,20}(-[0-9]{1,20})?)?$"}
STREAMING_OFF = (
    "A server it needs is down, or streaming is switched off (`X-Chat-Streaming-Disabled: 1`, "
    "`code` streaming_disabled: use POST /api/chat)."
)
SSE_FORMAT = (
    "`retry:` once, then `ready {conversation_id, epoch, client_message_id}`, the log's events "
    "(`id:` the event id, `event:` its type, `data:` the event as JSON), `: ping` comments, "
    "and `reset` or `reconnect` (no `id:`) when the client must refetch or reconnect."
)


def core_operations(settings: Settings) -> dict[tuple[str, str], Op]:
    ask_query = [
        query(name, schema, f"As `{name}` of POST /api/chat.", required=name == "q")
        for name, schema in ask_fields(settings, in_query=True).items()
    ]
    conversation = path("conversation_id", {"type": "string"}, "A conversation of the caller.")
    credentials = obj(
        ["email", "password"],
        email={"type": "string", "minLength": 1, "maxLength": 254},
        password={"type": "string", "minLength": 1, "maxLength": 1024},
    )
    return {
        ("POST", "/api/auth/login"): Op(
            "Log in: an access token",
            "auth",
            {200: ok(ref("Tokens"))},
            errors=(429, 503),
            errors_described={401: "Email or password is wrong."},
            body=credentials,
        ),
        ("POST", "/api/auth/refresh"): Op(
            "The next access and refresh tokens for a session's newest refresh token",
            "auth",
            {200: ok(ref("Tokens"))},
            errors=(429, 503),
            errors_described={
                401: "Unknown, reused (the session is revoked), expired or ended refresh token."
            },
            body=obj(
                ["refresh_token"],
                refresh_token={"type": "string", "minLength": 1, "maxLength": 300},
            ),
        ),
        ("POST", "/api/auth/logout"): Op(
            "End the caller's session: its refresh token, access tokens and open streams",
            "auth",
            {204: NO_CONTENT},
            errors=(429,),
            security=BEARER,
        ),
        ("POST", "/api/auth/password"): Op(
            "Change the password; every other session of the person ends",
            "auth",
            {200: ok(obj(["sessions_ended"], sessions_ended={"type": "integer"}))},
            errors=(429,),
            errors_described={403: "The old password is wrong."},
            body=obj(
                ["old_password", "new_password"],
                old_password={"type": "string", "minLength": 1, "maxLength": 1024},
                new_password={"type": "string", "minLength": 1, "maxLength": 1024},
            ),
            security=BEARER,
        ),
        ("POST", "/api/chat"): Op(
            "Ask, and get the whole answer as one JSON object",
            "chat",
            {200: ok(ref("ChatAnswer"))},
            errors=(404, 429),
            body=chat_body(settings),
            security=BEARER,
            errors_described={
                503: "No worker answered in time, or a server it needs is down.",
            },
            description="Repeating a `client_message_id` returns the same answer without "
            "asking again.",
        ),
        ("POST", "/api/chat/ticket"): Op(
            "A single-use, 60-second ticket for EventSource URLs",
            "chat",
            {200: ok(obj(["ticket"], ticket={"type": "string"}, expires_in={"type": "integer"}))},
            security=BEARER,
        ),
        ("GET", "/api/chat/stream"): Op(
            "Ask, and stream the answer (Server-Sent Events)",
            "chat",
            {200: sse(SSE_FORMAT)},
            errors=(400, 404, 429),
            parameters=ask_query,
            security=BEARER_OR_TICKET,
            errors_described={503: STREAMING_OFF},
        ),
        ("GET", "/api/conversations"): Op(
            "The caller's conversations, newest first",
            "conversations",
            {
                200: ok(
                    obj(
                        ["conversations"],
                        conversations={
                            "type": "array",
                            "items": obj(
                                ["id", "title", "last_active_at"],
                                id={"type": "string"},
                                title={"type": "string"},
                                last_active_at={"type": "integer"},
                            ),
                        },
                    )
                )
            },
            security=BEARER,
        ),
        ("GET", "/api/conversations/<conversation_id>/events"): Op(
            "A conversation's events after `after` (a replay after `reset`)",
            "conversations",
            {
                200: ok(
                    obj(
                        ["epoch", "reset", "events"],
                        epoch={"type": ["string", "null"]},
                        reset={"type": "boolean"},
                        events={"type": "array", "items": ref("Event")},
                    )
                )
            },
            errors=(400, 404),
            parameters=[
                conversation,
                query("after", {"type": "string", "pattern": EVENT_ID_PATTERN}, "Default 0."),
                query("epoch", {"type": "string"}, "The epoch the client's `after` is from."),
            ],
            security=BEARER,
        ),
        ("GET", "/api/conversations/<conversation_id>/stream"): Op(
            "Follow a conversation (Server-Sent Events), resuming after Last-Event-ID",
            "conversations",
            {200: sse(SSE_FORMAT)},
            errors=(400, 404),
            parameters=[
                conversation,
                query("after", POSITION, "Where to resume (default 0); Last-Event-ID wins."),
                query("epoch", {"type": "string"}, "The epoch the client's position is from."),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "Sent by a reconnecting EventSource.",
                    "schema": POSITION,
                },
            ],
            security=BEARER_OR_TICKET,
            errors_described={503: STREAMING_OFF},
        ),
        ("GET", "/api/emails/<email_id>"): Op(
            "Open a cited email (owner only)",
            "emails",
            {200: ok(ref("Email"))},
            errors=(400,),
            errors_described={404: "No such email, or not the caller's (the same answer)."},
            parameters=[
                path("email_id", {"type": "string", "pattern": EMAIL_ID_PATTERN}, "Its id.")
            ],
            security=BEARER,
        ),
        ("DELETE", "/api/me/data"): Op(
            "Delete everything of the caller; every access token is revoked",
            "me",
            {
                200: ok(
                    obj(
                        ["deleted", "message"],
                        deleted={"type": "object"},
                        message={"type": "string"},
                    )
                )
            },
            security=BEARER,
            errors_described={503: "Stopped half-way; the same token can retry."},
        ),
        ("POST", "/api/ux/chat/opened"): Op(
            "Count a chat page opened (telemetry; no body)",
            "client",
            {204: NO_CONTENT},
            errors=(400, 429),
            security=BEARER,
        ),
        ("POST", "/api/ux/heartbeat"): Op(
            "Count a visible chat page (telemetry; no body)",
            "client",
            {204: NO_CONTENT},
            errors=(400, 429),
            security=BEARER,
        ),
        ("GET", "/client/config"): Op(
            "The chat page's limits and intervals",
            "client",
            {200: ok({"type": "object", "required": ["max_question_chars", "max_request_bytes"]})},
        ),
        ("GET", "/healthz"): Op(
            "Alive", "health", {200: ok(obj(["status"], status={"const": "ok"}))}
        ),
        ("GET", "/readyz"): Op(
            "Ready: Redis, Elasticsearch and the write alias answer",
            "health",
            {
                200: ok(
                    obj(["status", "checks"], status={"const": "ready"}, checks={"type": "object"})
                )
            },
            errors_described={503: "Not ready; `field` names the first failing check."},
        ),
        ("GET", "/openapi.json"): Op(
            "This document", "meta", {200: ok({"type": "object", "required": ["openapi", "paths"]})}
        ),
        ("GET", "/ws"): Op(
            "The WebSocket (an HTTP upgrade)",
            "realtime",
            {101: {"description": "Switched to the WebSocket protocol."}},
            errors_described={400: "Not a WebSocket upgrade request."},
            description=WS_PROTOCOL,
        ),
        **account_operations(),
        **mailbox_operations(),
    }


WS_PROTOCOL = """\
Frames are JSON text. The Origin must be allowed (else close 1008). The first client frame
must be `{"type":"auth","token":"<access token>"}` within 5 s (else close 4401).

Client frames: `chat.send {client_message_id, conversation_id?, q, window_days}`,
`resume {conversation_id, epoch, after}`, `ping`, `pong`.

Server frames: every log event as itself (`{id, type, conversation_id, data}`), and `ready`,
`reset`, `pong`, `ping`, `error {code, message, field}` (the socket stays open),
`advice {why, retry_after_ms}`. The server pings every 30 s and closes (1001) a socket whose
pong is 10 s late; a frame over the size limit closes with 1009; 1012 on restart and 1013 when
the process is full, each after an `advice` frame.
"""

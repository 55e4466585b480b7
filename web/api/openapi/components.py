"""The building blocks of the OpenAPI document: the error shape, shared schemas, responses.

One place for what every operation repeats (``{"error": {"code", "message",
"field"}}``, 401 for a missing token, 503 with ``Retry-After``), so an
operation in ``operations`` names only what is its own.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"
Schema = dict[str, Any]

# The id rule of web/validation.py (conversation and client message ids).
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
# shared/realtime/eventlog.py: a Redis stream entry id such as 1700000000000-0 (or 0).
EVENT_ID_PATTERN = "^[0-9]{1,20}(-[0-9]{1,20})?$"
# shared/index/emails.py: an email document id.
EMAIL_ID_PATTERN = "^[A-Za-z0-9_.:@+=-]{1,256}$"

STRING_OR_NULL: Schema = {"type": ["string", "null"]}

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. invalid_field."},
                "message": {"type": "string", "description": "For a person to read."},
                "field": {
                    "type": ["string", "null"],
                    "description": "The request field to fix, when one is to blame.",
                },
            },
        }
    },
}

USER: Schema = {
    "type": "object",
    "required": ["id", "email"],
    "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
}

TOKENS: Schema = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "user"],
    "properties": {
        "access_token": {"type": "string", "description": "An HS256 JWT for Authorization."},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer", "description": "Seconds the access token lives."},
        "refresh_token": {"type": "string"},
        "refresh_expires_in": {"type": "integer"},
        "user": {"$ref": "#/components/schemas/User"},
    },
}

CITATION: Schema = {
    "type": "object",
    "required": ["id", "subject", "from", "received_at", "snippet"],
    "properties": {
        "id": {"type": "string"},
        "subject": {"type": "string"},
        "from": {"type": "string"},
        "received_at": {"type": "string"},
        "snippet": {"type": "string"},
    },
}

CHAT_ANSWER: Schema = {
    "type": "object",
    "required": ["conversation_id", "answer", "citations", "search"],
    "properties": {
        "conversation_id": {"type": "string"},
        "answer": {"type": "string"},
        "citations": {"type": "array", "items": {"$ref": "#/components/schemas/Citation"}},
        "search": {
            "type": "object",
            "description": "What was searched: query, filters, window_days, total_hits.",
            "properties": {
                "query": {},
                "filters": {},
                "window_days": {"type": "integer"},
                "total_hits": {"type": "integer"},
            },
        },
        "phrasing": {
            "type": "object",
            "description": "Only when a language model was configured: who phrased the "
            "answer (llm or rules) and, for rules, why the model's reply was not used.",
            "required": ["by", "fallback"],
            "properties": {
                "by": {"type": "string", "enum": ["llm", "rules"]},
                "fallback": STRING_OR_NULL,
            },
        },
    },
}

EVENT: Schema = {
    "type": "object",
    "required": ["id", "type", "conversation_id", "data"],
    "description": "One entry of a conversation's event log (question, search, hits, delta, done, error).",
    "properties": {
        "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
        "type": {"type": "string"},
        "conversation_id": {"type": "string"},
        "data": {"type": "object"},
    },
}

ACCOUNT: Schema = {
    "type": "object",
    "required": ["id", "provider", "address", "state", "message_count", "lag_seconds"],
    "description": "A connected mailbox. Credentials are never returned.",
    "properties": {
        "id": {"type": "string"},
        "provider": {"enum": ["imap", "gmail", "mbox"]},
        "address": {"type": "string"},
        "state": {"enum": ["idle", "syncing", "needs_reauth", "error"]},
        "paused": {"type": "boolean", "description": "Paused by its owner: nothing syncs."},
        "created_at": STRING_OR_NULL,
        "last_success_at": STRING_OR_NULL,
        "last_error": STRING_OR_NULL,
        "last_error_at": STRING_OR_NULL,
        "message_count": {"type": "integer"},
        "lag_seconds": {"type": "integer"},
        "last_run": {},
        "progress": {"type": ["object", "null"]},
        "watch_expires_at": STRING_OR_NULL,
        "settings": {"type": "object"},
    },
}

EMAIL: Schema = {
    "type": "object",
    "required": ["id", "subject", "from", "from_name", "from_address", "to", "cc"]
    + ["received_at", "labels", "body", "body_truncated", "attachment_names"],
    "properties": {
        "id": {"type": "string"},
        "subject": {"type": "string"},
        "from": {"type": "string"},
        "from_name": {"type": "string"},
        "from_address": {"type": "string"},
        "to": {"type": "array", "items": {"type": "string"}},
        "cc": {"type": "array", "items": {"type": "string"}},
        "received_at": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "body": {"type": "string"},
        "body_truncated": {"type": "boolean"},
        "attachment_names": {"type": "array", "items": {"type": "string"}},
    },
}

SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "User": USER,
    "Tokens": TOKENS,
    "Citation": CITATION,
    "ChatAnswer": CHAT_ANSWER,
    "Event": EVENT,
    "Account": ACCOUNT,
    "Email": EMAIL,
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token from POST /api/auth/login (HS256, short-lived).",
    },
    "ticket": {
        "type": "apiKey",
        "in": "query",
        "name": "ticket",
        "description": "For EventSource, which cannot send headers: a single-use, "
        "60-second ticket from POST /api/chat/ticket.",
    },
}

RETRY_AFTER: Schema = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# Why each status is returned, unless an operation says better.
ERROR_MEANINGS: dict[int, str] = {
    400: "Bad input; `field` names what to fix.",
    401: "No, a bad, expired or revoked access token (or stream ticket).",
    403: "Not allowed.",
    404: "Not found (or not yours: the same answer).",
    409: "Conflicts with the current state.",
    413: "The request body is over the size limit.",
    414: "The URL is over the request-line limit (`field` url); send a long question "
    "to POST /api/chat.",
    429: "Too many requests; wait `Retry-After` seconds.",
    503: "A server it needs is down or busy; retry after `Retry-After` seconds.",
}
RETRY_STATUSES = {429, 503}


def json_content(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """A documented error: the JSON error shape, plus ``Retry-After`` on 429 and 503."""
    response: dict[str, Any] = {
        "description": description or ERROR_MEANINGS[status],
        "content": json_content(ref("Error")),
    }
    if status in RETRY_STATUSES:
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def json_request(schema: Schema, description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"required": True, "content": json_content(schema)}
    if description:
        body["description"] = description
    return body


def query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def path(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }

"""Operations of the mail accounts, the mbox upload and Gmail (OAuth and push)."""

from __future__ import annotations

from typing import Any

from web.api.openapi.components import Schema, json_content, path, query, ref
from web.api.openapi.op import BEARER, Op
from web.api.openapi.op import ok as _ok


def _account(description: str = "OK") -> dict[str, Any]:
    return _ok(
        {"type": "object", "required": ["account"], "properties": {"account": ref("Account")}},
        description,
    )


IMAP_ACCOUNT: Schema = {
    "type": "object",
    "description": "An IMAP mailbox; its first sync starts at once. Gmail is added through "
    "GET /api/accounts/gmail/connect instead.",
    "required": ["provider", "host", "username"],
    "properties": {
        "provider": {"const": "imap"},
        "host": {"type": "string", "minLength": 1, "maxLength": 253},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 993},
        "username": {"type": "string", "minLength": 1, "maxLength": 320},
        "tls": {"anyOf": [{"type": "boolean"}, {"enum": ["ssl", "starttls", "none"]}]},
        "folders": {
            "type": ["array", "null"],
            "maxItems": 100,
            "items": {"type": "string", "minLength": 1, "maxLength": 512},
        },
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "oauth2_refresh_token": {
            "type": ["string", "null"],
            "maxLength": 2048,
            "description": "Instead of a password, for Gmail's IMAP with XOAUTH2.",
        },
    },
    "anyOf": [
        {"required": ["password"]},
        {
            "required": ["oauth2_refresh_token"],
            "properties": {"oauth2_refresh_token": {"minLength": 1}},
        },
    ],
}


def account_operations() -> dict[tuple[str, str], Op]:
    account_id = path("account_id", {"type": "string"}, "One of the caller's accounts.")
    not_configured = {
        "description": "Gmail is not configured on this server (or a server it needs is down).",
        "content": json_content(ref("Error")),
    }
    return {
        ("GET", "/api/accounts"): Op(
            "The caller's mail accounts",
            "accounts",
            {
                200: _ok(
                    {
                        "type": "object",
                        "required": ["accounts"],
                        "properties": {"accounts": {"type": "array", "items": ref("Account")}},
                    }
                )
            },
            security=BEARER,
        ),
        ("POST", "/api/accounts"): Op(
            "Connect an IMAP mailbox",
            "accounts",
            {201: _account("Connected; the first sync is queued.")},
            errors_described={
                400: "Bad input; also a host on a private network (`host_not_allowed`) or no "
                "TLS to another machine (`tls_required`).",
                409: "Already connected, or too many accounts.",
            },
            body=IMAP_ACCOUNT,
            security=BEARER,
        ),
        ("PATCH", "/api/accounts/<account_id>"): Op(
            "A new password for an IMAP account; it syncs again",
            "accounts",
            {200: _account()},
            errors=(404,),
            body={
                "type": "object",
                "required": ["password"],
                "properties": {"password": {"type": "string", "minLength": 1, "maxLength": 1024}},
            },
            parameters=[account_id],
            security=BEARER,
        ),
        ("DELETE", "/api/accounts/<account_id>"): Op(
            "Remove an account and its mail",
            "accounts",
            {
                200: _ok(
                    {
                        "type": "object",
                        "required": ["deleted"],
                        "properties": {
                            "deleted": {"const": True},
                            "documents_deleted": {"type": "integer"},
                        },
                    }
                ),
                202: _ok(
                    {
                        "type": "object",
                        "required": ["deleted", "deleting"],
                        "properties": {"deleted": {"const": False}, "deleting": {"const": True}},
                    },
                    "A sync holds the account; it deletes it when it stops.",
                ),
            },
            errors=(404,),
            parameters=[account_id],
            security=BEARER,
        ),
        ("POST", "/api/accounts/<account_id>/sync"): Op(
            "Sync an account now",
            "accounts",
            {
                202: _ok(
                    {
                        "type": "object",
                        "required": ["queued", "account"],
                        "properties": {"queued": {"const": True}, "account": ref("Account")},
                    },
                    "Queued.",
                )
            },
            errors=(404, 429),
            errors_described={
                409: "Needs new credentials first, paused, or an mbox (nothing to sync)."
            },
            parameters=[account_id],
            security=BEARER,
        ),
        ("POST", "/api/accounts/<account_id>/pause"): Op(
            "Pause an account's syncing (a running sync stops after its batch)",
            "accounts",
            {200: _account("Paused.")},
            errors=(404,),
            parameters=[account_id],
            security=BEARER,
        ),
        ("POST", "/api/accounts/<account_id>/resume"): Op(
            "Resume a paused account; it syncs from where it stopped",
            "accounts",
            {202: _account("Resumed; a sync is queued.")},
            errors=(404, 429),
            parameters=[account_id],
            security=BEARER,
        ),
        ("GET", "/api/accounts/gmail/connect"): Op(
            "Google's consent URL to connect Gmail",
            "accounts",
            {
                200: _ok(
                    {
                        "type": "object",
                        "required": ["url"],
                        "properties": {"url": {"type": "string"}},
                    }
                ),
                503: not_configured,
            },
            security=BEARER,
        ),
        ("GET", "/api/accounts/gmail/callback"): Op(
            "Google's redirect back after consent (public: the signed state is checked)",
            "accounts",
            {
                200: _account("Reconnected."),
                201: _account("Connected."),
                303: {
                    "description": "A browser (Accept: text/html) is sent back to the page: "
                    "`/?gmail=connected`, or `/?gmail=error&reason=...`.",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                503: not_configured,
            },
            errors_described={
                400: "Access denied, a missing, invalid, used or foreign state, or a failed "
                "code exchange.",
                409: "Too many accounts.",
            },
            parameters=[
                query("code", {"type": "string"}, "From Google."),
                query("state", {"type": "string"}, "The signed state of the connect step."),
                query("error", {"type": "string"}, "Google's refusal, if any."),
            ],
        ),
        ("POST", "/api/gmail/push"): Op(
            "Gmail's Pub/Sub push (public: the shared `?token=` is checked)",
            "accounts",
            {204: {"description": "The syncs it implies are queued."}},
            errors=(503,),
            errors_described={
                400: "Not a Pub/Sub push message.",
                403: "Unknown push token.",
            },
            parameters=[
                query("token", {"type": "string"}, "The shared push secret.", required=True)
            ],
            body={"type": "object", "description": "Pub/Sub's push envelope: {message: {data}}."},
        ),
        ("POST", "/api/mail/import"): Op(
            "Upload a Takeout mbox; it is imported as an account of provider mbox",
            "accounts",
            {
                202: _ok(
                    {
                        "type": "object",
                        "required": ["account", "bytes"],
                        "properties": {"account": ref("Account"), "bytes": {"type": "integer"}},
                    },
                    "Stored; import queued.",
                )
            },
            errors=(400, 409, 413, 429),
            security=BEARER,
            multipart={
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "contentMediaType": "application/octet-stream"}
                },
            },
        ),
    }

"""Request-body validation that names the offending field.

Small and explicit on purpose: each chat field has one rule, and each
failure becomes a 400 whose ``field`` tells the client what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request

from web.errors import ApiError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says why not."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.", field="body")
    return body


def required_string(body: dict[str, Any], name: str, max_length: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"'{name}' must be a non-empty string.", field=name)
    if len(value) > max_length:
        raise ApiError(
            400, "invalid_field", f"'{name}' must be at most {max_length} characters.", field=name
        )
    return value.strip()


def optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _ID.match(value):
        raise ApiError(
            400, "invalid_field", f"'{name}' must be 1-64 letters, digits, '_' or '-'.", field=name
        )
    return value


def int_in_range(body: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(
            400,
            "invalid_field",
            f"'{name}' must be a whole number from {low} to {high}.",
            field=name,
        )
    return value


def question_from(body: dict[str, Any], max_length: int) -> str:
    """The question: ``q``, or the last user message of the seed clients' ``messages`` list."""
    if "q" in body or "messages" not in body:
        return required_string(body, "q", max_length)
    messages = body["messages"]
    if not isinstance(messages, list):
        raise ApiError(400, "invalid_field", "'messages' must be a list.", field="messages")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return required_string(message, "content", max_length)
    raise ApiError(400, "invalid_field", "'messages' has no user message.", field="messages")

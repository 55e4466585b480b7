"""Request-body validation that names the offending field.

Small and explicit on purpose: each chat field has one rule, and each
failure becomes a 400 whose ``field`` tells the client what to fix.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from web.errors import ApiError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is True


def parse_json(raw: str | bytes) -> Any:
    """``json.loads`` whose every failure is a ``ValueError``.

    A document nested thousands deep raises ``RecursionError`` from the
    decoder, which no caller expects from bad input.
    """
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def reject_lone_surrogates(value: Any, field: str | None = None) -> None:
    """A 400 naming the top-level field whose text holds a lone surrogate (``"\\ud800"``).

    JSON may escape one, Python keeps it, and the first UTF-8 encode (Redis,
    Elasticsearch, a log line) fails deep inside a request as a 500.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(
                400, "invalid_field", f"'{field}' is not valid Unicode text.", field=field
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_lone_surrogates(key, field or str(key))
            reject_lone_surrogates(item, field or str(key))
    elif isinstance(value, list):
        for item in value:
            reject_lone_surrogates(item, field)


def _whole_body() -> bytes:
    """The body, or a 413 when a chunked body (no Content-Length) is over the limit.

    Werkzeug stops reading a chunked body at ``MAX_CONTENT_LENGTH`` and hands
    over the truncated bytes without complaint (they then look like broken
    JSON); one byte more on the wire means the body was too large.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says why not."""
    body = None
    if request.is_json:
        try:
            body = parse_json(_whole_body())
        except ValueError:
            body = None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.", field="body")
    reject_lone_surrogates(body)
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
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
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

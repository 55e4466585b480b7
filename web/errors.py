"""JSON errors: ``{"error": {"code", "message", "field"}}`` with the right status.

Views raise ``ApiError``; every HTTP error Flask or Werkzeug raises on its
own (404, 405, 413, ...) is rendered the same way, so a client never has to
parse an HTML error page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import elasticsearch
import redis
from flask import Flask, Response, jsonify, request
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error to send to the client as JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


QUEUE_RETRY_AFTER_SECONDS = 5
SERVER_DOWN_RETRY_AFTER_SECONDS = 5

# A server we depend on being unreachable is a 503 the client may retry, not our bug.
# Each entry: the exceptions, the error code and the message.
SERVER_DOWN: list[tuple[tuple[type[BaseException], ...], str, str]] = [
    (
        (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError),
        "storage_unavailable",
        "The event store is unreachable; try again.",
    ),
    (
        (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout),
        "search_unavailable",
        "The search engine is unreachable; try again.",
    ),
]


def server_down(error: BaseException) -> tuple[str, str] | None:
    """``(code, message)`` when ``error`` means a server is down (also for WebSocket advice)."""
    for types, code, message in SERVER_DOWN:
        if isinstance(error, types):
            return code, message
    return None


@contextmanager
def queue_errors() -> Iterator[None]:
    """Enqueueing needs the broker: when it is unreachable, a 503 the client may retry."""
    try:
        yield
    except OperationalError as exc:
        raise ApiError(
            503,
            "queue_unavailable",
            "The task queue is unreachable; try again.",
            retry_after=QUEUE_RETRY_AFTER_SECONDS,
        ) from exc


def error_response(
    status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
) -> Any:
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Any:
        return error_response(
            error.status, error.code, error.message, error.field, error.retry_after
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        code = (error.name or "error").lower().replace(" ", "_")
        field = "body" if error.code == 413 else None  # the only part a 413 can be about
        return error_response(error.code or 500, code, error.description or error.name, field)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        down = server_down(error)
        if down is not None:
            log.warning("%s: %r", down[0], error)
            return error_response(503, *down, retry_after=SERVER_DOWN_RETRY_AFTER_SECONDS)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        """API answers hold personal mail: no cache may keep them, no browser may guess a type."""
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith("/api/") or response.mimetype == "application/json":
            response.headers["Cache-Control"] = "no-store"
        return response

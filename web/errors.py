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

from flask import Flask, jsonify
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
        return error_response(error.code or 500, code, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")

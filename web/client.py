"""The browser client: the chat page at ``/``, its ES modules, its config, its telemetry.

The page is plain HTML, CSS and ES modules served as they are in
``web/static`` (no build step). Module URLs carry no content hash, so every
static response is ``no-cache``: the browser revalidates with the ETag and
a deploy is picked up on the next load, never half of one.

The two UX telemetry endpoints are authenticated (the app-wide bearer
check), body-less and rate-limited per person; they only count.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_from_directory

from shared.core import metrics
from shared.core.user_agents import user_agent_type
from web.api.auth import current_user
from web.errors import ApiError
from web.extensions import services
from web.ratelimits import per_user
from web.realtime.asking import DEFAULT_WINDOW_DAYS

log = logging.getLogger(__name__)

bp = Blueprint("client", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
WINDOWS_DAYS = (7, 30, 60, 90)

# The page loads only its own scripts and styles, and talks only to its own
# origin ('self' covers ws:/wss: of the same host). Tickets ride in stream
# URLs, so no Referer ever carries one elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def _no_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/")
def index() -> Any:
    response = _no_cache(send_from_directory(STATIC_DIR, "index.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/static/<path:filename>")
def static(filename: str) -> Any:
    # send_from_directory refuses paths that leave STATIC_DIR (404).
    return _no_cache(send_from_directory(STATIC_DIR, filename))


@bp.get("/client/config")
def client_config() -> Any:
    """What the page needs before it can check input: limits and intervals (nothing secret)."""
    settings = services().settings
    return _no_cache(
        jsonify(
            {
                "max_question_chars": settings.max_question_chars,
                "max_request_bytes": settings.max_request_bytes,
                "windows_days": list(WINDOWS_DAYS),
                "default_window_days": DEFAULT_WINDOW_DAYS,
                "heartbeat_seconds": settings.ux_heartbeat_seconds,
                "access_token_ttl_seconds": settings.access_token_ttl_seconds,
            }
        )
    )


def _counted_request() -> None:
    """Refuse a body (the per-person rate limit is Flask-Limiter's, on each endpoint)."""
    if request.content_length or request.get_data(cache=False):
        raise ApiError(400, "unexpected_body", "This endpoint takes no body.", field="body")
    current_user()  # authenticated by the app-wide bearer check


@bp.post("/api/ux/chat/opened")
@per_user("ux", "ux_rate_limit_per_minute", scope="ux-chat-opened")
def chat_opened() -> Any:
    _counted_request()
    metrics.UX_CHAT_OPENED.inc()
    return "", 204


@bp.post("/api/ux/heartbeat")
@per_user("ux", "ux_rate_limit_per_minute", scope="ux-heartbeat")
def heartbeat() -> Any:
    _counted_request()
    metrics.UX_HEARTBEAT.labels(
        user_agent_type=user_agent_type(request.headers.get("User-Agent"))
    ).inc()
    return "", 204

"""Login, and the bearer-token check that guards every ``/api/*`` endpoint.

The check runs for the whole app in ``before_request`` with an allowlist of
public endpoints, so a new endpoint is protected unless someone decides
otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g, jsonify, request

from shared.identity.tickets import redeem_ticket
from shared.identity.users import TokenError, User, authenticate, issue_token, verify_token
from web.errors import ApiError
from web.extensions import services
from web.validation import json_body, required_string

bp = Blueprint("auth", __name__, url_prefix="/api/auth")

# The Gmail OAuth callback verifies its signed state, the Pub/Sub push its ?token=.
PUBLIC_ENDPOINTS = {
    "auth.login",
    "register.register",
    "accounts.gmail_callback",
    "accounts.gmail_push",
}
# EventSource cannot send headers: these accept a single-use ``?ticket=`` instead.
TICKET_ENDPOINTS = {"sse.chat_stream", "sse.conversation_stream"}


@bp.post("/login")
def login() -> Any:
    body = json_body()
    email = required_string(body, "email", 254)
    password = required_string(body, "password", 1024)
    svc = services()
    user = authenticate(svc.redis, svc.settings, email, password)
    if user is None:
        raise ApiError(401, "invalid_credentials", "Email or password is wrong.")
    return jsonify(
        {
            "access_token": issue_token(svc.settings, user),
            "token_type": "Bearer",
            "expires_in": svc.settings.access_token_ttl_seconds,
            "user": {"id": user.id, "email": user.email},
        }
    )


@bp.post("/refresh")
def refresh() -> Any:
    """A fresh access token for the holder of a current one (checked in ``before_request``).

    The old token must still verify: signature, expiry and token version
    (so a revoked or deleted account cannot refresh). An expired token cannot
    be refreshed; the client then asks the person to log in.
    """
    svc = services()
    user = current_user()
    return jsonify(
        {
            "access_token": issue_token(svc.settings, user),
            "token_type": "Bearer",
            "expires_in": svc.settings.access_token_ttl_seconds,
            "user": {"id": user.id, "email": user.email},
        }
    )


def current_user() -> User:
    user: User = g.user
    return user


def _require_bearer_token() -> None:
    if not request.path.startswith("/api/") or request.endpoint in PUBLIC_ENDPOINTS:
        return
    ticket = request.args.get("ticket")
    if ticket is not None and request.endpoint in TICKET_ENDPOINTS:
        svc = services()
        user = redeem_ticket(svc.redis, svc.settings, ticket)
        if user is None:
            raise ApiError(401, "invalid_ticket", "The stream ticket is unknown, used or expired.")
        g.user = user
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "not_authenticated", "Send 'Authorization: Bearer <access token>'.")
    try:
        g.user = verify_token(services().settings, token.strip())
    except TokenError as exc:
        raise ApiError(401, "invalid_token", str(exc)) from exc


def init_auth(app: Flask) -> None:
    app.before_request(_require_bearer_token)
    app.register_blueprint(bp)

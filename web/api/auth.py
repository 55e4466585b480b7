"""Login, sessions, and the bearer-token check that guards every ``/api/*`` endpoint.

The check runs for the whole app in ``before_request`` with an allowlist of
public endpoints, so a new endpoint is protected unless someone decides
otherwise.

Login starts a session (``shared.identity.sessions``) and answers a
short-lived access token plus a rotating refresh token. Refresh is public (it
is how an expired access token is replaced) and trades the newest refresh
token of a session for the next one; an old one revokes the session. Logout
ends the caller's session, a password change every other one.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, g, jsonify, request

from shared.core import ratelimit
from shared.identity import login_guard
from shared.identity.sessions import (
    RefreshError,
    end_session,
    end_sessions,
    rotate,
    start_session,
)
from shared.identity.tickets import redeem_ticket
from shared.identity.users import (
    TokenError,
    User,
    UserError,
    authenticate,
    issue_token,
    revoke_tokens,
    set_password,
    token_expiry,
    verify_token,
)
from web.errors import ApiError
from web.extensions import services
from web.ratelimits import client_ip, per_ip
from web.validation import json_body, required_string

bp = Blueprint("auth", __name__, url_prefix="/api/auth")

# The Gmail OAuth callback verifies its signed state, the Pub/Sub push its ?token=;
# refresh checks its refresh token (the access token may well have expired).
PUBLIC_ENDPOINTS = {
    "auth.login",
    "auth.refresh",
    "accounts.gmail_callback",
    "accounts.gmail_push",
}
# EventSource cannot send headers: these accept a single-use ``?ticket=`` instead.
TICKET_ENDPOINTS = {"sse.chat_stream", "sse.conversation_stream"}


def _tokens(user: User, refresh_token: str) -> Any:
    svc = services()
    issued = int(time.time())
    return jsonify(
        {
            "access_token": issue_token(svc.settings, user, now=issued),
            "token_type": "Bearer",
            "expires_in": token_expiry(svc.settings, user, issued) - issued,
            "refresh_token": refresh_token,
            "refresh_expires_in": max(0, user.expires_at - issued),
            "user": {"id": user.id, "email": user.email},
        }
    )


@bp.post("/login")
@per_ip("login_ip", "login_rate_limit")
def login() -> Any:
    body = json_body()
    email = required_string(body, "email", 254)
    password = required_string(body, "password", 1024)
    svc = services()
    ip = client_ip()
    wait = login_guard.must_wait(svc.redis, svc.settings, email, ip)
    if wait is not None:
        ratelimit.refused(wait.limit)
        raise ApiError(
            429,
            "rate_limited",
            "Too many failed logins; wait before trying again.",
            retry_after=wait.retry_after_seconds,
        )
    user = authenticate(svc.redis, svc.settings, email, password)
    if user is None:
        login_guard.record_failure(svc.redis, svc.settings, email, ip)
        raise ApiError(401, "invalid_credentials", "Email or password is wrong.")
    login_guard.record_success(svc.redis, svc.settings, email)
    return _tokens(*start_session(svc.redis, svc.settings, user))


@bp.post("/refresh")
@per_ip("auth", "auth_rate_limit")
def refresh() -> Any:
    """The next access and refresh tokens for the newest refresh token of a session.

    A reused (older) refresh token revokes its whole session; a session past
    its absolute lifetime, logged out, or revoked cannot refresh (log in again).
    """
    body = json_body()
    token = required_string(body, "refresh_token", 300)
    svc = services()
    try:
        return _tokens(*rotate(svc.redis, svc.settings, token))
    except RefreshError as exc:
        raise ApiError(401, exc.code, str(exc), field="refresh_token") from exc


@bp.post("/logout")
@per_ip("auth", "auth_rate_limit")
def logout() -> Any:
    """End the caller's session: its refresh token, access tokens and open streams."""
    svc = services()
    user = current_user()
    if user.session_id:
        end_session(svc.redis, svc.settings, user.id, user.session_id)
    else:  # a token without a session (minted by the server itself): revoke them all
        revoke_tokens(svc.redis, svc.settings, user.id)
    return "", 204


@bp.post("/password")
@per_ip("auth", "auth_rate_limit")
def change_password() -> Any:
    """Change the password (old + new); every other session of the person ends."""
    body = json_body()
    old = required_string(body, "old_password", 1024)
    new = required_string(body, "new_password", 1024)
    svc = services()
    user = current_user()
    if authenticate(svc.redis, svc.settings, user.email, old) is None:
        login_guard.record_failure(svc.redis, svc.settings, user.email, client_ip())
        raise ApiError(
            403, "invalid_credentials", "The old password is wrong.", field="old_password"
        )
    try:
        set_password(svc.redis, svc.settings, user.id, new)
    except UserError as exc:
        raise ApiError(400, "invalid_field", str(exc), field="new_password") from exc
    if user.session_id:
        ended = end_sessions(svc.redis, svc.settings, user.id, keep=user.session_id)
    else:
        ended = end_sessions(svc.redis, svc.settings, user.id)
        revoke_tokens(svc.redis, svc.settings, user.id)
    return jsonify({"sessions_ended": ended})


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

"""``POST /api/auth/register``: sign up with an email and a password.

On by default (a local install is one person's own), off with
``MAILCHAT_REGISTRATION_ENABLED=false`` for a shared server, where operators
create logins with ``users create``. It lives beside ``web/api/auth.py``
rather than in it so the session code there stays about sessions: the page
logs in with ``POST /api/auth/login`` right after registering.

An address already registered is a 409 telling the person to log in: the
page has to say so, and an open sign-up reveals that much whatever it
answers (the rate limits on /api/auth cover it like login).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from shared.identity.users import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    UserError,
    create_user,
    find_user,
    normalise_email,
    password_problem,
)
from web.errors import ApiError
from web.extensions import services
from web.ratelimits import per_ip
from web.validation import json_body, required_string

bp = Blueprint("register", __name__, url_prefix="/api/auth")

PASSWORD_RULES = (
    f"A password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters "
    "and must not be the email address."
)


@bp.post("/register")
@per_ip("auth", "auth_rate_limit")
def register() -> Any:
    svc = services()
    if not svc.settings.registration_enabled:
        raise ApiError(
            403,
            "registration_disabled",
            "Sign-up is off on this server; ask its operator for a login.",
        )
    body = json_body()
    email = normalise_email(required_string(body, "email", 254))
    if "@" not in email.strip("@") or " " in email:
        raise ApiError(400, "invalid_field", "'email' must be an email address.", field="email")
    password = body.get("password")
    if not isinstance(password, str):
        raise ApiError(400, "invalid_field", f"'password': {PASSWORD_RULES}", field="password")
    problem = password_problem(email, password)
    if problem:
        raise ApiError(400, "weak_password", f"{problem}. {PASSWORD_RULES}", field="password")
    if find_user(svc.redis, svc.settings, email) is not None:
        raise ApiError(
            409, "email_taken", "An account with this email exists; log in.", field="email"
        )
    try:
        user = create_user(svc.redis, svc.settings, email, password)
    except UserError as exc:  # lost a race with another sign-up of the same address
        raise ApiError(409, "email_taken", str(exc), field="email") from exc
    return jsonify({"user": {"id": user.id, "email": user.email}, "login": "/api/auth/login"}), 201

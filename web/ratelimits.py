"""Flask-Limiter for every HTTP endpoint a person can spend server time on.

One ``Limiter`` on the app's Redis (the same storage and key prefix as
``shared.core.ratelimit``, so counters are shared by every web process).
Limits read their strings from the settings at request time, so tests and
operators change them without code. A refusal is the usual JSON error with
429 and ``Retry-After``, counted as ``http_rate_limited_total{limit}`` with
the limit's name (a fixed vocabulary, never a user or an address).

Per-person limits key on the authenticated user id: the bearer check runs in
an earlier ``before_request``, so ``g.user`` is set when Flask-Limiter looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, has_app_context, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit

from shared.core import ratelimit
from shared.core.settings import ENV_PREFIX, Settings, SettingsError
from web.errors import error_response
from web.extensions import services


def client_ip() -> str:
    # gunicorn's forwarded_allow_ips decides whether a proxy's X-Forwarded-For is believed.
    return request.remote_addr or "unknown"


def user_key() -> str:
    user = getattr(g, "user", None)
    return f"user:{user.id}" if user is not None else f"ip:{client_ip()}"


def _breach(name: str) -> Callable[[RequestLimit], Any]:
    def on_breach(limit: RequestLimit) -> Any:
        ratelimit.refused(name)
        retry_after = max(1, round(limit.window.reset_time - time.time()))  # now + whole TTL
        return error_response(
            429,
            "rate_limited",
            f"Too many requests (at most {limit.limit}); try again later.",
            retry_after=retry_after,
        )

    return on_breach


def _setting(attribute: str) -> Callable[[], str]:
    def value() -> str:
        found = getattr(services().settings, attribute)
        return str(found) if not isinstance(found, int) else f"{found} per minute"

    return value


class PerAppLimiter(Limiter):  # type: ignore[misc]
    """Flask-Limiter, with each app's own storage.

    Flask-Limiter keeps one storage per ``Limiter``, and the route decorators need one
    module-level ``Limiter``; with several apps in one process (the tests, the bench)
    the last ``init_app`` would serve every app from its Redis. Each app keeps the
    storage its own ``init_app`` made, and requests use their app's.
    """

    _EXTENSION = "mailchat_limiter_storage"

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        app.extensions[self._EXTENSION] = (self._storage, self._limiter)

    def _own(self) -> tuple[Any, Any] | None:
        if has_app_context():
            found: tuple[Any, Any] | None = current_app.extensions.get(self._EXTENSION)
            return found
        return None

    @property
    def storage(self) -> Any:
        own = self._own()
        return own[0] if own else super().storage

    @property
    def limiter(self) -> Any:
        own = self._own()
        return own[1] if own else super().limiter


limiter = PerAppLimiter(key_func=client_ip, strategy="fixed-window")


def per_ip(name: str, setting: str) -> Any:
    """Limit a (public) endpoint per client address."""
    return limiter.shared_limit(
        _setting(setting), scope=name, key_func=client_ip, on_breach=_breach(name)
    )


def per_user(name: str, setting: str, *, scope: str | None = None) -> Any:
    """Limit an endpoint per person; endpoints sharing ``scope`` share the budget."""
    return limiter.shared_limit(
        _setting(setting), scope=scope or name, key_func=user_key, on_breach=_breach(name)
    )


LIMIT_SETTINGS = (
    "login_rate_limit",
    "auth_rate_limit",
    "ask_rate_limit",
    "ws_frame_rate_limit",
    "sync_rate_limit",
    "upload_rate_limit",
)


def check_limit_settings(settings: Settings) -> None:
    """Refuse to start with a limit string ``limits`` cannot parse (not a 500 per request)."""
    for name in LIMIT_SETTINGS:
        value = getattr(settings, name)
        try:
            if not ratelimit.parsed(value):
                raise ValueError(value)
        except ValueError as exc:
            raise SettingsError(
                f"{ENV_PREFIX}{name.upper()}={value!r} is not a rate limit like '20 per minute'"
            ) from exc


def init_rate_limits(app: Flask, settings: Settings) -> None:
    """Wire Flask-Limiter after the bearer check (its before_request runs later)."""
    check_limit_settings(settings)
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url
    app.config["RATELIMIT_STORAGE_OPTIONS"] = ratelimit.storage_options(settings)
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    limiter.init_app(app)
    # Our on_breach built the JSON answer; without this the generic HTTP handler would win.
    app.register_error_handler(RateLimitExceeded, lambda error: error.get_response())

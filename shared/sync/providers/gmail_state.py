"""The OAuth ``state`` of a Gmail connect: signed, single-use, and bound to one browser.

The state says who started the connect (the user id) and expires; a nonce
inside it is spent on first use (``oauth-state-used:<nonce>``), so a replayed
link fails. That is not enough on its own: the callback is public, and a
consent link started by one person and approved by another would link the
second person's Gmail into the first one's account. So ``connect`` also hands
the browser a random *binding* (an HttpOnly cookie) and only its hash goes
into the state; ``spend_state`` refuses a state whose hash does not match the
binding the browser brings back, before it spends the nonce (a stranger's
browser cannot burn the owner's link).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt
import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings

STATE_TTL_SECONDS = 600
STATE_PURPOSE = "gmail-connect"


class StateError(ValueError):
    """The state cannot be used; ``code`` is the API error code, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def binding_hash(binding: str) -> str:
    return hashlib.sha256(binding.encode()).hexdigest()


def new_state(settings: Settings, user_id: str) -> tuple[str, str]:
    """A signed state for ``user_id`` and the browser binding it is tied to."""
    now = int(time.time())
    binding = secrets.token_urlsafe(32)
    state = jwt.encode(
        {
            "sub": user_id,
            "purpose": STATE_PURPOSE,
            "nonce": secrets.token_urlsafe(16),
            "bind": binding_hash(binding),
            "iat": now,
            "exp": now + STATE_TTL_SECONDS,
        },
        settings.secret_key,
        algorithm="HS256",
    )
    return state, binding


def spend_state(r: redis.Redis, settings: Settings, state: str, binding: str) -> str:
    """The user id of a valid state brought back by the browser holding ``binding``; once."""
    try:
        claims = jwt.decode(
            state,
            settings.secret_key,
            algorithms=["HS256"],
            options={"require": ["sub", "exp", "nonce", "purpose", "bind"]},
        )
    except jwt.PyJWTError as exc:
        raise StateError(
            "invalid_state", "The sign-in link is invalid or expired; connect again."
        ) from exc
    if claims.get("purpose") != STATE_PURPOSE:
        raise StateError("invalid_state", "The sign-in link is invalid; connect again.")
    if not binding or not hmac.compare_digest(binding_hash(binding), str(claims["bind"])):
        raise StateError(
            "state_not_bound",
            "This Gmail sign-in was started in another browser or session; "
            "connect Gmail again from your Mailchat page.",
        )
    used = RedisKeys(settings.key_prefix).oauth_state_used(str(claims["nonce"]))
    if not r.set(used, "1", nx=True, ex=STATE_TTL_SECONDS):
        raise StateError("invalid_state", "This sign-in link was already used; connect again.")
    return str(claims["sub"])

"""Login sessions: rotating refresh tokens with reuse detection, an absolute lifetime.

A login starts a session (a refresh-token *family*): a Redis hash named by
the user and a random session id, holding the current generation and the
session's absolute end, and expiring then on its own. The refresh token is
``<user id>.<session id>.<generation>.<HMAC>``: only the server can make
one, and only the newest generation may be traded (``rotate``) for a fresh
access token and the next refresh token. Presenting an older generation means
the token was copied (the thief or the owner refreshed first): the whole
family is revoked at once, so both must log in again. Nothing extends a
session past ``session_max_seconds`` from its login.

Access tokens carry the session id (``sid``), and every verification checks
that the session still exists: logout (``end_session``) and a password change
(``end_sessions``) revoke the access tokens of those sessions at once, and an
open stream finds out at its next re-check (``still_valid``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import random
import secrets
import time

import redis

from shared.core.keys import RedisKeys
from shared.core.logs import user_hash
from shared.core.settings import Settings
from shared.identity.users import TokenError, User, ensure_current, find_user

log = logging.getLogger(__name__)

# Why an open stream was closed: labels of stream_sessions_ended_total.
END_REASONS = frozenset({"expired", "revoked"})

# KEYS[1] the session; ARGV: presented generation, now. Returns the new generation,
# -1 when an old generation was presented (the family is revoked), -2 when the session
# is unknown or over.
_ROTATE = """
local gen = redis.call('HGET', KEYS[1], 'generation')
if not gen then return -2 end
if tonumber(redis.call('HGET', KEYS[1], 'expires_at')) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return -2
end
if tonumber(gen) ~= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return -1
end
return redis.call('HINCRBY', KEYS[1], 'generation', 1)
"""


class RefreshError(TokenError):
    """A refresh token that cannot be traded; ``code`` says why (for the JSON error)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _mac(settings: Settings, user_id: str, session_id: str, generation: int) -> str:
    message = f"refresh|{user_id}|{session_id}|{generation}".encode()
    return hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()


def refresh_token(settings: Settings, user_id: str, session_id: str, generation: int) -> str:
    mac = _mac(settings, user_id, session_id, generation)
    return f"{user_id}.{session_id}.{generation}.{mac}"


def start_session(
    r: redis.Redis, settings: Settings, user: User, now: float | None = None
) -> tuple[User, str]:
    """Open a session for a user who just proved who they are: (user in it, refresh token)."""
    started = int(time.time() if now is None else now)
    ends = started + settings.session_max_seconds
    session_id = secrets.token_hex(12)
    key = RedisKeys(settings.key_prefix).session(user.id, session_id)
    pipe = r.pipeline()
    pipe.hset(
        key,
        mapping={
            "created_at": started,
            "expires_at": ends,
            "generation": 0,
            "token_version": user.token_version,
        },
    )
    pipe.expireat(key, ends)
    pipe.execute()
    member = dataclasses.replace(user, session_id=session_id, expires_at=ends)
    return member, refresh_token(settings, user.id, session_id, 0)


def rotate(
    r: redis.Redis, settings: Settings, token: str, now: float | None = None
) -> tuple[User, str]:
    """Trade the newest refresh token of a session for (user in it, next refresh token).

    Raises RefreshError: ``invalid_refresh_token`` (not one of ours),
    ``session_ended`` (logged out, expired, revoked) or ``refresh_token_reused``
    (an old generation: the whole family is revoked).
    """
    parts = token.split(".") if isinstance(token, str) and len(token) <= 300 else []
    if len(parts) != 4 or not parts[2].isdigit():
        raise RefreshError("invalid_refresh_token", "This is not a refresh token.")
    user_id, session_id, generation_text, mac = parts
    generation = int(generation_text)
    if not hmac.compare_digest(mac, _mac(settings, user_id, session_id, generation)):
        raise RefreshError("invalid_refresh_token", "This is not a refresh token.")
    keys = RedisKeys(settings.key_prefix)
    key = keys.session(user_id, session_id)
    current = time.time() if now is None else now
    outcome = int(r.eval(_ROTATE, 1, key, generation, current))
    if outcome == -1:
        log.warning("refresh token reused: revoked session family of %s", user_hash(user_id))
        raise RefreshError(
            "refresh_token_reused",
            "This refresh token was already used; the session is revoked. Log in again.",
        )
    if outcome < 0:
        raise RefreshError("session_ended", "This session has ended; log in again.")
    version, ends = r.hmget(key, ["token_version", "expires_at"])
    email = r.hget(keys.user(user_id), "email")
    user = find_user(r, settings, str(email)) if email else None
    if user is None or version is None or int(version) != user.token_version:
        # Revoked since the login (delete-my-data bumps the version): the family dies too.
        r.delete(key)
        raise RefreshError("session_ended", "This session has ended; log in again.")
    member = dataclasses.replace(user, session_id=session_id, expires_at=int(ends or 0))
    return member, refresh_token(settings, user_id, session_id, outcome)


def end_session(r: redis.Redis, settings: Settings, user_id: str, session_id: str) -> bool:
    """Log one session out: its refresh token and access tokens stop working."""
    if not session_id:
        return False
    return bool(r.delete(RedisKeys(settings.key_prefix).session(user_id, session_id)))


def end_sessions(r: redis.Redis, settings: Settings, user_id: str, keep: str = "") -> int:
    """End every session of the user but ``keep``; returns how many ended."""
    keys = RedisKeys(settings.key_prefix)
    pattern = _glob_escape(keys.sessions_of(user_id)) + "*"
    doomed = [k for k in r.scan_iter(match=pattern, count=500) if k != keys.session(user_id, keep)]
    ended = int(r.delete(*doomed)) if doomed else 0
    if ended:
        log.info("ended %d sessions of %s", ended, user_hash(user_id))
    return ended


def still_valid(
    r: redis.Redis, settings: Settings, user: User, now: float | None = None
) -> str | None:
    """None while ``user``'s credential is still good, else why not (one of END_REASONS).

    Open streams call this every ``session_recheck_seconds``: a token expires,
    or is revoked (logout, password change, delete-my-data), under a stream too.
    """
    current = time.time() if now is None else now
    if user.expires_at and current >= user.expires_at:
        return "expired"
    try:
        ensure_current(settings, dataclasses.replace(user, expires_at=0), r)
    except TokenError:
        return "revoked"
    return None


def _glob_escape(value: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


class Recheck:
    """``still_valid`` at most every ``session_recheck_seconds`` (capped at 30 s): for streams.

    ``interval`` is how long a stream may wait between two calls of ``due``, so
    its idle wait never outlasts a re-check.

    The first re-check comes after a random 50-100 % of the interval: a thousand
    sockets opened together (a deploy, a reconnect storm) would otherwise re-check
    in the same instant every interval, a burst of Redis calls that stalls what the
    process is delivering. Never later than the interval.
    """

    MAX_INTERVAL = 30.0
    __slots__ = ("r", "settings", "user", "interval", "next_at")

    def __init__(self, r: redis.Redis, settings: Settings, user: User) -> None:
        self.r, self.settings, self.user = r, settings, user
        self.interval = max(0.05, min(self.MAX_INTERVAL, settings.session_recheck_seconds))
        self.next_at = time.monotonic() + self.interval * (0.5 + random.random() / 2)

    def due(self) -> str | None:
        """Why the stream must end now (expired/revoked), or None (also when not yet due)."""
        if time.monotonic() < self.next_at and not (
            self.user.expires_at and time.time() >= self.user.expires_at
        ):
            return None
        self.next_at = time.monotonic() + self.interval
        return still_valid(self.r, self.settings, self.user)

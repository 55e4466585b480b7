"""Users and their access tokens.

Users live in Redis (a hash per user plus an email → id index) with argon2id
password hashes. Access tokens are short-lived JWTs (HS256, pinned on
decode) that carry the user id; every owner filter starts from that id.

Tokens also carry the user's ``token_version`` (claim ``ver``), checked on
every verification: ``revoke_tokens`` bumps it (delete-my-data does), and a
deleted user's tokens fail too, so a stateless token cannot outlive its data.
A token issued at login also names its session (claim ``sid``,
``shared.identity.sessions``): logging out or a password change ends the
session, and with it every access token issued in it.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field

import jwt
import redis

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.logs import user_hash
from shared.core.settings import Settings
from shared.identity.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "mailchat"
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user cannot be created or found as asked."""


class TokenError(ValueError):
    """An access token is missing, malformed, expired or forged."""


@dataclass(frozen=True)
class User:
    """A person as a credential shows them: who, and what the credential is still worth.

    ``session_id`` is the login session the token belongs to ("" for tokens the
    server mints for itself); ``expires_at`` the token's expiry (unix seconds, 0 =
    not from a token). Open streams re-check both (``shared.identity.sessions``).
    """

    id: str
    email: str
    token_version: int = 0
    # Not part of equality: the same person at the same version, whichever credential.
    session_id: str = field(default="", compare=False)
    expires_at: int = field(default=0, compare=False)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(r: redis.Redis, settings: Settings, email: str, password: str) -> User:
    """Create a user; an email already taken is an error, not an overwrite."""
    email = normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise UserError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    keys = RedisKeys(settings.key_prefix)
    user_id = "u_" + secrets.token_hex(8)
    if not r.set(keys.user_by_email(email), user_id, nx=True):
        raise UserError(f"a user with email {email} already exists")
    r.hset(
        keys.user(user_id),
        mapping={
            "email": email,
            "password_hash": hash_password(settings, password),
            "created_at": int(time.time()),
        },
    )
    log.info("created user %s", user_hash(user_id))
    return User(user_id, email)


def find_user(r: redis.Redis, settings: Settings, email: str) -> User | None:
    keys = RedisKeys(settings.key_prefix)
    user_id = r.get(keys.user_by_email(normalise_email(email)))
    if not user_id:
        return None
    version = r.hget(keys.user(str(user_id)), "token_version")
    return User(str(user_id), normalise_email(email), int(version or 0))


def ensure_user(r: redis.Redis, settings: Settings, email: str, password: str) -> User:
    """The user with this email, created with ``password`` if missing (used for the demo)."""
    existing = find_user(r, settings, email)
    return existing if existing else create_user(r, settings, email, password)


def authenticate(r: redis.Redis, settings: Settings, email: str, password: str) -> User | None:
    """The user if the password matches, else None (same work either way)."""
    keys = RedisKeys(settings.key_prefix)
    user = find_user(r, settings, email)
    stored = r.hget(keys.user(user.id), "password_hash") if user else None
    if not verify_password(settings, str(stored) if stored else None, password):
        return None
    return user


def set_password(r: redis.Redis, settings: Settings, user_id: str, password: str) -> None:
    """Replace the user's password hash (the caller ends the other sessions)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    r.hset(
        RedisKeys(settings.key_prefix).user(user_id),
        "password_hash",
        hash_password(settings, password),
    )
    log.info("changed the password of %s", user_hash(user_id))


def token_expiry(settings: Settings, user: User, issued: int) -> int:
    """An access token's expiry: its TTL, never past the end of its session."""
    expires = issued + settings.access_token_ttl_seconds
    return min(expires, user.expires_at) if user.session_id and user.expires_at else expires


def issue_token(settings: Settings, user: User, now: float | None = None) -> str:
    """An access token for ``user``; one with a session carries its ``sid``.

    ``user.expires_at`` is, for a user with a session, the session's end (the
    token never outlives it).
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "sub": user.id,
        "email": user.email,
        "aud": TOKEN_AUDIENCE,
        "iat": issued,
        "exp": token_expiry(settings, user, issued),
        "ver": user.token_version,
    }
    if user.session_id:
        claims["sid"] = user.session_id
    return jwt.encode(claims, settings.secret_key, algorithm=TOKEN_ALGORITHM)


def revoke_tokens(r: redis.Redis, settings: Settings, user_id: str) -> int:
    """Invalidate every access token issued to the user so far; returns the new version."""
    key = RedisKeys(settings.key_prefix).user(user_id)
    if not r.exists(key):
        return 0
    version = int(r.hincrby(key, "token_version", 1))
    log.info("revoked the access tokens of %s (now version %d)", user_hash(user_id), version)
    return version


def verify_token(settings: Settings, token: str, r: redis.Redis | None = None) -> User:
    """The user a token was issued to; raises TokenError for anything else.

    Besides the signature and expiry, the token's version must still be the
    user's (one Redis read; ``r`` defaults to the process's client).
    """
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[TOKEN_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid access token") from exc
    user = User(
        str(claims["sub"]),
        str(claims.get("email", "")),
        int(claims.get("ver", 0)),
        session_id=str(claims.get("sid", "")),
        expires_at=int(claims["exp"]),
    )
    return ensure_current(settings, user, r)


def ensure_current(settings: Settings, user: User, r: redis.Redis | None = None) -> User:
    """``user`` if it still exists, its credential's version is current and its session
    (if it has one) is still open; else TokenError. One round trip."""
    client = r if r is not None else get_redis(settings)
    keys = RedisKeys(settings.key_prefix)
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.user(user.id), ["email", "token_version"])
    if user.session_id:
        pipe.exists(keys.session(user.id, user.session_id))
    found = pipe.execute()
    email, version = found[0]
    if email is None:
        raise TokenError("this account no longer exists")
    if int(version or 0) != user.token_version:
        raise TokenError("access token revoked; log in again")
    if user.session_id and not found[1]:
        raise TokenError("this session has ended; log in again")
    if user.expires_at and time.time() >= user.expires_at:
        raise TokenError("access token expired")
    return user

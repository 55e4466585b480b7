"""Users and their access tokens.

Users live in Redis (a hash per user plus an email → id index) with argon2id
password hashes. Access tokens are short-lived JWTs (HS256, pinned on
decode) that carry the user id; every owner filter starts from that id.

Tokens also carry the user's ``token_version`` (claim ``ver``), checked on
every verification: ``revoke_tokens`` bumps it (delete-my-data does), and a
deleted user's tokens fail too, so a stateless token cannot outlive its data.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

import jwt
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.logs import user_hash
from shared.core.settings import Settings

log = logging.getLogger(__name__)

TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "mailchat"
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps login timing the same
# for existing and missing accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserError(ValueError):
    """A user cannot be created or found as asked."""


class TokenError(ValueError):
    """An access token is missing, malformed, expired or forged."""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    token_version: int = 0


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
            "password_hash": _hasher.hash(password),
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
    try:
        _hasher.verify(str(stored) if stored else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user if stored else None


def issue_token(settings: Settings, user: User, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": user.id,
        "email": user.email,
        "aud": TOKEN_AUDIENCE,
        "iat": issued,
        "exp": issued + settings.access_token_ttl_seconds,
        "ver": user.token_version,
    }
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
    user = User(str(claims["sub"]), str(claims.get("email", "")), int(claims.get("ver", 0)))
    return ensure_current(settings, user, r)


def ensure_current(settings: Settings, user: User, r: redis.Redis | None = None) -> User:
    """``user`` if it still exists and its credential's version is still current, else TokenError."""
    client = r if r is not None else get_redis(settings)
    email, version = client.hmget(
        RedisKeys(settings.key_prefix).user(user.id), ["email", "token_version"]
    )
    if email is None:
        raise TokenError("this account no longer exists")
    if int(version or 0) != user.token_version:
        raise TokenError("access token revoked; log in again")
    return user

"""Users and their access tokens.

Users live in Redis (a hash per user plus an email → id index) with argon2id
password hashes. Access tokens are short-lived JWTs (HS256, pinned on
decode) that carry the user id; every owner filter starts from that id.
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

from shared.keys import RedisKeys
from shared.settings import Settings

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
    log.info("created user %s", user_id)
    return User(user_id, email)


def find_user(r: redis.Redis, settings: Settings, email: str) -> User | None:
    keys = RedisKeys(settings.key_prefix)
    user_id = r.get(keys.user_by_email(normalise_email(email)))
    return User(str(user_id), normalise_email(email)) if user_id else None


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
    }
    return jwt.encode(claims, settings.secret_key, algorithm=TOKEN_ALGORITHM)


def verify_token(settings: Settings, token: str) -> User:
    """The user a token was issued to; raises TokenError for anything else."""
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
    return User(str(claims["sub"]), str(claims.get("email", "")))

"""Short-lived, single-use tickets for EventSource, which cannot send headers.

The browser trades its access token for a ticket (``POST /api/chat/ticket``)
and puts the ticket, never the long-lived token, in the stream URL. A
ticket works once and for 60 seconds, so one leaked through a log or a
Referer is worth nothing.
"""

from __future__ import annotations

import secrets

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.identity.users import TokenError, User, ensure_current

TICKET_TTL_SECONDS = 60


def issue_ticket(r: redis.Redis, settings: Settings, user: User) -> str:
    ticket = secrets.token_urlsafe(32)
    r.set(
        RedisKeys(settings.key_prefix).chat_ticket(ticket),
        f"{user.id} {user.token_version} {user.expires_at} {user.session_id or '-'} {user.email}",
        ex=TICKET_TTL_SECONDS,
    )
    return ticket


def redeem_ticket(r: redis.Redis, settings: Settings, ticket: str) -> User | None:
    """The ticket's user, consuming the ticket; None if unknown, used or expired."""
    if not ticket or len(ticket) > 100:
        return None
    value = r.getdel(RedisKeys(settings.key_prefix).chat_ticket(ticket))
    if not value:
        return None
    user_id, version, expires_at, session_id, email = str(value).split(" ", 4)
    user = User(
        user_id,
        email,
        int(version),
        session_id="" if session_id == "-" else session_id,
        expires_at=int(expires_at),
    )
    try:
        # A ticket is worth no more than the token it was traded for: revoked means revoked,
        # and the stream it opens keeps re-checking that token's session and expiry.
        return ensure_current(settings, user, r)
    except TokenError:
        return None

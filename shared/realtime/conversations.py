"""Conversations: ownership, the person's list, and a replay of one conversation.

A conversation id is created by the server and bound to one user on first
use; a client that names somebody else's conversation gets "not found".
"""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.realtime.eventlog import EventLog, ReadResult

CONVERSATION_TTL_SECONDS = 90 * 24 * 3600


class ConversationNotFound(LookupError):
    """The conversation does not exist for this user."""


def new_conversation_id() -> str:
    return "c_" + secrets.token_hex(8)


def claim_conversation(
    r: redis.Redis, settings: Settings, user_id: str, conversation_id: str | None
) -> str:
    """The conversation to use: ``conversation_id`` if the user owns it (or it is new), else a new one."""
    keys = RedisKeys(settings.key_prefix)
    if conversation_id is None:
        conversation_id = new_conversation_id()
    key = keys.conversation_owner(conversation_id)
    if not r.set(key, user_id, nx=True, ex=CONVERSATION_TTL_SECONDS):
        if r.get(key) != user_id:
            raise ConversationNotFound(conversation_id)
        r.expire(key, CONVERSATION_TTL_SECONDS)
    r.zadd(keys.user_conversations(user_id), {conversation_id: time.time()})
    return conversation_id


def owns_conversation(
    r: redis.Redis, settings: Settings, user_id: str, conversation_id: str
) -> bool:
    return bool(
        r.get(RedisKeys(settings.key_prefix).conversation_owner(conversation_id)) == user_id
    )


def list_conversations(
    r: redis.Redis, settings: Settings, user_id: str, limit: int
) -> list[dict[str, Any]]:
    """The user's conversations, most recent first, titled by their first question."""
    ranked = cast(
        list[tuple[str, float]],
        r.zrevrange(
            RedisKeys(settings.key_prefix).user_conversations(user_id),
            0,
            limit - 1,
            withscores=True,
        ),
    )
    events = EventLog(r, settings)
    conversations = []
    for conversation_id, last_active in ranked:
        first = events.read(events.conversation_stream(conversation_id), count=1).events
        conversations.append(
            {
                "id": conversation_id,
                "title": first[0].data.get("q", "") if first else "",
                "last_active_at": int(last_active),
            }
        )
    return conversations


def replay(
    r: redis.Redis,
    settings: Settings,
    user_id: str,
    conversation_id: str,
    *,
    after: str,
    epoch: str | None,
    limit: int,
) -> ReadResult:
    """The conversation's events after ``after`` (with ``reset`` on a stale cursor), owner only."""
    if not owns_conversation(r, settings, user_id, conversation_id):
        raise ConversationNotFound(conversation_id)
    events = EventLog(r, settings)
    return events.read(
        events.conversation_stream(conversation_id), after=after, epoch=epoch, count=limit
    )

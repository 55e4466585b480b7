"""Conversation ownership.

A conversation id is created by the server and bound to one user on first
use; a client that names somebody else's conversation gets "not found".
"""

from __future__ import annotations

import secrets
import time

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings

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

"""Conversations over JSON: the list, and a replay of one conversation's events.

The replay is what a client fetches after ``reset`` (or on first load); the
streams then continue from its last event id.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, jsonify, request

from shared.core.keys import RedisKeys
from shared.realtime.conversations import owns_conversation
from shared.realtime.eventlog import EventLog, is_entry_id
from web.api.auth import current_user
from web.errors import ApiError
from web.extensions import services

bp = Blueprint("conversations", __name__, url_prefix="/api/conversations")

LIST_LIMIT = 50
REPLAY_LIMIT = 1000


@bp.get("")
def list_conversations() -> Any:
    """The user's conversations, most recent first, titled by their first question."""
    svc = services()
    user = current_user()
    events = EventLog(svc.redis, svc.settings)
    ids = cast(
        list[tuple[str, float]],
        svc.redis.zrevrange(
            RedisKeys(svc.settings.key_prefix).user_conversations(user.id),
            0,
            LIST_LIMIT - 1,
            withscores=True,
        ),
    )
    conversations = []
    for conversation_id, last_active in ids:
        first = events.read(events.conversation_stream(conversation_id), count=1).events
        conversations.append(
            {
                "id": conversation_id,
                "title": first[0].data.get("q", "") if first else "",
                "last_active_at": int(last_active),
            }
        )
    return jsonify({"conversations": conversations})


@bp.get("/<conversation_id>/events")
def conversation_events(conversation_id: str) -> Any:
    """``{"epoch", "events", "reset"}``: the events after ``?after=`` (default: all)."""
    svc = services()
    if not owns_conversation(svc.redis, svc.settings, current_user().id, conversation_id):
        raise ApiError(
            404, "conversation_not_found", "No such conversation.", field="conversation_id"
        )
    after = request.args.get("after", "0")
    if not is_entry_id(after):
        raise ApiError(400, "invalid_field", "'after' must be an event id.", field="after")
    events = EventLog(svc.redis, svc.settings)
    result = events.read(
        events.conversation_stream(conversation_id),
        after=after,
        epoch=request.args.get("epoch"),
        count=REPLAY_LIMIT,
    )
    return jsonify(
        {
            "epoch": result.epoch,
            "reset": result.reset,
            "events": [e.as_dict() for e in result.events],
        }
    )

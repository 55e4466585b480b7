"""Conversations over JSON: the list, and a replay of one conversation's events.

The replay is what a client fetches after ``reset`` (or on first load); the
streams then continue from its last event id.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from shared.realtime.conversations import ConversationNotFound, replay
from shared.realtime.conversations import list_conversations as conversations_of
from shared.realtime.eventlog import is_entry_id
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
    found = conversations_of(svc.redis, svc.settings, current_user().id, LIST_LIMIT)
    return jsonify({"conversations": found})


@bp.get("/<conversation_id>/events")
def conversation_events(conversation_id: str) -> Any:
    """``{"epoch", "events", "reset"}``: the events after ``?after=`` (default: all)."""
    svc = services()
    after = request.args.get("after", "0")
    if not is_entry_id(after):
        raise ApiError(400, "invalid_field", "'after' must be an event id.", field="after")
    try:
        result = replay(
            svc.redis,
            svc.settings,
            current_user().id,
            conversation_id,
            after=after,
            epoch=request.args.get("epoch"),
            limit=REPLAY_LIMIT,
        )
    except ConversationNotFound:
        raise ApiError(
            404, "conversation_not_found", "No such conversation.", field="conversation_id"
        ) from None
    return jsonify(
        {
            "epoch": result.epoch,
            "reset": result.reset,
            "events": [e.as_dict() for e in result.events],
        }
    )

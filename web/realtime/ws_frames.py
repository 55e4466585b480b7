"""The frames a client sends over ``/ws``, parsed and acted on for its ``SocketSession``."""

from __future__ import annotations

import time
from typing import Any

from shared.core.events import ControlType
from shared.realtime.conversations import owns_conversation
from shared.realtime.eventlog import is_entry_id, position_before
from web.realtime.asking import ask
from web.realtime.ws_handshake import unresumable
from web.validation import optional_id, parse_json, reject_lone_surrogates, required_string


class FrameError(ValueError):
    """A client frame we cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def handle_frame(session: Any, raw: str | bytes) -> None:
    """Act on one client frame: ping, pong, chat.send or resume; FrameError if it cannot."""
    try:
        frame = parse_json(raw)
    except ValueError as exc:
        raise FrameError("invalid_json", "Frames must be JSON objects.") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", "Frames need a string 'type'.", "type")
    reject_lone_surrogates(frame)
    kind = frame["type"]
    if kind == ControlType.PING:
        session.send({"type": ControlType.PONG})
    elif kind == ControlType.PONG:
        session.last_pong, session.ping_sent_at = time.monotonic(), None
    elif kind == "chat.send":
        chat_send(session, frame)
    elif kind == "resume":
        resume(session, frame)
    else:
        raise FrameError("unknown_type", f"Unknown frame type {kind!r}.", "type")


def chat_send(session: Any, frame: dict[str, Any]) -> None:
    """Ask the question and follow its conversation from the question on."""
    question = required_string(frame, "q", session.svc.settings.max_question_chars)
    # The client's id is what makes a re-send after reconnect harmless: required here.
    started = ask(session.user, frame, question, client_message_id_required=True)
    stream = session.events.conversation_stream(started.conversation_id)
    session.asked[started.client_message_id] = stream
    session.follow(stream, position_before(started.question_event_id))


def resume(session: Any, frame: dict[str, Any]) -> None:
    """Follow a conversation of the person's own after ``after``, or tell them it was reset."""
    conversation_id = optional_id(frame, "conversation_id")
    after = str(frame.get("after") or "0")
    if conversation_id is None or not is_entry_id(after):
        raise FrameError("invalid_field", "'resume' needs conversation_id and an event id 'after'.")
    if not owns_conversation(
        session.svc.redis, session.svc.settings, session.user.id, conversation_id
    ):
        # Same answer for "not yours" and "does not exist": no existence leak.
        raise FrameError("not_found", "No such conversation.", "conversation_id")
    stream = session.events.conversation_stream(conversation_id)
    epoch = unresumable(session.events, stream, after, frame.get("epoch"))
    if epoch is None:
        session.follow(stream, after)
    else:
        session.send(
            {"type": ControlType.RESET, "conversation_id": conversation_id, "epoch": epoch}
        )

"""The event vocabulary of the logs: every ``type`` an event or a control frame can carry.

Each event on the wire is ``{"id", "type", "conversation_id", "data"}``; ``data`` grows
by adding keys, never by changing what a key means, so old clients keep working
(``EVENT_SCHEMA_VERSION`` is bumped, and documented, on any change that could not be
made that way). It lives in ``core`` because metrics bound their labels by it.
"""

from __future__ import annotations

from enum import StrEnum

EVENT_SCHEMA_VERSION = 1


class EventType(StrEnum):
    """Types written to a conversation's or a person's log (they have ids and replay)."""

    QUESTION = "question"
    SEARCH = "search"
    HITS = "hits"
    DELTA = "delta"
    DONE = "done"
    ERROR = "error"
    NOTIFICATION = "notification"
    SYNC_PROGRESS = "sync.progress"
    SYNC_DONE = "sync.done"
    SYNC_ERROR = "sync.error"


class ControlType(StrEnum):
    """Frames a transport sends about the stream itself (no id; never replayed)."""

    READY = "ready"
    RESET = "reset"
    RECONNECT = "reconnect"
    ADVICE = "advice"
    PING = "ping"
    PONG = "pong"
    ERROR = "error"


TERMINAL_TYPES = frozenset({EventType.DONE, EventType.ERROR})

"""Dedup keys of an answer's events: the one rule every writer of an answer shares.

Events of one answer are deduplicated by ``<client message id>:<part>``, so a
retried request, task or sweep writes each part at most once. The end of an
answer has one part of its own (``end``) whatever its type: whoever writes
first, ``done`` or ``error``, ends it, and every later writer is a no-op.
"""

from __future__ import annotations

TERMINAL_PART = "end"


def event_key(client_message_id: str, part: str) -> str:
    """Dedup key of one answer event: stable across retries of the same question."""
    return f"{client_message_id}:{part}"


def terminal_key(client_message_id: str) -> str:
    """The one dedup key a question's ``done`` or ``error`` is written under."""
    return event_key(client_message_id, TERMINAL_PART)

"""Dedup keys of an answer's events: the one rule every writer of an answer shares.

Events of one answer are deduplicated by ``<client message id>:<part>``, so a
retried request, task or sweep writes each part at most once. The end of an
answer has one part of its own (``end``) whatever its type: whoever writes
first, ``done`` or ``error``, ends it, and every later writer is a no-op.

A question that ended with a *retryable* error and is sent again (same client
message id: the page's Retry, the outbox after a reconnect) is asked again as
a new attempt: its own question event and parts, under ``<id>.a<n>:<part>``, so
the new answer neither collides with nor mixes into the ended one.
"""

from __future__ import annotations

TERMINAL_PART = "end"


def answer_ref(client_message_id: str, attempt: int = 0) -> str:
    """What an attempt's dedup keys are built from (attempt 0 is the plain id)."""
    return client_message_id if attempt == 0 else f"{client_message_id}.a{attempt}"


def event_key(client_message_id: str, part: str, attempt: int = 0) -> str:
    """Dedup key of one answer event: stable across retries of the same attempt."""
    return f"{answer_ref(client_message_id, attempt)}:{part}"


def terminal_key(client_message_id: str, attempt: int = 0) -> str:
    """The one dedup key an attempt's ``done`` or ``error`` is written under."""
    return event_key(client_message_id, TERMINAL_PART, attempt)

"""What a finished sync tells the person: the ``sync.done`` event's data and its sentence.

Apart from the engine because it is wording, not mechanics: the page shows ``text``
as it is and reads the counts (``added`` is the issue's name; ``new`` stays for old
clients).
"""

from __future__ import annotations

from typing import Any, Protocol


class _Counts(Protocol):
    new: int
    deleted: int
    updated: int
    skipped: int
    partly_read: int


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def done_data(
    account_id: str, provider: str, result: _Counts, message_count: int, retention_days: int
) -> dict[str, Any]:
    """``sync.done`` data: the counts, the mailbox's size now, and one sentence."""
    text = f"{plural(result.new, 'new email')}" if result.new else "no new emails"
    if result.partly_read:
        text += f"; {plural(result.partly_read, 'email')} malformed, kept as far as readable"
    if result.skipped:
        text += f"; {plural(result.skipped, 'email')} older than {retention_days} days not kept"
    return {
        "account_id": account_id,
        "provider": provider,
        "new": result.new,
        "added": result.new,
        "deleted": result.deleted,
        "updated": result.updated,
        "skipped": result.skipped,
        "partly_read": result.partly_read,
        "message_count": message_count,
        "text": text,
    }

"""The provider interface and what every provider shares.

A provider yields ``SyncBatch``es. ``shared.sync.engine`` indexes a batch's
messages, applies its deletions and label changes, and only then commits
its bookkeeping and cursor in one Redis transaction. A provider therefore
never stores anything itself: if the process dies mid-batch, the next run
starts from the last committed cursor and re-fetches that batch, which
deterministic document ids make harmless.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, Protocol

from redis.client import Pipeline

from shared.index.writer import ProviderMessage

_HEADERS = BytesHeaderParser(policy=compat32)
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_HEADER_END = re.compile(rb"\r?\n\r?\n")

# Gmail's system labels, spelled the way Google Takeout writes them in
# X-Gmail-Labels, so a Takeout import, a Gmail API sync and Gmail over IMAP
# label the same message the same way.
GMAIL_SYSTEM_LABELS = {
    "INBOX": "Inbox",
    "SENT": "Sent",
    "DRAFT": "Drafts",
    "IMPORTANT": "Important",
    "STARRED": "Starred",
    "UNREAD": "Unread",
    "SPAM": "Spam",
    "TRASH": "Trash",
    "CHAT": "Chat",
    "CATEGORY_PERSONAL": "Category Personal",
    "CATEGORY_SOCIAL": "Category Social",
    "CATEGORY_PROMOTIONS": "Category Promotions",
    "CATEGORY_UPDATES": "Category Updates",
    "CATEGORY_FORUMS": "Category Forums",
}


class ProviderError(Exception):
    """A sync failed in a way that a later retry may fix (network, 5xx, quota)."""


class NeedsReauth(ProviderError):
    """The mailbox refused our credentials (revoked token, changed password).

    Retrying cannot help: the account is marked ``needs_reauth`` with this
    message and skipped until the person reconnects it.
    """


class BatchNotIndexed(ProviderError):
    """Elasticsearch rejected documents of a batch, so its cursor must not advance."""


@dataclass
class SyncBatch:
    """One unit of sync work and the cursor that becomes true once it is applied."""

    messages: list[ProviderMessage] = field(default_factory=list)
    # Message keys whose documents go (the account no longer holds the message).
    deletions: list[str] = field(default_factory=list)
    # Message key -> the message's complete label list now (not a delta: replaying is harmless).
    label_updates: dict[str, list[str]] = field(default_factory=dict)
    # The account's message map: key -> JSON of where it is held; None removes the key.
    members: dict[str, str | None] = field(default_factory=dict)
    # Cursor hash fields to set (JSON strings); None deletes the field.
    cursor: dict[str, str | None] = field(default_factory=dict)
    # Further provider bookkeeping (IMAP uid maps), committed in the cursor's transaction.
    redis_ops: list[Callable[[Pipeline], Any]] = field(default_factory=list)
    # Best estimate of the run's total messages to fetch, for "synced 1,200 of 5,000".
    total_hint: int | None = None
    # Why this run does what it does ("history expired: full resync"), for the log and status.
    note: str = ""

    @property
    def empty(self) -> bool:
        return not (
            self.messages
            or self.deletions
            or self.label_updates
            or self.members
            or self.cursor
            or self.redis_ops
        )


class Provider(Protocol):
    """What ``shared.sync.engine`` needs from a provider."""

    name: str

    def batches(self) -> Iterator[SyncBatch]:
        """Batches from the stored cursor on; the next is built after the last is committed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def message_key_for(raw: bytes) -> str:
    """The message key ``shared.mail.parse`` derives, from the headers alone.

    Providers that key documents by Message-ID (IMAP without Gmail's
    extensions, mbox uploads) need the key before indexing, to record which
    document each uid or offset became. Reading only the header block costs a
    fraction of a full parse. For a well-formed Message-ID this is the same
    key as ``parse_email``'s (normalised id, SHA-256, 32 hex digits), so a
    message imported from Takeout and synced over IMAP merges; for anything
    else the key is still stable, and it is what the document is stored under.
    """
    end = _HEADER_END.search(raw)
    head = raw[: end.end()] if end else raw
    try:
        value = _HEADERS.parsebytes(head).get("Message-ID")
        text = str(value) if value is not None else ""
    except Exception:  # noqa: BLE001 - a header we cannot read means "no Message-ID"
        text = ""
    found = [m.strip() for m in _ANGLE_ID.findall(text) if m.strip()] or text.split()
    if found:
        normalised = found[0].strip().strip("<>").strip().lower()
        if normalised:
            return hashlib.sha256(normalised.encode("utf-8", "replace")).hexdigest()[:32]
    return "raw-" + hashlib.sha256(raw).hexdigest()[:32]


def gmail_message_key(gmail_id: str) -> str:
    """Document key of a Gmail message: its API id (hex), also X-GM-MSGID over IMAP."""
    return f"gmail-{gmail_id.lower()}"


def digest(text: str) -> str:
    """A short stable name for a folder in Redis keys (folder names can hold anything)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]

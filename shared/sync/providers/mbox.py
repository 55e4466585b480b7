"""mbox files (Google Takeout) as a provider, and checks for uploaded files.

An upload becomes an account of provider ``mbox``: it shows in the accounts
list with its state and message count, its cursor is the byte offset of the
next message (stored after each indexed batch, so a crashed import resumes
where it stopped), and deleting the account deletes its mail and the file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from shared.core.settings import Settings
from shared.index.writer import ProviderMessage, takeout_metadata
from shared.mail.mbox import MboxMessage, iter_mbox
from shared.sync.providers.base import SyncBatch, message_key_for

log = logging.getLogger(__name__)

CURSOR_FIELD = "mbox"
HEAD_BYTES = 4096
_MAGIC = (
    (b"PK\x03\x04", "it is a ZIP archive: unpack the Takeout .zip and upload the .mbox inside"),
    (b"\x1f\x8b", "it is gzip-compressed: unpack it and upload the .mbox"),
    (b"7z\xbc\xaf", "it is a 7-Zip archive: unpack it and upload the .mbox"),
    (b"%PDF", "it is a PDF, not a mailbox"),
)
_SINGLE_MESSAGE_HEADERS = (
    b"return-path:",
    b"received:",
    b"delivered-to:",
    b"from:",
    b"message-id:",
)


class NotAnMbox(ValueError):
    """The uploaded file is not an mbox; the message says why."""


def check_mbox_head(head: bytes) -> None:
    """Refuse what is not an mbox, saying what it looks like instead."""
    if not head.strip():
        raise NotAnMbox("the file is empty")
    for magic, reason in _MAGIC:
        if head.startswith(magic):
            raise NotAnMbox(f"not an mbox: {reason}")
    first = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    if first.startswith(b"From "):
        return
    if first.lower().startswith(_SINGLE_MESSAGE_HEADERS):
        raise NotAnMbox(
            "not an mbox: it looks like a single email (.eml); an mbox starts with a 'From ' line"
        )
    if b"\x00" in head[:512]:
        raise NotAnMbox("not an mbox: it is a binary file")
    shown = first[:40].decode("utf-8", "replace")
    raise NotAnMbox(f"not an mbox: an mbox starts with a 'From ' line, this file with {shown!r}")


def check_mbox(path: Path) -> None:
    with open(path, "rb") as handle:
        check_mbox_head(handle.read(HEAD_BYTES))


def upload_dir(settings: Settings) -> Path:
    """Where uploads wait for the worker (web and workers must share this disk)."""
    path = settings.data_path / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


class MboxProvider:
    """Import an mbox file from the stored offset on."""

    name = "mbox"

    def __init__(self, settings: Settings, path: Path | str, cursor: dict[str, str]) -> None:
        self.path = Path(path)
        raw = cursor.get(CURSOR_FIELD)
        self.offset = int(json.loads(raw)["offset"]) if raw else 0
        self.chunk = max(1, settings.import_batch_size)

    def close(self) -> None:
        """Nothing to release: the file is opened per run by the reader."""

    def batches(self) -> Iterator[SyncBatch]:
        if not self.path.exists():
            raise FileNotFoundError(f"uploaded mbox {self.path.name} is gone")
        size = os.path.getsize(self.path)
        if self.offset >= size:
            return
        pending: list[MboxMessage] = []
        done = 0
        for message in iter_mbox(self.path, self.offset):
            if len(pending) >= self.chunk:
                done += len(pending)
                yield self._batch(pending, message.offset, size, done)
                pending = []
            pending.append(message)
        done += len(pending)
        yield self._batch(pending, size, size, done)

    def _batch(
        self, messages: list[MboxMessage], next_offset: int, size: int, done: int
    ) -> SyncBatch:
        batch = SyncBatch()
        for message in messages:
            labels, thread_id = takeout_metadata(message.raw)
            key = message_key_for(message.raw)
            batch.messages.append(
                ProviderMessage(
                    raw=message.raw,
                    labels=labels,
                    thread_id=thread_id,
                    fallback_date=message.envelope_date,
                    cursor=message.offset,
                    message_key=key,
                )
            )
            batch.members[key] = json.dumps({"o": message.offset})
        # The total is not known up front: estimate it from the share of bytes read.
        batch.total_hint = max(done, round(done * size / max(1, next_offset)))
        batch.cursor[CURSOR_FIELD] = json.dumps({"offset": next_offset, "size": size})
        return batch

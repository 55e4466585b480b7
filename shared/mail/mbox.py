"""Stream messages out of an mbox file without loading it.

Google Takeout exports are single mbox files of many gigabytes, so the
reader walks the file line by line and yields one message at a time together
with its byte offset (the mbox sync cursor). The standard library's
``mailbox.mbox`` would first scan the whole file to build a table of
contents; this reader needs one pass and constant memory per message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

log = logging.getLogger(__name__)

_FROM_ = b"From "


@dataclass(frozen=True)
class MboxMessage:
    """One message's raw bytes, where it starts in the file, and its From_ line date."""

    raw: bytes
    offset: int
    envelope_date: datetime | None


def _envelope_date(from_line: bytes) -> datetime | None:
    """The date on a ``From sender Mon Jan  1 00:00:00 +0000 2024`` line, if readable."""
    parts = from_line.decode("ascii", "replace").split(None, 2)
    if len(parts) < 3:
        return None
    text = parts[2].strip()
    for fmt in ("%a %b %d %H:%M:%S %z %Y", "%a %b %d %H:%M:%S %Y"):
        try:
            value = datetime.strptime(" ".join(text.split()), fmt)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _unescape(line: bytes) -> bytes:
    """mboxrd: a body line '>From ' (any number of '>') lost one '>' when written."""
    if line.startswith(b">") and line.lstrip(b">").startswith(_FROM_):
        return line[1:]
    return line


def iter_mbox(path: Path | str, start_offset: int = 0) -> Iterator[MboxMessage]:
    """Yield every message in ``path`` from ``start_offset`` on, in file order.

    A new message starts at a line beginning ``From `` that follows a blank
    line (or starts the file); an unescaped ``From `` inside a body that is
    not preceded by a blank line therefore stays in its message.
    """
    with open(path, "rb") as handle:
        handle.seek(start_offset)
        offset = start_offset
        lines: list[bytes] = []
        start = offset
        envelope: datetime | None = None
        previous_blank = True
        seen_separator = False
        for line in handle:
            if line.startswith(_FROM_) and previous_blank:
                if seen_separator and lines:
                    yield MboxMessage(_finish(lines), start, envelope)
                lines = []
                start = offset
                envelope = _envelope_date(line)
                seen_separator = True
            elif seen_separator:
                lines.append(_unescape(line))
            offset += len(line)
            previous_blank = line in (b"\n", b"\r\n")
        if seen_separator and lines:
            yield MboxMessage(_finish(lines), start, envelope)


def _finish(lines: list[bytes]) -> bytes:
    """Join a message's lines, dropping the blank line mbox puts before the next From_."""
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return b"".join(lines)

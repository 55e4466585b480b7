"""Turn raw RFC 5322 / MIME bytes into the fields Mailchat indexes.

Mailboxes are full of mail that no RFC would accept: lying or unknown
charsets, broken MIME boundaries, NUL bytes, raw 8-bit headers, dates in
every format. An importer that raises on one message stalls a whole sync, so
``parse_email`` never raises: whatever cannot be decoded cleanly is decoded
as well as possible and described in ``ParsedEmail.warnings``.

The standard library's ``email`` package with ``email.policy.default`` does
the MIME work. Its header classes raise on some malformed input, so every
header goes through a helper that falls back to ``decode_header`` and then to
the raw string. The message is parsed once and its tree walked once: the
importer has to keep up with thousands of messages a second.

This module is the public API (``ParsedEmail``, ``parse_email``, and
``html_to_text`` re-exported). The MIME tree walk lives in ``shared.mail.mime_tree``,
header reading in ``shared.mail.headers``, charset decoding in
``shared.mail.charsets``, HTML to text in ``shared.mail.htmltext``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser

from shared.mail.charsets import MAX_WARNINGS, Warnings, collapse, decode_bytes
from shared.mail.headers import (
    EPOCH,
    address_pairs,
    first,
    header_map,
    joined,
    msg_ids,
    received_at,
    repair_headers,
    text_header,
)
from shared.mail.htmltext import html_to_text
from shared.mail.mime_tree import MAX_DEPTH, PARSER, Walker, payload_bytes

__all__ = [
    "EPOCH",
    "MAX_BODY_CHARS",
    "MAX_DEPTH",
    "MAX_WARNINGS",
    "SNIPPET_CHARS",
    "ParsedEmail",
    "html_to_text",
    "parse_email",
]

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200
# Elasticsearch refuses to highlight fields longer than
# index.highlight.max_analyzed_offset (1,000,000 by default).
MAX_BODY_CHARS = 1_000_000

_HEADERS_ONLY = BytesParser(policy=policy.compat32)

_ADDRESS_HEADERS = ("from", "to", "cc")


@dataclass(frozen=True)
class ParsedEmail:
    """Everything the importer indexes about one message."""

    message_key: str
    message_id: str | None
    subject: str
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    received_at: datetime
    body: str
    snippet: str
    has_attachment: bool
    attachment_names: list[str]
    attachment_bytes: int
    list_unsubscribe: str | None
    in_reply_to: str | None
    references: list[str]
    size: int
    warnings: list[str]
    # MIME types of the attachments that have no file name (for ``attachment_types``).
    unnamed_attachment_types: tuple[str, ...] = ()


def _message_key(message_id: str | None, raw: bytes) -> str:
    if message_id:
        normalised = message_id.strip().strip("<>").strip().lower()
        if normalised:
            return hashlib.sha256(normalised.encode("utf-8", "replace")).hexdigest()[:32]
    return "raw-" + hashlib.sha256(raw).hexdigest()[:32]


def _snippet(body: str) -> str:
    snippet = collapse(body[: SNIPPET_CHARS * 4])
    if len(snippet) < SNIPPET_CHARS and len(body) > SNIPPET_CHARS * 4:
        snippet = collapse(body)
    return snippet[:SNIPPET_CHARS].rstrip()


def parse_email(raw: bytes, *, fallback_date: datetime | None = None) -> ParsedEmail:
    """Parse one message. Never raises: problems end up in ``warnings``.

    If the MIME parser itself fails (it can recurse too deep on absurdly
    nested input) the headers are still read and the rest indexed as text;
    should even that fail, the message is indexed under a key of its bytes.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    try:
        raw = bytes(raw)
    except Exception:  # noqa: BLE001
        raw = b""
    warnings = Warnings()
    try:
        return _parse(raw, fallback_date, warnings)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        log.exception("could not parse message (%d bytes)", len(raw))
        warnings.add(f"unparseable message ({type(exc).__name__})")
        received = fallback_date if isinstance(fallback_date, datetime) else EPOCH
        received = received.replace(tzinfo=received.tzinfo or UTC).astimezone(UTC)
        return ParsedEmail(
            _message_key(None, raw),
            None,
            "",
            "",
            "",
            [],
            [],
            received,
            "",
            "",
            False,
            [],
            0,
            None,
            None,
            [],
            len(raw),
            list(warnings),
        )


def _parse(raw: bytes, fallback_date: datetime | None, warnings: Warnings) -> ParsedEmail:
    walker = Walker(warnings)
    try:
        msg: Message = PARSER.parsebytes(repair_headers(raw, warnings))
        walker.walk(msg)
    except Exception as exc:  # noqa: BLE001 - index what can be read
        log.warning("MIME parse failed, indexing as plain text: %r", exc)
        warnings.add(f"MIME structure unparseable ({type(exc).__name__}); indexed as text")
        walker = Walker(warnings)
        msg = _HEADERS_ONLY.parsebytes(raw, headersonly=True)
        walker.texts.append(decode_bytes(payload_bytes(msg), None, warnings, "body"))
    return _build(raw, msg, walker, fallback_date, warnings)


def _build(
    raw: bytes, msg: Message, walker: Walker, fallback_date: datetime | None, warnings: Warnings
) -> ParsedEmail:
    headers = header_map(msg, warnings)
    addresses = {
        name: address_pairs(
            first(headers, name) if name == "from" else joined(headers, name), name, warnings
        )
        for name in _ADDRESS_HEADERS
    }
    senders = addresses["from"]
    sender = next((pair for pair in senders if pair[1]), senders[0] if senders else ("", ""))
    message_ids = msg_ids(first(headers, "message-id"))
    message_id = message_ids[0] if message_ids else None
    body = "\n\n".join(walker.texts)
    if len(body) > MAX_BODY_CHARS:
        warnings.add(f"body truncated to {MAX_BODY_CHARS} characters")
        body = body[:MAX_BODY_CHARS]
    in_reply_to = msg_ids(first(headers, "in-reply-to"))
    unsubscribe = text_header(first(headers, "list-unsubscribe"), "list-unsubscribe", warnings)
    return ParsedEmail(
        message_key=_message_key(message_id, raw),
        message_id=message_id,
        subject=text_header(first(headers, "subject"), "subject", warnings),
        from_address=sender[1],
        from_name=sender[0],
        to=[addr for _, addr in addresses["to"] if addr],
        cc=[addr for _, addr in addresses["cc"] if addr],
        received_at=received_at(headers, fallback_date, warnings),
        body=body,
        snippet=_snippet(body),
        has_attachment=walker.attachments > 0,
        attachment_names=walker.names,
        attachment_bytes=walker.attachment_bytes,
        list_unsubscribe=unsubscribe or None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=msg_ids(joined(headers, "references")),
        size=len(raw),
        warnings=list(warnings),
        unnamed_attachment_types=tuple(walker.unnamed_types),
    )

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
``html_to_text`` re-exported) and the MIME tree walk. Header reading lives in
``shared.mail.headers``, charset decoding in ``shared.mail.charsets``, HTML to text
in ``shared.mail.htmltext``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

from shared.mail.charsets import MAX_WARNINGS, Warnings, collapse, decode_bytes
from shared.mail.headers import (
    EPOCH,
    POLICY,
    address_pairs,
    decode_words,
    first,
    from_8bit,
    header_map,
    joined,
    msg_ids,
    received_at,
    repair_headers,
    text_header,
)
from shared.mail.htmltext import html_to_text

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
MAX_DEPTH = 50

_PARSER = BytesParser(policy=POLICY)
_HEADERS_ONLY = BytesParser(policy=policy.compat32)

_SIGNATURE_TYPES = {
    "application/pgp-signature",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
}
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


_PartInfo = tuple[str, str | None, str | None, str | None]


class _Walker:
    """One pass over the MIME tree collecting body text and attachments."""

    def __init__(self, warnings: Warnings) -> None:
        self.warnings = warnings
        self.texts: list[str] = []
        self.names: list[str] = []
        self.attachments = 0
        self.attachment_bytes = 0
        self._info: dict[int, _PartInfo] = {}

    def info(self, part: Message) -> _PartInfo:
        """Header facts of a part, parsed once even when several decisions need them."""
        found = self._info.get(id(part))
        if found is None:
            found = self._info[id(part)] = _part_info(part, self.warnings)
        return found

    def walk(self, part: Message, depth: int = 0, want_body: bool = True) -> None:
        if depth > MAX_DEPTH:
            self.warnings.add(f"MIME nesting deeper than {MAX_DEPTH}; rest ignored")
            return
        ctype, charset, disposition, filename = self.info(part)
        maintype = ctype.partition("/")[0]
        if maintype == "multipart":
            children: Any = part.get_payload()
            if isinstance(children, list):
                self._multipart(ctype, children, depth, want_body)
            elif (repaired := _reparse_multipart(part, ctype, children)) is not None:
                self.warnings.add("multipart boundary recovered from a malformed Content-Type")
                self.walk(repaired, depth + 1, want_body)
            elif want_body and isinstance(children, str) and children.strip():
                # No usable boundary: the "multipart" is really one text blob.
                self._add_text(part, "text/plain", charset)
        elif disposition == "attachment" or filename or maintype != "text":
            self._attachment(part, ctype, filename)
        elif want_body:
            self._add_text(part, ctype, charset)
        # Read last: decoding a payload adds its defects (bad base64 padding, ...).
        for defect in getattr(part, "defects", ()):
            self.warnings.add(f"MIME defect in {ctype}: {type(defect).__name__}")

    def _multipart(self, ctype: str, children: list[Message], depth: int, want_body: bool) -> None:
        chosen: list[Message] | None = None
        if ctype == "multipart/alternative" and want_body and children:
            chosen = self._choose_alternatives(children, depth)
        for index, child in enumerate(children):
            if (
                ctype == "multipart/signed"
                and index > 0
                and self.info(child)[0] in _SIGNATURE_TYPES
            ):
                continue  # the signature is protocol, not something the user attached
            body = want_body and (chosen is None or any(child is c for c in chosen))
            self.walk(child, depth + 1, body)

    def _choose_alternatives(self, children: list[Message], depth: int) -> list[Message]:
        """The alternatives whose text we index.

        Those that are (or, for multiparts, contain) non-blank text/plain;
        else those with text/html; else the last, most faithful one (RFC 2046).
        Keeping every plain alternative rather than the first loses nothing
        when a sender mislabels a multipart/mixed as alternative.
        """
        plain: list[Message] = []
        html: list[Message] = []
        for child in children:
            kind = self._text_kind(child, depth + 1)
            if kind == "text/plain":
                plain.append(child)
            elif kind == "text/html":
                html.append(child)
        if html:
            plain = [c for c in plain if self.info(c)[0] != "text/plain" or _payload(c).strip()]
        return plain or html or children[-1:]

    def _text_kind(self, part: Message, depth: int) -> str | None:
        """text/plain or text/html if ``part`` is or holds such a body part, plain first."""
        ctype, _, disposition, filename = self.info(part)
        if ctype in ("text/plain", "text/html"):
            return None if disposition == "attachment" or filename else ctype
        children: Any = part.get_payload()
        if not ctype.startswith("multipart/") or not isinstance(children, list):
            return None
        if depth > MAX_DEPTH:
            return None
        kinds = {self._text_kind(child, depth + 1) for child in children}
        return (
            "text/plain" if "text/plain" in kinds else "text/html" if "text/html" in kinds else None
        )

    def _add_text(self, part: Message, ctype: str, charset: str | None) -> None:
        text = decode_bytes(_payload(part), charset, self.warnings, ctype)
        if ctype == "text/html":
            text = html_to_text(text)
        elif "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text.strip():
            self.texts.append(text.strip("\n"))

    def _attachment(self, part: Message, ctype: str, filename: str | None) -> None:
        self.attachments += 1
        name = filename
        if ctype.startswith("message/"):
            inner: Any = part.get_payload()
            size = _flat_size(inner)
            if not name and ctype == "message/rfc822":
                subject = None
                if isinstance(inner, list) and inner:
                    raw_subject = header_map(inner[0], self.warnings).get("subject")
                    subject = text_header(
                        raw_subject[0] if raw_subject else None, "subject", self.warnings
                    )
                name = subject or "message.eml"
        else:
            size = len(_payload(part))
        self.attachment_bytes += size
        if name:
            self.names.append(collapse(name))


def _part_info(part: Message, warnings: Warnings) -> _PartInfo:
    """(content type, charset, disposition, filename), each header parsed once.

    Where the strict parser reports defects the raw header is also read
    leniently: "multipart/mixed boundary=x" (no semicolon) would otherwise be
    text/plain, and a raw UTF-8 filename would be all U+FFFD.
    """
    ctype, params, raw = part.get_default_type(), {}, ""
    header: Any  # email.headerregistry objects; typeshed calls them str
    try:
        header = part.get("content-type")
        if header is not None:
            ctype, params = header.content_type, dict(header.params)
            if header.defects:
                raw = _raw_header(part, "content-type")
    except Exception:  # noqa: BLE001
        ctype, raw = "text/plain", _raw_header(part, "content-type")
    if raw:
        token = raw.partition(";")[0].split()
        if token and token[0].count("/") == 1:
            ctype = token[0].lower()
        params["charset"] = params.get("charset") or _crude_param(raw, "charset")
        params["name"] = _better(params.get("name"), _crude_param(raw, "name"))
    if ctype.count("/") != 1:
        ctype = "text/plain"
    disposition = filename = None
    try:
        header = part.get("content-disposition")
        if header is not None:
            disposition, filename = header.content_disposition, header.params.get("filename")
            if header.defects:
                raw = _raw_header(part, "content-disposition")
                filename = _better(filename, _crude_param(raw, "filename"))
    except Exception:  # noqa: BLE001
        disposition = "attachment"
        filename = _crude_param(_raw_header(part, "content-disposition"), "filename")
    filename = filename or params.get("name")
    if filename and "=?" in filename:
        filename = decode_words(filename, warnings)
    return ctype, params.get("charset"), disposition, filename or None


def _better(parsed: str | None, lenient: str | None) -> str | None:
    return lenient if not parsed or ("\ufffd" in parsed and lenient) else parsed


def _raw_header(part: Message, name: str) -> str:
    """A header's source text (8-bit decoded), for when its parsed form is unusable."""
    value = next((str(v) for k, v in part.raw_items() if k.lower() == name), "")
    return from_8bit(value, Warnings())


def _crude_param(raw: str, name: str) -> str | None:
    """A parameter read leniently, for headers the real parser gave up on."""
    match = re.search(rf'(?:^|[;\s]){name}\s*=\s*(?:"([^"]*)"|([^";\s]+))', raw, re.IGNORECASE)
    return (match.group(1) or match.group(2)) if match else None


def _reparse_multipart(part: Message, ctype: str, payload: object) -> Message | None:
    """Re-read a multipart whose boundary was lost to a malformed Content-Type.

    ``multipart/mixed <fold> boundary="x"`` (no semicolon) is a real-world
    mistake; the strict parser then sees one opaque text blob.
    """
    if not isinstance(payload, str):
        return None
    boundary = _crude_param(_raw_header(part, "content-type"), "boundary")
    if not boundary or not boundary.isascii() or '"' in boundary:
        return None
    body = _payload(part)
    if b"--" + boundary.encode() not in body:
        return None
    head = f'Content-Type: {ctype}; boundary="{boundary}"\r\n\r\n'.encode()
    repaired = _PARSER.parsebytes(head + body)
    return repaired if isinstance(repaired.get_payload(), list) else None


def _payload(part: Message) -> bytes:
    """Transfer-decoded payload bytes; b"" when there are none."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - undecodable transfer encoding: keep it raw
        raw = part.get_payload()
        data = raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def _flat_size(payload: object, depth: int = 0) -> int:
    """Size in bytes of an attached message as sent, counted without re-serialising it."""
    if isinstance(payload, str):
        return len(payload)  # undecoded source: one character per byte
    if not isinstance(payload, list) or depth > MAX_DEPTH:
        return 0
    total = 0
    for inner in payload:
        try:
            total += sum(len(k) + len(v) + 4 for k, v in inner.raw_items()) + 2
            total += _flat_size(inner.get_payload(), depth + 1)
        except Exception:  # noqa: BLE001
            continue
    return total


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
    walker = _Walker(warnings)
    try:
        msg: Message = _PARSER.parsebytes(repair_headers(raw, warnings))
        walker.walk(msg)
    except Exception as exc:  # noqa: BLE001 - index what can be read
        log.warning("MIME parse failed, indexing as plain text: %r", exc)
        warnings.add(f"MIME structure unparseable ({type(exc).__name__}); indexed as text")
        walker = _Walker(warnings)
        msg = _HEADERS_ONLY.parsebytes(raw, headersonly=True)
        walker.texts.append(decode_bytes(_payload(msg), None, warnings, "body"))
    return _build(raw, msg, walker, fallback_date, warnings)


def _build(
    raw: bytes, msg: Message, walker: _Walker, fallback_date: datetime | None, warnings: Warnings
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
    )

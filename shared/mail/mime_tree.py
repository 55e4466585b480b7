"""The MIME tree walk: one pass over a parsed message collecting its text and attachments.

Separate from ``shared.mail.parse`` (the public API and the indexed fields) because
this is where every broken structure is met: boundaries that lie, parts whose
headers raise, multiparts that the standard library leaves as a string, nesting
deeper than any real mail. Each is handled here and described as a warning.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesParser
from typing import Any

from shared.mail.charsets import Warnings, collapse, decode_bytes
from shared.mail.headers import POLICY, decode_words, from_8bit, header_map, text_header
from shared.mail.htmltext import html_to_text

MAX_DEPTH = 50

PARSER = BytesParser(policy=POLICY)
# (content type, charset, disposition, filename) of one part, read once.
_PartInfo = tuple[str, str | None, str | None, str | None]

_SIGNATURE_TYPES = {
    "application/pgp-signature",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
}


class Walker:
    """One pass over the MIME tree collecting body text and attachments."""

    def __init__(self, warnings: Warnings) -> None:
        self.warnings = warnings
        self.texts: list[str] = []
        self.names: list[str] = []
        # MIME types of attachments sent without a file name: their type is all there is.
        self.unnamed_types: list[str] = []
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
            plain = [
                c for c in plain if self.info(c)[0] != "text/plain" or payload_bytes(c).strip()
            ]
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
        text = decode_bytes(payload_bytes(part), charset, self.warnings, ctype)
        if ctype == "text/html":
            text = html_to_text(text)
        elif "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text.strip():
            self.texts.append(text.strip("\n"))

    def _attachment(self, part: Message, ctype: str, filename: str | None) -> None:
        self.attachments += 1
        name = filename
        if not filename:
            self.unnamed_types.append(ctype)
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
            size = len(payload_bytes(part))
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
    body = payload_bytes(part)
    if b"--" + boundary.encode() not in body:
        return None
    head = f'Content-Type: {ctype}; boundary="{boundary}"\r\n\r\n'.encode()
    repaired = PARSER.parsebytes(head + body)
    return repaired if isinstance(repaired.get_payload(), list) else None


def payload_bytes(part: Message) -> bytes:
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

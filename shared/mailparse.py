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
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from selectolax.lexbor import LexborHTMLParser

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200
# Elasticsearch refuses to highlight fields longer than
# index.highlight.max_analyzed_offset (1,000,000 by default).
MAX_BODY_CHARS = 1_000_000
MAX_DEPTH = 50
MAX_WARNINGS = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _HeaderClasses(HeaderRegistry):
    """A HeaderRegistry that builds each header class once, not on every lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = super().__getitem__(name)
            if len(self._classes) < 256:
                self._classes[key] = cls
        return cls


class _MemoPolicy(EmailPolicy):
    """``policy.default``, except that parsed Content-* headers are memoised.

    The stdlib parses a header afresh on every access, and the feed parser
    alone reads each part's Content-Type half a dozen times; the same values
    (``text/plain; charset="utf-8"``) also recur from message to message.
    Header objects are immutable, so sharing them is safe. The cache stays
    small: each entry keeps its parse tree, and a big cache slows the GC.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        if len(value) > 500 or not name[:8].lower() == "content-":
            return super().header_fetch_parse(name, value)
        return _fetch_header(self, name, value)


@functools.lru_cache(maxsize=1024)
def _fetch_header(memo_policy: _MemoPolicy, name: str, value: str) -> Any:
    return EmailPolicy.header_fetch_parse(memo_policy, name, value)


_POLICY = _MemoPolicy(header_factory=_HeaderClasses())
_PARSER = BytesParser(policy=_POLICY)
_HEADERS_ONLY = BytesParser(policy=policy.compat32)

# Labels that mail clients send but Python knows under another name, or where
# the label undersells what senders actually use (WHATWG Encoding Standard).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "unicode-1-1-utf-7": "utf-7",
}
# Codecs that exist in Python but are not character sets a sender may pick.
_NOT_CHARSETS = {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined"}
_SIGNATURE_TYPES = {
    "application/pgp-signature",
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
}
_ADDRESS_HEADERS = ("from", "to", "cc")
# Block-level tags become line breaks. They are marked in the source with a
# regex (one C-level pass) rather than by editing the DOM node by node, which
# costs ten times the parse on a table-heavy newsletter.
_BLOCK_TAG = re.compile(
    r"<(?=/?(?:address|article|aside|blockquote|br|center|dd|div|dl|dt|fieldset|figcaption"
    r"|figure|footer|form|h[1-6]|header|hr|li|main|nav|ol|p|pre|section|table|td|th|tr|ul)\b)",
    re.IGNORECASE,
)
# NUL, and the zero-width characters newsletters pad their preheaders with.
_INVISIBLE = re.compile("[\x00\u200b\u2060\ufeff\u00ad\u034f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# RFC 5322 4.5.3 obs-optional allows "Name :"; Python's parser ends the header block there.
_OBS_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_Q_WORD = re.compile(rb"=\?[^?\s]+\?[qQ]\?[^?\s]*\?=")
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
# The common shapes of a mailbox ("a@b", "Name <a@b>", "\"Name\" <a@b>"), read
# without the stdlib's full RFC 5322 parser, which costs a third of a parse.
_ADDR_SPEC = r"[^\s<>@\",;:()\[\]\\]+@[^\s<>@\",;:()\[\]\\]+"
_SIMPLE_MAILBOX = re.compile(
    rf'\s*(?:"([^"\\]*)"\s*|([^"<>,;:\\()@\[\]]*))<({_ADDR_SPEC})>\s*|\s*({_ADDR_SPEC})\s*'
)
_LOOSE_ADDR = re.compile(r"[^\s<>\"',;:()]+@[^\s<>\"',;:()]+")


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


def _collapse(text: str) -> str:
    """Whitespace runs (folding included) as single spaces, made safe to index.

    The header classes leave undecodable bytes of encoded words with unknown
    charsets as lone surrogates, which cannot even be encoded as UTF-8 JSON;
    ``=?utf-8?q?=00?=`` gives NULs. Both are repaired here, where every
    decoded header value passes.
    """
    if not text.isascii():
        if _SURROGATE.search(text):
            try:
                data = text.encode("utf-8", "surrogateescape")
                text = _decode_bytes(data, None, _Warnings(), "header")
            except UnicodeError:
                text = text.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return " ".join(text.split())


class _Warnings(list[str]):
    """A bounded, de-duplicated warning list: one broken message must not flood the log."""

    def add(self, text: str) -> None:
        if len(self) < MAX_WARNINGS and text not in self:
            self.append(text)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body, for indexing and snippets.

    A real parser (lexbor) does the work, because mail HTML is broken in ways
    regex strippers get wrong (unclosed comments, ``>`` in attributes, text
    in ``<style>``). Block elements become line breaks so that the words of
    adjacent cells never merge; inline tags (``<b>wor</b>ld``) join words.
    """
    if not html or not html.strip():
        return ""
    try:
        tree = LexborHTMLParser(_BLOCK_TAG.sub("\n<", html))
        tree.strip_tags(["script", "style", "head", "noscript", "template"])
        root = tree.body or tree.root
        text = root.text(deep=True, separator="") if root is not None else ""
    except Exception as exc:  # noqa: BLE001 - a bad document must not stop an import
        log.debug("html_to_text failed: %r", exc)
        return _collapse(html)
    lines = _INVISIBLE.sub("", text).split("\n")
    return "\n".join([" ".join(line.split()) for line in lines if line and not line.isspace()])


def _decode_bytes(data: bytes, charset: str | None, warnings: _Warnings, what: str) -> str:
    """Decode text bytes, surviving unknown and lying charsets.

    The declared charset is tried strictly; on failure UTF-8 (what most
    mislabelled mail really is), then cp1252 with replacement, which cannot fail.
    """
    label = (charset or "").strip().strip("\"'").lower()
    if label:
        name = _CHARSET_ALIASES.get(label, label)
        try:
            codec = codecs.lookup(name).name
            if codec in _NOT_CHARSETS:
                raise LookupError(codec)
            return data.decode(codec).replace("\x00", "")
        except LookupError:
            warnings.add(f"unknown charset {label!r} in {what}")
        except (UnicodeError, ValueError):
            warnings.add(f"{what} is not valid {label}")
    try:
        return data.decode("utf-8").replace("\x00", "")
    except UnicodeDecodeError:
        if not label:
            warnings.add(f"undeclared 8-bit text in {what} decoded as cp1252")
        return data.decode("cp1252", "replace").replace("\x00", "")


def _from_8bit(value: str, warnings: _Warnings) -> str:
    """Unfolded header text without NULs; raw 8-bit bytes (surrogate-escaped) decoded."""
    if "\r" in value or "\n" in value or "\x00" in value:
        value = value.replace("\r", "").replace("\n", "").replace("\x00", "")
    if value.isascii():
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeError:
        return value
    if b"=?" in data:
        fixed = _Q_WORD.sub(_requote, data)
        if fixed != data:
            warnings.add("raw 8-bit bytes inside an encoded word")
            data = fixed
    return _decode_bytes(data, None, warnings, "header")


def _requote(match: re.Match[bytes]) -> bytes:
    """Raw 8-bit bytes inside a Q encoded word, re-escaped so its charset label applies."""
    return _HIGH_BYTE.sub(lambda byte: b"=%02X" % byte.group()[0], match.group())


def _decode_words(value: str, warnings: _Warnings) -> str:
    """RFC 2047 decoding word by word, with the body's charset fallbacks.

    The fallback for when the header classes raise or give up on a charset
    (they turn undecodable bytes into U+FFFD).
    """
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - decode_header raises on many broken words
        return value
    decoded = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            decoded.append(chunk)
        elif charset is None:  # unencoded text, which decode_header returns escaped
            try:
                decoded.append(chunk.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                decoded.append(chunk.decode("latin-1"))
        else:
            decoded.append(_decode_bytes(chunk, charset, warnings, "header"))
    return "".join(decoded)


def _text_header(value: str | None, name: str, warnings: _Warnings) -> str:
    if not value:
        return ""
    if "=?" in value:
        try:
            decoded = str(_POLICY.header_fetch_parse(name, value))
        except Exception as exc:  # noqa: BLE001
            warnings.add(f"malformed {name} header ({type(exc).__name__})")
            decoded = "\ufffd"
        value = decoded if "\ufffd" not in decoded else _decode_words(value, warnings)
    return _collapse(value)


def _addresses(value: str | None, name: str, warnings: _Warnings) -> list[tuple[str, str]]:
    """(display name, lowercased addr-spec) pairs of an address header.

    A bare word without "@" ("From: Whomever") is a name, not an address: it
    is kept as the display name, with an empty address. In angle brackets
    ("<root>", local delivery) it is an address all the same.
    """
    if not value:
        return []
    pairs = _simple_addresses(value, name == "from", warnings)
    if pairs is not None:
        return pairs
    pairs = []
    try:
        for addr in _POLICY.header_fetch_parse(name, value).addresses:
            pairs.append(_pair(addr.display_name, addr.addr_spec, value))
        if any(addr for _, addr in pairs):
            return pairs
        pairs = []
    except Exception as exc:  # noqa: BLE001
        warnings.add(f"malformed {name} header ({type(exc).__name__})")
    try:
        for display, addr in getaddresses([value]):
            pairs.append(_pair(_decode_words(display, warnings), addr, value))
    except Exception:  # noqa: BLE001
        pairs = []
    if not any(addr for _, addr in pairs):
        pairs = [("", found.lower()) for found in _LOOSE_ADDR.findall(value)] or pairs
    return [pair for pair in pairs if any(pair)]


def _simple_addresses(
    value: str, single: bool, warnings: _Warnings
) -> list[tuple[str, str]] | None:
    """The fast path of ``_addresses``; None when the header needs the full parser."""
    if single:
        pieces = [value]
    elif '"' in value or "(" in value:
        return None
    else:
        pieces = [piece for piece in value.split(",") if piece.strip()]
    pairs = []
    for piece in pieces:
        match = _SIMPLE_MAILBOX.fullmatch(piece)
        if match is None:
            return None
        quoted, bare, bracketed, plain = match.groups()
        display = quoted if quoted is not None else bare or ""
        if "=?" in display:
            display = _decode_words(display, warnings)
        pairs.append((_collapse(display), (bracketed or plain).lower()))
    return pairs


def _pair(display: str, addr_spec: str, source: str) -> tuple[str, str]:
    display = _collapse(display)
    addr_spec = addr_spec.strip()
    if addr_spec in ("", "<>") or ("@" not in addr_spec and f"<{addr_spec}>" not in source):
        return display or addr_spec.strip("<>"), ""
    return display, _collapse(addr_spec).lower()


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_collapse(value))
        if parsed.tzinfo is None:  # "-0000": zone unknown, RFC 5322 says read as UTC
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, OverflowError, ...
        return None


def _received_at(
    headers: dict[str, list[str]], fallback: datetime | None, warnings: _Warnings
) -> datetime:
    date_values = headers.get("date")
    found = _date(date_values[0] if date_values else None)
    if found is not None:
        return found
    warnings.add("missing Date header" if not date_values else "unparseable Date header")
    for received in reversed(headers.get("received", [])):  # bottom-most hop first
        found = _date(received.rpartition(";")[2])
        if found is not None:
            warnings.add("date taken from Received header")
            return found
    if fallback is not None:
        warnings.add("date taken from fallback_date")
        if fallback.tzinfo is None:
            return fallback.replace(tzinfo=UTC)
        return fallback.astimezone(UTC)
    warnings.add("no usable date; using 1970-01-01")
    return EPOCH


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = [m.strip() for m in _ANGLE_ID.findall(value)]
    return [m for m in found if m] or value.split()


def _header_map(msg: Message, warnings: _Warnings) -> dict[str, list[str]]:
    """Raw header values by lowercased name, unfolded and 8-bit-decoded, read once."""
    headers: dict[str, list[str]] = {}
    try:
        for name, value in msg.raw_items():
            headers.setdefault(name.lower(), []).append(_from_8bit(str(value), warnings))
    except Exception as exc:  # noqa: BLE001
        warnings.add(f"unreadable headers ({type(exc).__name__})")
    return headers


_PartInfo = tuple[str, str | None, str | None, str | None]


class _Walker:
    """One pass over the MIME tree collecting body text and attachments."""

    def __init__(self, warnings: _Warnings) -> None:
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
        text = _decode_bytes(_payload(part), charset, self.warnings, ctype)
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
                    raw_subject = _header_map(inner[0], self.warnings).get("subject")
                    subject = _text_header(
                        raw_subject[0] if raw_subject else None, "subject", self.warnings
                    )
                name = subject or "message.eml"
        else:
            size = len(_payload(part))
        self.attachment_bytes += size
        if name:
            self.names.append(_collapse(name))


def _part_info(part: Message, warnings: _Warnings) -> _PartInfo:
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
        filename = _decode_words(filename, warnings)
    return ctype, params.get("charset"), disposition, filename or None


def _better(parsed: str | None, lenient: str | None) -> str | None:
    return lenient if not parsed or ("\ufffd" in parsed and lenient) else parsed


def _raw_header(part: Message, name: str) -> str:
    """A header's source text (8-bit decoded), for when its parsed form is unusable."""
    value = next((str(v) for k, v in part.raw_items() if k.lower() == name), "")
    return _from_8bit(value, _Warnings())


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


def _repair_headers(raw: bytes, warnings: _Warnings) -> bytes:
    """Rewrite obsolete "Name :" header fields, which would end Python's header block early."""
    end = _HEADER_END.search(raw)
    head_end = end.start() if end else len(raw)
    if _OBS_FIELD.search(raw, 0, head_end) is None:
        return raw
    warnings.add("obsolete header syntax (space before colon)")
    return _OBS_FIELD.sub(rb"\1:", raw[:head_end]) + raw[head_end:]


def _message_key(message_id: str | None, raw: bytes) -> str:
    if message_id:
        normalised = message_id.strip().strip("<>").strip().lower()
        if normalised:
            return hashlib.sha256(normalised.encode("utf-8", "replace")).hexdigest()[:32]
    return "raw-" + hashlib.sha256(raw).hexdigest()[:32]


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _joined(headers: dict[str, list[str]], name: str) -> str | None:
    values: Iterable[str] = headers.get(name, ())
    return ", ".join(values) or None


def _snippet(body: str) -> str:
    snippet = _collapse(body[: SNIPPET_CHARS * 4])
    if len(snippet) < SNIPPET_CHARS and len(body) > SNIPPET_CHARS * 4:
        snippet = _collapse(body)
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
    warnings = _Warnings()
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


def _parse(raw: bytes, fallback_date: datetime | None, warnings: _Warnings) -> ParsedEmail:
    walker = _Walker(warnings)
    try:
        msg: Message = _PARSER.parsebytes(_repair_headers(raw, warnings))
        walker.walk(msg)
    except Exception as exc:  # noqa: BLE001 - index what can be read
        log.warning("MIME parse failed, indexing as plain text: %r", exc)
        warnings.add(f"MIME structure unparseable ({type(exc).__name__}); indexed as text")
        walker = _Walker(warnings)
        msg = _HEADERS_ONLY.parsebytes(raw, headersonly=True)
        walker.texts.append(_decode_bytes(_payload(msg), None, warnings, "body"))
    return _build(raw, msg, walker, fallback_date, warnings)


def _build(
    raw: bytes, msg: Message, walker: _Walker, fallback_date: datetime | None, warnings: _Warnings
) -> ParsedEmail:
    headers = _header_map(msg, warnings)
    addresses = {
        name: _addresses(
            _first(headers, name) if name == "from" else _joined(headers, name), name, warnings
        )
        for name in _ADDRESS_HEADERS
    }
    senders = addresses["from"]
    sender = next((pair for pair in senders if pair[1]), senders[0] if senders else ("", ""))
    message_ids = _msg_ids(_first(headers, "message-id"))
    message_id = message_ids[0] if message_ids else None
    body = "\n\n".join(walker.texts)
    if len(body) > MAX_BODY_CHARS:
        warnings.add(f"body truncated to {MAX_BODY_CHARS} characters")
        body = body[:MAX_BODY_CHARS]
    in_reply_to = _msg_ids(_first(headers, "in-reply-to"))
    unsubscribe = _text_header(_first(headers, "list-unsubscribe"), "list-unsubscribe", warnings)
    return ParsedEmail(
        message_key=_message_key(message_id, raw),
        message_id=message_id,
        subject=_text_header(_first(headers, "subject"), "subject", warnings),
        from_address=sender[1],
        from_name=sender[0],
        to=[addr for _, addr in addresses["to"] if addr],
        cc=[addr for _, addr in addresses["cc"] if addr],
        received_at=_received_at(headers, fallback_date, warnings),
        body=body,
        snippet=_snippet(body),
        has_attachment=walker.attachments > 0,
        attachment_names=walker.names,
        attachment_bytes=walker.attachment_bytes,
        list_unsubscribe=unsubscribe or None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_msg_ids(_joined(headers, "references")),
        size=len(raw),
        warnings=list(warnings),
    )

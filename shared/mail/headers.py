"""Reading the headers of real-world mail: text, addresses, dates, message ids.

Python's header classes (``email.policy.default``) raise on some malformed
input and give up on unknown charsets, so every header goes through a helper
that falls back to ``decode_header`` and then to the raw string. Raw 8-bit
header bytes, obsolete syntax and unparseable dates are repaired or worked
around here, with what was done recorded in the caller's ``Warnings``.

``POLICY`` is the policy the message parser in ``shared.mail.parse`` uses: it
memoises parsed Content-* headers, which the stdlib would re-parse on every
access.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.header import decode_header
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from shared.mail.charsets import Warnings, collapse, decode_bytes

log = logging.getLogger(__name__)

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


POLICY = _MemoPolicy(header_factory=_HeaderClasses())

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


def repair_headers(raw: bytes, warnings: Warnings) -> bytes:
    """Rewrite obsolete "Name :" header fields, which would end Python's header block early."""
    end = _HEADER_END.search(raw)
    head_end = end.start() if end else len(raw)
    if _OBS_FIELD.search(raw, 0, head_end) is None:
        return raw
    warnings.add("obsolete header syntax (space before colon)")
    return _OBS_FIELD.sub(rb"\1:", raw[:head_end]) + raw[head_end:]


def header_map(msg: Message, warnings: Warnings) -> dict[str, list[str]]:
    """Raw header values by lowercased name, unfolded and 8-bit-decoded, read once."""
    headers: dict[str, list[str]] = {}
    try:
        for name, value in msg.raw_items():
            headers.setdefault(name.lower(), []).append(from_8bit(str(value), warnings))
    except Exception as exc:  # noqa: BLE001
        warnings.add(f"unreadable headers ({type(exc).__name__})")
    return headers


def first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def joined(headers: dict[str, list[str]], name: str) -> str | None:
    values: Iterable[str] = headers.get(name, ())
    return ", ".join(values) or None


def from_8bit(value: str, warnings: Warnings) -> str:
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
    return decode_bytes(data, None, warnings, "header")


def _requote(match: re.Match[bytes]) -> bytes:
    """Raw 8-bit bytes inside a Q encoded word, re-escaped so its charset label applies."""
    return _HIGH_BYTE.sub(lambda byte: b"=%02X" % byte.group()[0], match.group())


def decode_words(value: str, warnings: Warnings) -> str:
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
            decoded.append(decode_bytes(chunk, charset, warnings, "header"))
    return "".join(decoded)


def text_header(value: str | None, name: str, warnings: Warnings) -> str:
    if not value:
        return ""
    if "=?" in value:
        try:
            decoded = str(POLICY.header_fetch_parse(name, value))
        except Exception as exc:  # noqa: BLE001
            warnings.add(f"malformed {name} header ({type(exc).__name__})")
            decoded = "\ufffd"
        value = decoded if "\ufffd" not in decoded else decode_words(value, warnings)
    return collapse(value)


def address_pairs(value: str | None, name: str, warnings: Warnings) -> list[tuple[str, str]]:
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
        for addr in POLICY.header_fetch_parse(name, value).addresses:
            pairs.append(_pair(addr.display_name, addr.addr_spec, value))
        if any(addr for _, addr in pairs):
            return pairs
        pairs = []
    except Exception as exc:  # noqa: BLE001
        warnings.add(f"malformed {name} header ({type(exc).__name__})")
    try:
        for display, addr in getaddresses([value]):
            pairs.append(_pair(decode_words(display, warnings), addr, value))
    except Exception:  # noqa: BLE001
        pairs = []
    if not any(addr for _, addr in pairs):
        pairs = [("", found.lower()) for found in _LOOSE_ADDR.findall(value)] or pairs
    return [pair for pair in pairs if any(pair)]


def _simple_addresses(value: str, single: bool, warnings: Warnings) -> list[tuple[str, str]] | None:
    """The fast path of ``address_pairs``; None when the header needs the full parser."""
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
            display = decode_words(display, warnings)
        pairs.append((collapse(display), (bracketed or plain).lower()))
    return pairs


def _pair(display: str, addr_spec: str, source: str) -> tuple[str, str]:
    display = collapse(display)
    addr_spec = addr_spec.strip()
    if addr_spec in ("", "<>") or ("@" not in addr_spec and f"<{addr_spec}>" not in source):
        return display or addr_spec.strip("<>"), ""
    return display, collapse(addr_spec).lower()


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(collapse(value))
        if parsed.tzinfo is None:  # "-0000": zone unknown, RFC 5322 says read as UTC
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, OverflowError, ...
        return None


def received_at(
    headers: dict[str, list[str]], fallback: datetime | None, warnings: Warnings
) -> datetime:
    """The Date header; else the bottom-most Received hop's date; else ``fallback``; else 1970."""
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


def msg_ids(value: str | None) -> list[str]:
    """The ``<id>`` values of a Message-ID, In-Reply-To or References header."""
    if not value:
        return []
    found = [m.strip() for m in _ANGLE_ID.findall(value)]
    return [m for m in found if m] or value.split()

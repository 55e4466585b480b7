"""Decoding mail text whose charset labels are missing, unknown or lying.

The shared bottom layer of the mail parser: headers (``shared.mail.headers``),
bodies (``shared.mail.parse``) and HTML (``shared.mail.htmltext``) all decode and
clean text through here. Nothing in it raises on bad input; what could not be
decoded cleanly is decoded as well as possible and described in a
``Warnings`` list, which is why that list lives here too.
"""

from __future__ import annotations

import codecs
import logging
import re

log = logging.getLogger(__name__)

MAX_WARNINGS = 50

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
_SURROGATE = re.compile("[\ud800-\udfff]")


class Warnings(list[str]):
    """A bounded, de-duplicated warning list: one broken message must not flood the log."""

    def add(self, text: str) -> None:
        if len(self) < MAX_WARNINGS and text not in self:
            self.append(text)


def decode_bytes(data: bytes, charset: str | None, warnings: Warnings, what: str) -> str:
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


def collapse(text: str) -> str:
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
                text = decode_bytes(data, None, Warnings(), "header")
            except UnicodeError:
                text = text.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return " ".join(text.split())

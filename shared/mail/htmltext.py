"""Readable text of HTML mail bodies, for indexing and snippets."""

from __future__ import annotations

import logging
import re

from selectolax.lexbor import LexborHTMLParser

from shared.mail.charsets import collapse

log = logging.getLogger(__name__)

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
        return collapse(html)
    lines = _INVISIBLE.sub("", text).split("\n")
    return "\n".join([" ".join(line.split()) for line in lines if line and not line.isspace()])

"""Fields computed from an email document's own fields: category, from_me, attachment_types,
has_unsubscribe, unread.

Why one function over the document: the importer fills them when it builds a document and
``index migrate`` fills them for mail indexed before they existed, from the stored
``_source`` alone. Both call ``derived_fields``, so a reindexed email carries exactly what a
fresh import would (the one exception: an attachment without a file name gets its type
from its MIME type at ingest, which ``_source`` does not keep).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from shared.mail.categories import SENT_LABELS, MailSignals, category

DERIVED_FIELDS = ("category", "from_me", "attachment_types", "has_unsubscribe", "unread")

_EXTENSION = re.compile(r"\.([a-z0-9]{1,10})$")
# What providers put in labels (shared/sync/providers): Takeout's own "Opened"/"Unread",
# Gmail's UNREAD (mapped to "Unread"), IMAP's \Seen (mapped to "Opened"/"Unread").
_UNREAD = frozenset({"unread"})
_READ = frozenset({"opened", "read"})
# mimetypes' first guess for some types is odd (".jpe", ".htm"): the usual names instead.
_PREFERRED = {
    "image/jpeg": "jpg",
    "text/html": "html",
    "text/plain": "txt",
    "text/calendar": "ics",
    "message/rfc822": "eml",
    "application/octet-stream": "",
}


def attachment_types(names: Iterable[str], unnamed_mime_types: Iterable[str] = ()) -> list[str]:
    """Lowercase file extensions ("pdf", "docx") of the attachments, each once, in order.

    Named attachments give their extension; attachments without a file name (known only at
    ingest) give the usual extension of their MIME type."""
    found: dict[str, None] = {}
    for name in names:
        match = _EXTENSION.search(name.strip().lower())
        if match:
            found[match.group(1)] = None
    for mime in unnamed_mime_types:
        ext = _from_mime(mime)
        if ext:
            found[ext] = None
    return list(found)


def _from_mime(mime: str) -> str:
    mime = mime.strip().lower()
    if mime in _PREFERRED:
        return _PREFERRED[mime]
    guess = mimetypes.guess_extension(mime, strict=False)
    return guess.lstrip(".") if guess else ""


def unread(labels: Iterable[str]) -> bool | None:
    """True/False where the provider said (an "Unread" or "Opened" label); None otherwise."""
    lowered = {label.strip().lower() for label in labels}
    if lowered & _UNREAD:
        return True
    if lowered & _READ:
        return False
    return None


def is_from_me(from_address: str, labels: Iterable[str], owner_addresses: Collection[str]) -> bool:
    """The owner sent it: the sender is one of their addresses, or the provider filed it as
    sent (Gmail's SENT, Takeout's "Sent", an IMAP Sent folder), which also covers a Takeout
    of another address than the one the person signed in with."""
    owners = {address.strip().lower() for address in owner_addresses if address}
    if from_address.strip().lower() in owners and from_address:
        return True
    # An IMAP folder may come with its hierarchy ("INBOX.Sent", "Archive/Sent Items").
    return any(
        re.split(r"[./]", label.strip().lower())[-1] in SENT_LABELS
        or label.strip().lower() in SENT_LABELS
        for label in labels
    )


def derived_fields(
    doc: Mapping[str, Any],
    owner_addresses: Collection[str],
    unnamed_mime_types: Iterable[str] = (),
    *,
    from_me: bool | None = None,
) -> dict[str, Any]:
    """The derived fields of ``doc`` (its other fields as ``email_document`` stores them).
    ``unread`` is left out when the data does not say; ``from_me`` overrides the
    address check when the caller already knows."""
    labels = [str(label) for label in doc.get("labels") or []]
    mine = (
        from_me
        if from_me is not None
        else is_from_me(str(doc.get("from_address") or ""), labels, owner_addresses)
    )
    fields: dict[str, Any] = {
        "category": category(MailSignals.from_document(doc, from_me=mine)),
        "from_me": mine,
        "attachment_types": attachment_types(
            [str(n) for n in doc.get("attachment_names") or []], unnamed_mime_types
        ),
        "has_unsubscribe": bool(doc.get("list_unsubscribe")),
    }
    state = unread(labels)
    if state is not None:
        fields["unread"] = state
    return fields

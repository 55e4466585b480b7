"""Opening one email, for the person who owns it.

A citation in an answer names an email id; the browser opens it through
``GET /api/emails/<id>``. The owner check is part of the query itself (a
``term`` filter on ``owner_id`` next to the one on ``_id``), never a
comparison after the fetch, so a guessed or pasted id of somebody else's
email finds nothing, exactly like an id that does not exist.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from shared.core.settings import Settings

log = logging.getLogger(__name__)

# Document ids are "<owner id>:<message key>" (shared.index.writer.document_id); keys are
# hex digests or provider ids. Anything else cannot be an id we wrote.
_EMAIL_ID = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,256}$")
# The viewer shows text, not a whole mailbox dump: a pathological body is cut here.
MAX_BODY_CHARS = 100_000
OPEN_FIELDS = [
    "subject",
    "from_address",
    "from_name",
    "to",
    "cc",
    "received_at",
    "labels",
    "body",
    "has_attachment",
    "attachment_names",
]


@dataclass(frozen=True)
class OpenedEmail:
    id: str
    subject: str
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    received_at: str
    labels: list[str]
    body: str
    body_truncated: bool
    attachment_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["from"] = (
            f"{self.from_name} <{self.from_address}>"
            if self.from_name and self.from_address
            else self.from_name or self.from_address
        )
        return shown


def is_email_id(value: str) -> bool:
    return bool(_EMAIL_ID.match(value))


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def open_email(
    es: Elasticsearch, settings: Settings, owner_id: str, email_id: str
) -> OpenedEmail | None:
    """The email ``email_id`` if ``owner_id`` owns it, else None (same answer either way)."""
    if not owner_id:
        raise ValueError("opening an email needs its owner's id")
    if not is_email_id(email_id):
        return None
    response = es.search(
        index=settings.index_alias,
        query={
            "bool": {
                "filter": [
                    {"term": {"owner_id": owner_id}},
                    {"term": {"_id": email_id}},
                ]
            }
        },
        size=1,
        source_includes=OPEN_FIELDS,
    )
    hits = response["hits"]["hits"]
    if not hits:
        return None
    source = hits[0]["_source"]
    body = str(source.get("body") or "")
    return OpenedEmail(
        id=hits[0]["_id"],
        subject=str(source.get("subject") or ""),
        from_address=str(source.get("from_address") or ""),
        from_name=str(source.get("from_name") or ""),
        to=_strings(source.get("to")),
        cc=_strings(source.get("cc")),
        received_at=str(source.get("received_at") or ""),
        labels=_strings(source.get("labels")),
        body=body[:MAX_BODY_CHARS],
        body_truncated=len(body) > MAX_BODY_CHARS,
        attachment_names=_strings(source.get("attachment_names")),
    )

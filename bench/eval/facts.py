"""What the demo mailbox holds, known from its generator rather than read back from the index.

The generator decides every email's kind (interview, offer, recruiter outreach ...), date,
sender, attachments and thread; the eval's labels are computed from these facts, so a
question's expected answer never comes from the system being measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from devtools.demo_mailbox import _generate  # the generator's own (kind, date, raw) stream
from shared.index.writer import document_id
from shared.mail.parse import parse_email

# The generator's kinds, as the categories the assistant is meant to know.
CATEGORY_OF_KIND = {
    "interview": "interview",
    "offer": "offer",
    "rejection": "rejection",
    "application": "application",
    "recruiter": "recruiter_outreach",
    "receipt": "receipt",
    "newsletter": "newsletter",
    "personal": "personal",
}


@dataclass(frozen=True)
class MailFact:
    doc_id: str
    kind: str  # the generator's kind; "reply" for a message in a reply thread
    received_at: datetime
    from_name: str
    from_address: str
    subject: str
    attachment_names: tuple[str, ...]
    thread_id: str
    from_owner: bool
    has_unsubscribe: bool

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[-1]

    def within(self, days: int, now: datetime) -> bool:
        """Inside "the last ``days`` days" as the index filters it (``now-<days>d``)."""
        return self.received_at >= now - timedelta(days=days)


def mailbox_facts(
    user_id: str, owner_address: str, today: date, count: int, days: int, seed: int
) -> list[MailFact]:
    """One fact per generated email, in the generator's (date) order."""
    facts = []
    for kind, _ts, raw in _generate(owner_address, today, count, days, seed):
        parsed = parse_email(raw)
        thread = next(
            (line.split(b":", 1)[1].strip().decode() for line in raw.splitlines()
             if line.startswith(b"X-GM-THRID:")),
            "",
        )  # fmt: skip
        facts.append(
            MailFact(
                doc_id=document_id(user_id, parsed.message_key),
                kind=kind,
                received_at=parsed.received_at,
                from_name=parsed.from_name,
                from_address=parsed.from_address.lower(),
                subject=parsed.subject,
                attachment_names=tuple(parsed.attachment_names),
                thread_id=thread,
                from_owner=parsed.from_address.lower() == owner_address.lower(),
                has_unsubscribe=bool(parsed.list_unsubscribe),
            )
        )
    return facts

"""Deterministic generator for the demo account's mailbox.

Why this exists: ``make run`` imports the mbox written here as the demo user's mailbox, so a
fresh checkout has a realistic inbox to chat with ("interviews in the last 30 days", "which
recruiters wrote to me"), and the tests use it as a realistic fixture. It mimics a Google
Takeout export: ``X-Gmail-Labels`` / ``X-GM-THRID`` headers, reply threads with In-Reply-To and
References, attachments, HTML-only and multipart/alternative mail, RFC 2047 encoded names.

Output depends only on the arguments (seeded ``random.Random``, dates relative to ``today``):
the same arguments give byte-identical output. Dates fall in ``[today - days, today)`` counted
from 00:00 UTC, so nothing is dated later than the moment ``today`` begins.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.header import Header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from html import escape
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SEED = 20261123
_DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_FROM_ESCAPE = re.compile(rb"^(>*From )", re.MULTILINE)  # mboxrd, which shared.mail.mbox unescapes

Person = tuple[str, str]  # (display name, address)


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(";") if item.strip()]


def _table(text: str) -> list[tuple[str, ...]]:
    """``"a|b; c|d"`` -> ``[("a", "b"), ("c", "d")]``."""
    return [tuple(cell.strip() for cell in item.split("|")) for item in _list(text)]


COMPANIES = _table(
    "Northwind|northwind.example; Contoso|contoso.example; Fabrikam|fabrikam.example; "
    "Tailspin Systems|tailspin.example; Adatum|adatum.example; Litware|litware.example; "
    "Proseware|proseware.example; Wingtip Labs|wingtiplabs.example; Coho Data|coho.example; "
    "Woodgrove Bank|woodgrove.example; Müller & Söhne Digital|mueller-soehne.example"
)
AGENCIES = _table("TalentBridge|talentbridge.example; HireWell Partners|hirewell.example")
RECRUITERS = _table(
    "José Álvarez|jose.alvarez; Zoë Müller|zoe.mueller; 李伟|li.wei; Priya Raman|priya.raman; "
    "Marcus Johnson|marcus.johnson; Emily Chen|emily.chen; Chioma Okafor|chioma.okafor; "
    "Łukasz Nowak|lukasz.nowak; Anaïs Dubois|anais.dubois; Tom Becker|tom.becker"
)
FRIENDS = _table(
    "Sam Patel|sam.patel@example.org; Mia Svensson|mia.svensson@example.net; "
    "Björn Åkesson|bjorn@example.org; Nadia Haddad|nadia.h@example.net; "
    "Diego Hernández|diego.hdz@example.org; Linda Carter|linda.c@example.com; "
    "陈静|chen.jing@example.net"
)
POOLS = {  # one of each is drawn for every job-related mail
    "role": _list(
        "Senior Backend Engineer; Staff Software Engineer; Platform Engineer; Data Engineer; "
        "Site Reliability Engineer; Engineering Manager; Python Developer; Search Engineer"
    ),
    "mission": _list("scale their payments platform; rebuild search; ship a real-time pipeline"),
    "location": _list("Remote (EU); Hybrid — Berlin; Remote (US); Copenhagen; Zürich (hybrid)"),
    "comp": _list("€85k–€105k + equity; $170k–$200k base + bonus; £90k–£110k; DKK 750k–900k"),
    "stack": _list("Python, PostgreSQL, Kafka; Go, Kubernetes, gRPC; Python, Elasticsearch"),
    "stage": _list("45-minute technical interview; system design interview; first-round call"),
    "title": _list("Technical Recruiter; Senior Talent Partner; Head of Talent"),
}
JOB_MAIL = {  # kind: (label choices, subject choices, body), formatted with _job()'s context
    "recruiter": (
        "Inbox; Inbox,Category Promotions",
        "{role} opportunity at {company}; {company} is hiring: {role}; "
        "Quick question about your next move, {me}; Exploring a {role} role at {company}?",
        "I'm {name}, {title} at {org}. Your backend work stood out, and {company} is hiring a "
        "{role} to {mission}.\n\n- Location: {location}\n- Compensation: {comp}\n- Stack: {stack}"
        "\n\nWould you be open to a 20-minute call this week?\n\nBest,\n{name}\n{title}, {org}",
    ),
    "application": (
        "Inbox,Category Updates",
        "Thank you for applying to {company}; Application received: {role}; "
        "We received your application for {role} at {company}",
        "Thanks for applying for the {role} position at {company}. We review every application "
        "and will be in touch within two weeks.\n\nApplication ID: {ref}\n\n— The {company} Team",
    ),
    "interview": (
        "Inbox,Important,Category Updates; Inbox,Important",
        "Interview invitation: {role} at {company}; Invitation: {role} interview on {when} (UTC); "
        "Schedule your technical interview with {company}; Next steps: interview for {role}",
        "Thank you for your interest in the {role} role at {company}! We'd like to invite you to "
        "a {stage} with {interviewer}.\n\nWhen: {when} (UTC)\nWhere: https://meet.{domain}/{ref}"
        "\n\nPlease reply to confirm, or pick another slot: https://{domain}/schedule/{token}"
        "\n\nBest regards,\n{name}\nRecruiting Coordinator, {company}",
    ),
    "offer": (
        "Inbox,Important,Starred",
        "Offer letter — {role} at {company}",
        "Congratulations! We're thrilled to offer you the {role} position at {company}. Base "
        "compensation: {comp}. Your offer letter is attached, please sign by {deadline}.\n\n"
        "Warmly,\n{name}",
    ),
    "rejection": (
        "Inbox,Category Updates",
        "Update on your application to {company}; Update on your application for {role}",
        "Thank you for your time and interest in the {role} role. After careful consideration "
        "we've decided to move forward with other candidates.\n\nKind regards,\n{company} Recruiting",
    ),
}
NEWSLETTERS = _table(
    "The Backend Weekly|hello@backendweekly.example|Zero-downtime migrations/Slow Celery tasks; "
    "Python Digest|digest@pydigest.example|What's new in Python 3.14/asyncio pitfalls; "
    "Distributed Notes|notes@distributed.example|Raft in plain words/Relevance tuning 101; "
    "Remote Jobs Roundup|jobs@remoteroundup.example|42 new remote backend roles/Salary bands; "
    "Ærøskøbing Café|news@aeroe-cafe.example|Vintermenu og æbleskiver/Live jazz på fredag; "
    "Fabrikam Deals|deals@fabrikam.example|Weekend sale: 30% off headphones/Members-only prices"
)
VENDORS = _table(
    "Contoso Books|orders@contosobooks.example|$|Designing Data-Intensive Applications; "
    "Fabrikam Electronics|no-reply@fabrikam.example|$|USB-C hub, 7-port; "
    "Tailspin Rides|receipts@tailspin.example|€|Ride to Central Station; "
    "Ærøskøbing Café|kvittering@aeroe-cafe.example|kr|Flat white ×2, kanelsnegl; "
    "Litware Cloud|billing@litware.example|$|Pro plan — monthly; "
    "Müller Bäckerei|bestellung@mueller-baeckerei.example|€|Sourdough loaf"
)
PERSONAL = _table(
    "Dinner on Friday?|Want to grab dinner on Friday? That new ramen place finally opened.; "
    "Hike this weekend|From what I remember, the trail starts near the old mill. Meet at 8?; "
    "Photos from Saturday|Here are a couple of photos from Saturday. Good times!; "
    "Moving help 📦|We're moving on the 14th. Could you help for a few hours?; "
    "Birthday plans for Zoë|Thinking of a small surprise party. Ideas welcome!; "
    "Smørrebrød at Ærøskøbing Café|Lunch there next week? Their smørrebrød is great."
)
REPLIES_OWNER = _list(
    "Sounds good to me!; Sorry for the late reply — crazy week. Count me in.; "
    "Thanks for reaching out! Happy to chat, Tuesday or Thursday afternoon?; "
    "Thanks, that time works for me. Looking forward to it."
)
REPLIES_OTHER = _list(
    "Perfect, see you then.; Great — I'll send a calendar invite shortly.; "
    "Let me check and get back to you tomorrow.; From my side all good. Talk soon!"
)
WEIGHTS: dict[str, float] = {"newsletter": 30, "receipt": 15, "personal": 10, "reply": 14}
WEIGHTS |= {"recruiter": 11, "application": 6, "interview": 3, "rejection": 4, "offer": 0.4}


class _Registry(HeaderRegistry):
    """HeaderRegistry that builds each header class once (the stdlib rebuilds it per lookup)
    and reuses parsed Content-* headers: a handful of values (those without per-message
    boundaries or file names) are parsed thousands of times. Header objects are immutable,
    so sharing them between messages is safe."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, Any] = {}
        self._parsed: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._classes:
            self._classes[name] = super().__getitem__(name)
        return self._classes[name]

    def __call__(self, name: str, value: Any) -> Any:
        key = (name, value) if isinstance(value, str) and name.startswith("Content-") else None
        if key is None or "boundary" in value or "filename" in value:
            return super().__call__(name, value)
        if key not in self._parsed:
            self._parsed[key] = super().__call__(name, value)
        return self._parsed[key]


class _Policy(EmailPolicy):
    """Store ASCII header values verbatim, folded at spaces, as parsed mail keeps them:
    parsing every assigned header was most of the run time, and the stdlib folder moves a
    value that fits on one continuation line there ("Subject:\\n text"), which parses back
    with a leading space. Non-ASCII text is RFC 2047 encoded by ``_encode`` beforehand."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if not isinstance(value, str) or not value.isascii() or name.startswith("Content-"):
            return super().header_store_parse(name, value)
        if "\n" in value:  # already folded by email.header
            return name, value
        width = self.max_line_length or 78
        lines, room = [""], width - len(name) - 2
        for word in value.split(" "):
            if lines[-1] and len(lines[-1]) + 1 + len(word) > room:
                lines.append(word)
                room = width - 1
            else:
                lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
        return name, "\n ".join(lines)


_POLICY = _Policy(cte_type="7bit", linesep="\n", header_factory=_Registry())


@dataclass
class _Mail:
    sender: Person
    to: Person
    subject: str
    text: str | None
    html: str | None = None
    labels: list[str] = field(default_factory=lambda: ["Inbox"])
    attachments: list[tuple[bytes, str, str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    replyable: bool = False


@dataclass
class _Thread:
    thrid: str
    ids: list[str]  # Message-IDs, oldest first
    first: _Mail
    last: _Mail
    last_ts: datetime


def _person(row: tuple[str, ...]) -> Person:
    return row[0], row[1]


def _encode(name: str, text: str) -> str:
    """RFC 2047 encoded-words (utf-8, folded at 76 columns) for non-ASCII header text."""
    return text if text.isascii() else Header(text, "utf-8", header_name=name).encode("\n")


def _seen(rng: random.Random, choices: str) -> list[str]:
    return [*rng.choice(_list(choices)).split(","), "Opened" if rng.random() < 0.7 else "Unread"]


def _when(dt: datetime, sep: str = "") -> str:
    return f"{_DAYS[dt.weekday()]}, {_MONTHS[dt.month - 1]} {dt.day}, {dt.year}{sep} {dt:%H:%M}"


def _html(title: str, text: str, link: str) -> str:
    paras = "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    title = escape(title)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f'<body style="font-family:Arial,sans-serif"><table width="600" align="center"><tr>'
        f'<td><h2>{title}</h2>{paras}<p><a href="{link}">View in browser</a></p>'
        f"</td></tr></table></body></html>"
    )


def _pdf(title: str) -> bytes:
    stream = f"BT /F1 14 Tf 72 720 Td ({title.encode('ascii', 'replace').decode()}) Tj ET"
    return (
        f"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        f"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R"
        f"/MediaBox[0 0 612 792]/Contents 4 0 R>>endobj\n4 0 obj<</Length {len(stream)}>>"
        f"stream\n{stream}\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    ).encode()


def _png(rng: random.Random, size: int = 10) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    pixels = zlib.compress(b"".join(b"\x00" + rng.randbytes(size * 3) for _ in range(size)))
    head = chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _ics(uid: int, summary: str, start: datetime, organizer: Person, owner: Person) -> bytes:
    end, fmt = start + timedelta(minutes=45), "%Y%m%dT%H%M%SZ"
    return (
        f"BEGIN:VCALENDAR\r\nPRODID:-//Mailchat Demo//EN\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid:016x}@calendar.example\r\nDTSTAMP:{start:{fmt}}\r\n"
        f"DTSTART:{start:{fmt}}\r\nDTEND:{end:{fmt}}\r\nSUMMARY:{summary}\r\n"
        f"ORGANIZER;CN={organizer[0]}:mailto:{organizer[1]}\r\n"
        f"ATTENDEE;CN={owner[0]};RSVP=TRUE:mailto:{owner[1]}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def _job(kind: str, rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    """Recruiter outreach, application confirmations, interviews, offers and rejections."""
    (company, domain), (name, local) = rng.choice(COMPANIES), rng.choice(RECRUITERS)
    agency = kind == "recruiter" and rng.random() < 0.35
    org, org_domain = rng.choice(AGENCIES) if agency else (company, domain)
    day = ts.date() + timedelta(days=rng.randint(2, 9))
    day += timedelta(days=7 - day.weekday() if day.weekday() >= 5 else 0)  # weekdays only
    start = datetime.combine(day, time(rng.choice((9, 10, 11, 14, 15, 16)), rng.choice((0, 30))))
    start = start.replace(tzinfo=UTC)
    ctx = {key: rng.choice(pool) for key, pool in POOLS.items()}
    ctx |= {"me": owner[0].split()[0], "company": company, "domain": domain, "name": name}
    ctx |= {"org": org, "when": _when(start), "interviewer": rng.choice(FRIENDS)[0]}
    ctx |= {"ref": f"{rng.getrandbits(32):08x}", "token": f"{rng.getrandbits(40):010x}"}
    ctx["deadline"] = f"{ts.date() + timedelta(days=7):%Y-%m-%d}"
    labels, subjects, body = JOB_MAIL[kind]
    subject = rng.choice(_list(subjects)).format(**ctx)
    text = f"Hi {ctx['me']},\n\n{body.format(**ctx)}\n"
    senders = {"application": (f"{company} Careers", f"no-reply@careers.{domain}")}
    senders["rejection"] = (f"{company} Recruiting", f"jobs@{domain}")
    sender = senders.get(kind, (name, f"{local}@{org_domain}"))
    mail = _Mail(sender, owner, subject, text, labels=_seen(rng, labels))
    mail.replyable = kind in ("recruiter", "interview", "offer") and rng.random() < 0.5
    if kind == "recruiter" and rng.random() < 0.3:  # some recruiting tools send HTML only
        mail.text, mail.html = None, _html(subject, text, f"https://{org_domain}/jobs")
    elif rng.random() < 0.35:
        mail.html = _html(subject, text, f"https://{domain}/careers")
    if kind == "interview" and rng.random() < 0.5:
        ics = _ics(rng.getrandbits(64), f"{company} interview: {ctx['role']}", start, sender, owner)
        mail.attachments.append((ics, "text", "calendar", "invite.ics"))
    if kind == "offer":
        pdf = _pdf(f"Offer letter - {ctx['role']} at {company}")
        mail.attachments.append((pdf, "application", "pdf", f"Offer_{company.split()[0]}.pdf"))
    return mail


def _receipt(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    vendor, addr, cur, item = rng.choice(VENDORS)
    amount = rng.randrange(299, 25999) / 100
    order = f"{rng.randrange(100, 999)}-{rng.randrange(10**6, 10**7)}"
    price = f"{amount:.2f} kr".replace(".", ",") if cur == "kr" else f"{cur}{amount:,.2f}"
    subject = rng.choice(
        [f"Your receipt from {vendor}", f"Order #{order} confirmed — {vendor}",
         f"Your {vendor} order #{order} has shipped"]
    )  # fmt: skip
    text = (
        f"Hi {owner[0].split()[0]},\n\nThanks for your purchase.\n\nOrder: #{order}\nItem: {item}"
        f"\nTotal: {price}\nPaid with Visa ending in {rng.randrange(1000, 9999)}\n\n"
        f"Questions? Just reply to this email.\n{vendor}\n"
    )
    html = _html(subject, text, f"https://{addr.split('@')[1]}/orders/{order}")
    labels = _seen(rng, "Inbox,Category Updates; Category Purchases")
    mail = _Mail((vendor, addr), owner, subject, text, html, labels)
    if rng.random() < 0.25:
        invoice = _pdf(f"Invoice {order} - total {price}")
        mail.attachments.append((invoice, "application", "pdf", f"invoice-{order}.pdf"))
    return mail


def _newsletter(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    name, addr, picks = rng.choice(NEWSLETTERS)
    domain, token, headlines = addr.split("@")[1], f"{rng.getrandbits(48):012x}", picks.split("/")
    subject = f"{name} #{ts.toordinal() // 7 % 500}: {rng.choice(headlines)}"
    links = "\n\n".join(f"* {h}\n  https://{domain}/p/{rng.getrandbits(24):06x}" for h in headlines)
    text = (
        f"From the editor: this week's picks for {owner[0]}.\n\n{links}\n\n"
        f"You are receiving this because you subscribed to {name}.\n"
    )
    html = _html(subject, text, f"https://{domain}/web")
    labels = _seen(rng, "Inbox,Category Updates; Category Promotions; Inbox,Category Promotions")
    mail = _Mail((name, addr), owner, subject, text, html, labels)
    unsubscribe = f"<mailto:unsubscribe+{token}@{domain}>, <https://{domain}/u/{token}>"
    mail.headers += [
        ("List-Id", formataddr((name, f"{domain.split('.')[0]}.list.{domain}"))),
        ("List-Unsubscribe", unsubscribe),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
    ]
    if rng.random() < 0.5:
        mail.text = None  # HTML-only, as many bulk senders do
    return mail


def _personal(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    friend, (subject, body) = _person(rng.choice(FRIENDS)), rng.choice(PERSONAL)
    text = f"Hi {owner[0].split()[0]},\n\n{body}\n\nCheers,\n{friend[0].split()[0]}\n"
    labels = _seen(rng, "Inbox,Important; Inbox")
    mail = _Mail(friend, owner, subject, text, labels=labels, replyable=True)
    if subject.startswith("Photos"):
        for _ in range(rng.randint(1, 2)):
            name = f"IMG_{rng.randrange(1000, 9999)}.png"
            mail.attachments.append((_png(rng), "image", "png", name))
    return mail


def _reply(rng: random.Random, owner: Person, thread: _Thread) -> _Mail:
    other, last = thread.first.sender, thread.last
    from_owner = last.sender != owner
    sender, to = (owner, other) if from_owner else (other, owner)
    quoted = "\n".join(f"> {line}" if line else ">" for line in (last.text or "").splitlines())
    new = rng.choice(REPLIES_OWNER if from_owner else REPLIES_OTHER)
    text = (
        f"{new}\n\n{sender[0].split()[0]}\n\nOn {_when(thread.last_ts, ' at')} "
        f"{last.sender[0]} <{last.sender[1]}> wrote:\n{quoted}\n"
    )
    labels = ["Sent"] if from_owner else _seen(rng, "Inbox,Important")
    return _Mail(sender, to, f"Re: {thread.first.subject}", text, labels=labels)


_BUILDERS: dict[str, Callable[[random.Random, Person, datetime], _Mail]] = {
    kind: functools.partial(_job, kind) for kind in JOB_MAIL
}
_BUILDERS |= {"receipt": _receipt, "newsletter": _newsletter, "personal": _personal}


def _plan(rng: random.Random, today: date, count: int, days: int) -> list[tuple[datetime, str]]:
    """(timestamp, kind) slots, oldest first. Reserves interview and recruiter mail inside the
    last 29 days (inside a 30-day window from any time today) and interviews 31+ days ago."""
    end, span, recent = datetime.combine(today, time(), UTC), days * 86400, min(days, 29) * 86400

    def at(lo: int, hi: int) -> datetime:
        return end - timedelta(seconds=rng.randrange(lo, hi) + 1)

    def share(n: int) -> int:
        return max(1, round(n * count / 2000))

    reserved = [(at(0, recent), "interview") for _ in range(share(18))]
    reserved += [(at(0, recent), "recruiter") for _ in range(share(25))]
    if days > 31:
        reserved += [(at(31 * 86400, span), "interview") for _ in range(share(8))]
    reserved = reserved[:count]
    kinds = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=count - len(reserved))
    return sorted(reserved + [(at(0, span), kind) for kind in kinds], key=lambda slot: slot[0])


def _render(mail: _Mail, ts: datetime, msgid: str, thrid: str, refs: list[str], tag: str) -> bytes:
    msg = EmailMessage(policy=_POLICY)
    msg["X-GM-THRID"] = thrid
    msg["X-Gmail-Labels"] = ",".join(mail.labels)
    if "Sent" not in mail.labels:
        msg["Delivered-To"] = mail.to[1]
    msg["Date"] = format_datetime(ts)
    msg["Message-ID"] = msgid
    msg["Subject"] = _encode("Subject", mail.subject)
    msg["From"], msg["To"] = formataddr(mail.sender), formataddr(mail.to)
    if refs:
        msg["In-Reply-To"], msg["References"] = refs[-1], " ".join(refs)
    for name, value in mail.headers:
        msg[name] = value
    if mail.text is None:
        msg.set_content(mail.html or "", subtype="html")
    else:
        msg.set_content(mail.text)
        if mail.html:
            msg.add_alternative(mail.html, subtype="html")
    for data, maintype, subtype, filename in mail.attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    # Fixed boundaries: the generator would otherwise draw them from the global RNG.
    for k, part in enumerate([p for p in msg.walk() if p.is_multipart()]):
        part.set_boundary(f"===============demo{tag}{k}==")
    return msg.as_bytes()


def _generate(
    owner_address: str, today: date, count: int, days: int, seed: int
) -> Iterator[tuple[str, datetime, bytes]]:
    """(kind, date, raw message) triples, oldest first; ``kind`` is for tests and logs."""
    if count < 0 or days < 1:
        raise ValueError("count must be >= 0 and days >= 1")
    rng = random.Random(seed)
    owner: Person = (owner_address.split("@")[0].replace(".", " ").title(), owner_address)
    threads: list[_Thread] = []
    for index, (ts, kind) in enumerate(_plan(rng, today, count, days)):
        live = [t for t in threads[-15:] if len(t.ids) < 6] if kind == "reply" else []
        thread = rng.choice(live) if live else None
        if thread is None and kind == "reply":
            kind = "personal"
        mail = _reply(rng, owner, thread) if thread else _BUILDERS[kind](rng, owner, ts)
        msgid = f"<demo-{index:06d}.{rng.getrandbits(24):06x}@mail.example.com>"
        refs = thread.ids[-10:] if thread else []
        thrid = thread.thrid if thread else str(1_700_000_000_000_000_000 + rng.getrandbits(56))
        raw = _render(mail, ts, msgid, thrid, refs, f"{index:06d}{rng.getrandbits(32):08x}")
        if thread:
            thread.ids.append(msgid)
            thread.last, thread.last_ts = mail, ts
        elif mail.replyable:
            threads.append(_Thread(thrid, [msgid], mail, mail, ts))
        yield kind, ts, raw


def generate_messages(
    *, owner_address: str, today: date, count: int = 2000, days: int = 120, seed: int = DEFAULT_SEED
) -> Iterator[bytes]:
    """Yield raw RFC 5322 messages (bytes, LF line endings), oldest first."""
    for _kind, _ts, raw in _generate(owner_address, today, count, days, seed):
        yield raw


def write_mbox(
    path: Path,
    *,
    owner_address: str,
    today: date,
    count: int = 2000,
    days: int = 120,
    seed: int = DEFAULT_SEED,
) -> int:
    """Stream an mbox (mboxrd ``>From`` escaping) to ``path`` through a temp file and an
    atomic rename, so a crash never leaves half a file. Returns the messages written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for _kind, ts, raw in _generate(owner_address, today, count, days, seed):
                gmail_id = 1_780_000_000_000_000_000 + written
                out.write(f"From {gmail_id}@xxx {ts.ctime()}\n".encode())
                body = _FROM_ESCAPE.sub(rb">\1", raw)
                out.write(body if body.endswith(b"\n") else body + b"\n")
                out.write(b"\n")
                written += 1
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; this is an ordinary data file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %d demo messages to %s", written, path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo_mailbox", description=__doc__)
    parser.add_argument("out", type=Path, help="mbox file to write")
    parser.add_argument("--owner", required=True, help="mailbox owner address")
    parser.add_argument("--count", type=int, default=2000, help="messages (default 2000)")
    parser.add_argument("--days", type=int, default=120, help="days covered (default 120)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--today", type=date.fromisoformat, help="YYYY-MM-DD (default: UTC today)")
    args = parser.parse_args(argv)
    today = args.today or datetime.now(UTC).date()
    kwargs = {"count": args.count, "days": args.days, "seed": args.seed}
    n = write_mbox(args.out, owner_address=args.owner, today=today, **kwargs)
    print(f"wrote {n} messages to {args.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())

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
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SEED = 20261123
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FROM_ESCAPE = re.compile(rb"^(>*From )", re.MULTILINE)  # mboxrd, what shared.mbox unescapes

Person = tuple[str, str]  # (display name, address)


def _rows(block: str) -> list[tuple[str, ...]]:
    """A ``|``-separated table, one row per non-blank line."""
    return [tuple(c.strip() for c in line.split("|")) for line in block.strip().splitlines()]


COMPANIES = _rows("""
Northwind | northwind.example
Contoso | contoso.example
Fabrikam | fabrikam.example
Tailspin Systems | tailspin.example
Adatum | adatum.example
Litware | litware.example
Proseware | proseware.example
Wingtip Labs | wingtiplabs.example
Woodgrove Bank | woodgrove.example
Coho Data | coho.example
Müller & Söhne Digital | mueller-soehne.example
Lucerne Analytics | lucerne.example
""")
AGENCIES = _rows("TalentBridge | talentbridge.example\nHireWell Partners | hirewell.example")
RECRUITERS = _rows("""
José Álvarez | jose.alvarez
Zoë Müller | zoe.mueller
李伟 | li.wei
Priya Raman | priya.raman
Marcus Johnson | marcus.johnson
Emily Chen | emily.chen
Chioma Okafor | chioma.okafor
Łukasz Nowak | lukasz.nowak
Anaïs Dubois | anais.dubois
Tom Becker | tom.becker
Sofia Rossi | sofia.rossi
Hiroshi Tanaka | hiroshi.tanaka
""")
FRIENDS = _rows("""
Sam Patel | sam.patel@example.org
Mia Svensson | mia.svensson@example.net
Björn Åkesson | bjorn@example.org
Nadia Haddad | nadia.h@example.net
Diego Hernández | diego.hdz@example.org
Linda Carter | linda.c@example.com
陈静 | chen.jing@example.net
""")
ROLES = [r[0] for r in _rows("""
Senior Backend Engineer
Staff Software Engineer
Platform Engineer
Site Reliability Engineer
Data Engineer
Engineering Manager
Python Developer
Machine Learning Engineer
Full-Stack Engineer
Search Engineer
""")]
MISSIONS = "scale their payments platform|rebuild search|ship a real-time data pipeline".split("|")
LOCATIONS = "Remote (EU)|Hybrid — Berlin|Remote (US)|Copenhagen or remote|Zürich (hybrid)".split("|")
COMPS = "€85k–€105k + equity|$170k–$200k base + bonus|£90k–£110k|DKK 750k–900k".split("|")
STACKS = "Python, PostgreSQL, Kafka|Go, Kubernetes, gRPC|Python, Elasticsearch, Celery".split("|")
STAGES = "45-minute technical interview|system design interview|first-round video call".split("|")
NEWSLETTERS = _rows("""
The Backend Weekly | hello@backendweekly.example | Zero-downtime migrations; Slow Celery tasks
Python Digest | digest@pydigest.example | What's new in Python 3.14; asyncio pitfalls
Distributed Notes | notes@distributed.example | Raft in plain words; Relevance tuning 101
Remote Jobs Roundup | jobs@remoteroundup.example | 42 new remote backend roles; Salary bands
Ærøskøbing Café | news@aeroe-cafe.example | Vintermenu og æbleskiver; Live jazz på fredag
Fabrikam Deals | deals@fabrikam.example | Weekend sale: 30% off headphones; Members-only prices
""")
VENDORS = _rows("""
Contoso Books | orders@contosobooks.example | $ | Designing Data-Intensive Applications
Fabrikam Electronics | no-reply@fabrikam.example | $ | USB-C hub, 7-port
Tailspin Rides | receipts@tailspin.example | € | Ride to Central Station
Ærøskøbing Café | kvittering@aeroe-cafe.example | kr | Flat white ×2, kanelsnegl
Litware Cloud | billing@litware.example | $ | Pro plan — monthly
Müller Bäckerei | bestellung@mueller-baeckerei.example | € | Sourdough loaf
""")
NOTICES = _rows("""
Litware Security | security@litware.example | Security alert: new sign-in | A new sign-in \
from Firefox on Linux. If this was you, no action is needed.
Woodgrove Bank | statements@woodgrove.example | Your monthly statement is ready | Your \
statement is available in online banking.
Contoso CI | ci@builds.example | [mailchat] CI failed on main | Job 'tests' failed after 3m12s.
Dr. Weiß Dental | praxis@weiss-dental.example | Reminder: check-up next week | Reply to \
reschedule your dental check-up.
""")
PERSONAL = _rows("""
Dinner on Friday? | Want to grab dinner on Friday? That new ramen place finally opened.
Hike this weekend | From what I remember, the trail starts near the old mill. Meet at 8?
Photos from Saturday | Here are a couple of photos from Saturday. Good times!
Book recommendation | Just finished a great novel, I think you'd love it.
Moving help 📦 | We're moving on the 14th. Could you help for a few hours?
Birthday plans for Zoë | Thinking of a small surprise party. Ideas welcome!
Smørrebrød at Ærøskøbing Café | Lunch there next week? Their smørrebrød is great.
""")
REPLIES_OWNER = _rows("""
Sounds good to me!
Sorry for the late reply — crazy week. Count me in.
Thanks for reaching out! Happy to chat. Tuesday or Thursday afternoon?
Thanks, that time works for me. Looking forward to it.
""")
REPLIES_OTHER = _rows("""
Perfect, see you then.
Great — I'll send a calendar invite shortly.
Let me check and get back to you tomorrow.
From my side all good. Talk soon!
""")
WEIGHTS = {
    "newsletter": 27, "receipt": 11, "notification": 8, "recruiter": 11, "application": 6,
    "interview": 3, "rejection": 4, "offer": 0.4, "personal": 9, "reply": 13,
}  # fmt: skip


class _Registry(HeaderRegistry):
    """HeaderRegistry that builds each header class once (the stdlib rebuilds it per lookup)."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = super().__getitem__(name)
        return self._cache[name]


class _Policy(EmailPolicy):
    """Keep plain-ASCII header values verbatim, as parsed mail does: parsing every assigned
    header was most of the run time. Non-ASCII values (names, subjects) still go through the
    registry so they get RFC 2047 encoded; over-long values are refolded on output."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        plain = isinstance(value, str) and value.isascii() and len(value.splitlines()) <= 1
        if plain and name.lower() not in ("content-type", "content-disposition"):
            return name, value
        return super().header_store_parse(name, value)


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
    subject: str
    thrid: str
    other: Person
    ids: list[str]
    last_sender: Person
    last_text: str
    last_ts: datetime


def _address(person: Person) -> str | Address:
    return formataddr(person) if person[0].isascii() else Address(person[0], addr_spec=person[1])


def _first(name: str) -> str:
    return name.split()[0]


def _seen(rng: random.Random, labels: str) -> list[str]:
    return [*labels.split(","), "Opened" if rng.random() < 0.7 else "Unread"]


def _when(dt: datetime, sep: str = "") -> str:
    return f"{_DAYS[dt.weekday()]}, {_MONTHS[dt.month - 1]} {dt.day}, {dt.year}{sep} {dt:%H:%M}"


def _html(title: str, text: str, link: str) -> str:
    paras = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
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
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _ics(uid: int, summary: str, start: datetime, organizer: Person, owner: Person) -> bytes:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR", "PRODID:-//Mailchat Demo//EN", "VERSION:2.0", "METHOD:REQUEST",
        "BEGIN:VEVENT", f"UID:{uid:016x}@calendar.example", f"DTSTAMP:{start:{fmt}}",
        f"DTSTART:{start:{fmt}}", f"DTEND:{start + timedelta(minutes=45):{fmt}}",
        f"SUMMARY:{summary}", f"ORGANIZER;CN={organizer[0]}:mailto:{organizer[1]}",
        f"ATTENDEE;CN={owner[0]};RSVP=TRUE:mailto:{owner[1]}", "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode()


def _hiring(rng: random.Random) -> tuple[str, str, str, Person]:
    """A company, its domain, a role and one of its recruiters."""
    (company, domain), role, (name, local) = (
        rng.choice(COMPANIES), rng.choice(ROLES), rng.choice(RECRUITERS)
    )  # fmt: skip
    return company, domain, role, (name, f"{local}@{domain}")


def _recruiter(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    company, domain, role, (name, addr) = _hiring(rng)
    org, org_domain = rng.choice(AGENCIES) if rng.random() < 0.35 else (company, domain)
    title = rng.choice(["Technical Recruiter", "Senior Talent Partner", "Head of Talent"])
    subject = rng.choice([
        f"{role} opportunity at {company}", f"{company} is hiring: {role}",
        f"Quick question about your next move, {_first(owner[0])}",
        f"Exploring a {role} role at {company}?",
    ])  # fmt: skip
    text = (
        f"Hi {_first(owner[0])},\n\nI'm {name}, {title} at {org}. Your backend work stood out, "
        f"and {company} is hiring a {role} to {rng.choice(MISSIONS)}.\n\n"
        f"- Location: {rng.choice(LOCATIONS)}\n- Compensation: {rng.choice(COMPS)}\n"
        f"- Stack: {rng.choice(STACKS)}\n\nWould you be open to a 20-minute call this week?"
        f"\n\nBest,\n{name}\n{title}, {org}\n"
    )
    labels = _seen(rng, rng.choice(["Inbox", "Inbox,Category Promotions"]))
    sender = (name, addr.replace(domain, org_domain))
    mail = _Mail(sender, owner, subject, text, labels=labels, replyable=rng.random() < 0.4)
    if rng.random() < 0.3:  # some recruiting tools send HTML only
        mail.text, mail.html = None, _html(subject, text, f"https://{org_domain}/jobs")
    return mail


def _interview(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    company, domain, role, sender = _hiring(rng)
    day = ts.date() + timedelta(days=rng.randint(2, 9))
    day += timedelta(days=max(0, 7 - day.weekday()) if day.weekday() >= 5 else 0)
    start = datetime.combine(day, time(rng.choice([9, 10, 11, 13, 14, 15, 16]), rng.choice([0, 30])), UTC)
    subject = rng.choice([
        f"Interview invitation: {role} at {company}",
        f"Schedule your technical interview with {company}",
        f"Invitation: {role} interview @ {_when(start)} (UTC)",
        f"Next steps: interview for {role} at {company}",
    ])  # fmt: skip
    text = (
        f"Hi {_first(owner[0])},\n\nThank you for your interest in the {role} role at "
        f"{company}! We'd like to invite you to a {rng.choice(STAGES)} with "
        f"{rng.choice(FRIENDS)[0]}.\n\nWhen: {_when(start)} (UTC)\n"
        f"Where: https://meet.{domain}/{rng.getrandbits(32):08x}\n\nPlease reply to confirm, "
        f"or pick another slot: https://{domain}/schedule/{rng.getrandbits(40):010x}\n\n"
        f"Best regards,\n{sender[0]}\nRecruiting Coordinator, {company}\n"
    )
    labels = _seen(rng, rng.choice(["Inbox,Important,Category Updates", "Inbox,Important"]))
    mail = _Mail(sender, owner, subject, text, labels=labels, replyable=rng.random() < 0.5)
    if rng.random() < 0.3:
        mail.html = _html(subject, text, f"https://{domain}/careers")
    if rng.random() < 0.5:
        ics = _ics(rng.getrandbits(64), f"{company} interview: {role}", start, sender, owner)
        mail.attachments.append((ics, "text", "calendar", "invite.ics"))
    return mail


def _offer(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    company, domain, role, sender = _hiring(rng)
    subject = f"Offer letter — {role} at {company}"
    text = (
        f"Hi {_first(owner[0])},\n\nCongratulations! We're thrilled to offer you the {role} "
        f"position at {company}. Base compensation: {rng.choice(COMPS)}. Your offer letter is "
        f"attached; please sign by {ts.date() + timedelta(days=7):%Y-%m-%d}.\n\n"
        f"Warmly,\n{sender[0]}\n"
    )
    mail = _Mail(sender, owner, subject, text, labels=["Inbox", "Important", "Starred", "Opened"])
    pdf = _pdf(f"Offer letter - {role} at {company}")
    mail.attachments.append((pdf, "application", "pdf", f"Offer_Letter_{company.split()[0]}.pdf"))
    mail.replyable = True
    return mail


def _application(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    company, domain, role, _ = _hiring(rng)
    subject = rng.choice([
        f"Thank you for applying to {company}", f"Application received: {role}",
        f"We received your application for {role} at {company}",
    ])  # fmt: skip
    text = (
        f"Hi {_first(owner[0])},\n\nThanks for applying for the {role} position at {company}. "
        f"We review every application and will be in touch within two weeks.\n\n"
        f"Application ID: {rng.randrange(10**6, 10**7)}\n\n— The {company} Talent Team\n"
    )
    html = _html(subject, text, f"https://{domain}/careers") if rng.random() < 0.5 else None
    sender = (f"{company} Careers", f"no-reply@careers.{domain}")
    return _Mail(sender, owner, subject, text, html, _seen(rng, "Inbox,Category Updates"))


def _rejection(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    company, domain, role, _ = _hiring(rng)
    subject = rng.choice([
        f"Update on your application to {company}",
        f"Update on your application for {role}", f"Your {company} application",
    ])  # fmt: skip
    text = (
        f"Hi {_first(owner[0])},\n\nThank you for your time and interest in the {role} role. "
        f"After careful consideration we've decided to move forward with other candidates. "
        f"We'll keep your profile on file.\n\nKind regards,\nThe {company} Recruiting Team\n"
    )
    sender = (f"{company} Recruiting", f"jobs@{domain}")
    return _Mail(sender, owner, subject, text, labels=_seen(rng, "Inbox,Category Updates"))


def _receipt(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    vendor, addr, cur, item = rng.choice(VENDORS)
    amount, order = rng.randrange(299, 25999) / 100, f"{rng.randrange(100, 999)}-{rng.randrange(10**7)}"
    price = f"{amount:.2f} kr".replace(".", ",") if cur == "kr" else f"{cur}{amount:,.2f}"
    subject = rng.choice([
        f"Your receipt from {vendor}", f"Order #{order} confirmed — {vendor}",
        f"Your {vendor} order #{order} has shipped",
    ])  # fmt: skip
    text = (
        f"Hi {_first(owner[0])},\n\nThanks for your purchase.\n\nOrder: #{order}\nItem: {item}\n"
        f"Total: {price}\nPaid with Visa ending in {rng.randrange(1000, 9999)}\n\n"
        f"Questions? Just reply to this email.\n{vendor}\n"
    )
    html = _html(subject, text, f"https://{addr.split('@')[1]}/orders/{order}")
    labels = _seen(rng, rng.choice(["Inbox,Category Updates", "Category Purchases"]))
    mail = _Mail((vendor, addr), owner, subject, text, html, labels)
    if rng.random() < 0.25:
        invoice = _pdf(f"Invoice {order} - total {price}")
        mail.attachments.append((invoice, "application", "pdf", f"invoice-{order}.pdf"))
    return mail


def _newsletter(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    name, addr, picks = rng.choice(NEWSLETTERS)
    headlines = [h.strip() for h in picks.split(";")]
    domain, token = addr.split("@")[1], f"{rng.getrandbits(48):012x}"
    subject = f"{name} #{ts.toordinal() // 7 % 500}: {rng.choice(headlines)}"
    links = [f"* {h}\n  https://{domain}/p/{rng.getrandbits(24):06x}" for h in headlines]
    text = (
        f"From the editor: this week's picks for {owner[0]}.\n\n" + "\n\n".join(links)
        + f"\n\nYou are receiving this because you subscribed to {name}.\n"
    )  # fmt: skip
    html = _html(subject, text, f"https://{domain}/web")
    places = ["Inbox,Category Updates", "Category Promotions", "Inbox,Category Promotions"]
    mail = _Mail((name, addr), owner, subject, text, html, _seen(rng, rng.choice(places)))
    mail.headers += [
        ("List-Id", f"{name} <{domain.split('.')[0]}.list.{domain}>"),
        ("List-Unsubscribe", f"<mailto:unsubscribe+{token}@{domain}>, <https://{domain}/u/{token}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
    ]
    if rng.random() < 0.5:
        mail.text = None  # HTML-only, as many bulk senders do
    return mail


def _notification(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    name, addr, subject, text = rng.choice(NOTICES)
    body = f"Hi {_first(owner[0])},\n\n{text}\n"
    return _Mail((name, addr), owner, subject, body, labels=_seen(rng, "Inbox,Category Updates"))


def _personal(rng: random.Random, owner: Person, ts: datetime) -> _Mail:
    friend, (subject, body) = rng.choice(FRIENDS), rng.choice(PERSONAL)
    text = f"Hi {_first(owner[0])},\n\n{body}\n\nCheers,\n{_first(friend[0])}\n"
    labels = _seen(rng, rng.choice(["Inbox,Important", "Inbox"]))
    mail = _Mail((friend[0], friend[1]), owner, subject, text, labels=labels, replyable=True)
    if subject.startswith("Photos"):
        for _ in range(rng.randint(1, 2)):
            name = f"IMG_{rng.randrange(1000, 9999)}.png"
            mail.attachments.append((_png(rng), "image", "png", name))
    return mail


def _reply(rng: random.Random, owner: Person, thread: _Thread) -> _Mail:
    from_owner = thread.last_sender != owner
    sender, to = (owner, thread.other) if from_owner else (thread.other, owner)
    quoted = "\n".join(f"> {line}" if line else ">" for line in thread.last_text.splitlines())
    new = rng.choice(REPLIES_OWNER if from_owner else REPLIES_OTHER)[0]
    text = (
        f"{new}\n\n{_first(sender[0])}\n\nOn {_when(thread.last_ts, ' at')} "
        f"{thread.last_sender[0]} <{thread.last_sender[1]}> wrote:\n{quoted}\n"
    )
    labels = ["Sent"] if from_owner else _seen(rng, "Inbox,Important")
    subject = thread.subject if thread.subject.startswith("Re: ") else f"Re: {thread.subject}"
    return _Mail(sender, to, subject, text, labels=labels)


_BUILDERS: dict[str, Callable[[random.Random, Person, datetime], _Mail]] = {
    "recruiter": _recruiter, "application": _application, "interview": _interview,
    "offer": _offer, "rejection": _rejection, "receipt": _receipt, "newsletter": _newsletter,
    "notification": _notification, "personal": _personal,
}  # fmt: skip


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
    msg["Subject"] = mail.subject
    msg["From"], msg["To"] = _address(mail.sender), _address(mail.to)
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
            thread.last_sender, thread.last_text, thread.last_ts = mail.sender, mail.text or "", ts
        elif mail.replyable:
            threads.append(
                _Thread(mail.subject, thrid, mail.sender, [msgid], mail.sender, mail.text or "", ts)
            )
        yield kind, ts, raw


def generate_messages(
    *, owner_address: str, today: date, count: int = 2000, days: int = 120,
    seed: int = DEFAULT_SEED,
) -> Iterator[bytes]:  # fmt: skip
    """Yield raw RFC 5322 messages (bytes, LF line endings), oldest first."""
    for _kind, _ts, raw in _generate(owner_address, today, count, days, seed):
        yield raw


def write_mbox(
    path: Path, *, owner_address: str, today: date, count: int = 2000, days: int = 120,
    seed: int = DEFAULT_SEED,
) -> int:  # fmt: skip
    """Stream an mbox (mboxrd ``>From`` escaping) to ``path`` through a temp file and an
    atomic rename, so a crash never leaves half a file. Returns the messages written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for _kind, ts, raw in _generate(owner_address, today, count, days, seed):
                month, day = _MONTHS[ts.month - 1], _DAYS[ts.weekday()]
                stamp = f"{day} {month} {ts.day:02d} {ts:%H:%M:%S} +0000 {ts.year}"
                out.write(f"From {1_780_000_000_000_000_000 + written}@xxx {stamp}\n".encode())
                body = _FROM_ESCAPE.sub(rb">\1", raw)
                out.write(body if body.endswith(b"\n") else body + b"\n")
                out.write(b"\n")
                written += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %d demo messages to %s", written, path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.demo_mailbox", description="Write the demo mailbox as an mbox."
    )
    parser.add_argument("out", type=Path, help="mbox file to write")
    parser.add_argument("--owner", required=True, help="mailbox owner address")
    parser.add_argument("--count", type=int, default=2000, help="messages (default 2000)")
    parser.add_argument("--days", type=int, default=120, help="days covered (default 120)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--today", type=date.fromisoformat, help="YYYY-MM-DD (default: UTC today)")
    args = parser.parse_args(argv)
    today = args.today or datetime.now(UTC).date()
    n = write_mbox(
        args.out, owner_address=args.owner, today=today, count=args.count, days=args.days,
        seed=args.seed,
    )  # fmt: skip
    print(f"wrote {n} messages to {args.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())

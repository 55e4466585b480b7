"""Which kind of mail a message is: the ``category`` stored on every email document.

Why rules and not a model: the categories must be explainable ("why is this a
receipt?"), identical at ingest and in a reindex, and cheap enough for an import
of thousands of messages a second. So ``classify`` is a pure function over a small
``MailSignals`` built from the indexed document's own fields (never from anything
a reindex could not read back from ``_source``), and each outcome names the rule
that decided it (``Verdict.rule``), which the tests and the README list.

The rules, in order (the first that fires wins):

1. ``from_me``: mail the owner sent is ``other``: it is their own words, not an
   interview, receipt or newsletter that reached them.
2. Replies (``Re:``/``Fwd:``/``AW:``/``SV:`` subjects) are judged by their new text only:
   the subject belongs to the thread's first message and the quoted text
   (``> `` lines, from "On ... wrote:" on) to earlier ones, whose category is
   already on those messages (same ``thread_id``).
3. Hiring mail, by phrases a hiring process really sends: ``offer``, ``rejection``,
   ``interview``, ``application``, ``recruiter_outreach``, each in two strengths
   (see the patterns below: STRONG counts anywhere, WEAK only outside bulk mail and,
   where marked, next to a job word).
4. ``receipt``: order, payment and shipping phrases ("your receipt", "order #",
   "thanks for your purchase", "total:"), or an invoice/receipt attachment.
5. ``notification``: an automated sender (no-reply, notifications@, alerts@ ...)
   with account or alert wording (sign-in, password, verification code, security
   alert, reminder) and no unsubscribe link.
6. ``newsletter``: bulk mail: a List-Unsubscribe header (``has_unsubscribe``), or
   newsletter wording ("you are receiving this because you subscribed",
   "unsubscribe", "view in browser").
7. ``notification`` again for any other automated sender.
8. ``personal``: a person (not an automated or role address) starting a
   conversation with no rule above firing.
9. Otherwise ``other`` (stored as the string, so aggregations and filters see it).

Bulk mail (``has_unsubscribe``) needs stronger evidence in rules 3 and 4: a
newsletter headlined "How to ace your interview" or "Complete your order" is still
a newsletter. README "Categories and derived fields" lists every phrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

INTERVIEW: Final = "interview"
OFFER: Final = "offer"
REJECTION: Final = "rejection"
APPLICATION: Final = "application"
RECRUITER_OUTREACH: Final = "recruiter_outreach"
RECEIPT: Final = "receipt"
NEWSLETTER: Final = "newsletter"
PERSONAL: Final = "personal"
NOTIFICATION: Final = "notification"
OTHER: Final = "other"

CATEGORIES: Final = (
    INTERVIEW,
    OFFER,
    REJECTION,
    APPLICATION,
    RECRUITER_OUTREACH,
    RECEIPT,
    NEWSLETTER,
    PERSONAL,
    NOTIFICATION,
    OTHER,
)

# Only the start of the new text is read: what a message is about is said early, and a
# 1 MB body must not cost the importer more than a short one.
TEXT_CHARS = 6000

SENT_LABELS = frozenset({"sent", "sent mail", "sent items", "sent messages", "[gmail]/sent mail"})


@dataclass(frozen=True)
class MailSignals:
    """What the rules read: fields every email document stores (see ``from_document``)."""

    subject: str = ""
    from_address: str = ""
    from_name: str = ""
    body: str = ""
    to: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    has_unsubscribe: bool = False
    attachment_names: tuple[str, ...] = ()
    from_me: bool = False

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, from_me: bool | None = None) -> MailSignals:
        """Signals of a stored (or about to be stored) document, the same at ingest and reindex."""
        return cls(
            subject=str(doc.get("subject") or ""),
            from_address=str(doc.get("from_address") or ""),
            from_name=str(doc.get("from_name") or ""),
            body=str(doc.get("body") or doc.get("snippet") or ""),
            to=tuple(_strings(doc.get("to"))),
            labels=tuple(_strings(doc.get("labels"))),
            has_unsubscribe=bool(doc.get("list_unsubscribe") or doc.get("has_unsubscribe")),
            attachment_names=tuple(_strings(doc.get("attachment_names"))),
            from_me=bool(doc.get("from_me")) if from_me is None else from_me,
        )


@dataclass(frozen=True)
class Verdict:
    category: str
    rule: str  # which rule decided, for tests, debugging and the README


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return []


def _any(*patterns: str) -> re.Pattern[str]:
    """One alternation, matched against lowercased text (``classify`` lowercases once):
    about twice as fast as ``re.IGNORECASE`` on long bodies."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|vs|wg|tr|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_QUOTE_HEADER = re.compile(
    r"^(?:on\b.{0,300}\bwrote:|-{2,}\s*original message\s*-{2,}|-{2,}\s*forwarded message\s*-{2,}"
    r"|from:\s.+\n\s*sent:\s)",
    re.IGNORECASE | re.MULTILINE,
)

# Hiring rules come in two strengths. STRONG wording addresses the reader's own process
# ("we are pleased to offer you", "move forward with other candidates") and counts even in
# bulk mail; WEAK wording also appears in career newsletters, sales and shop mail ("job
# offer", "unfortunately, we", "invite you to a call") and counts only in mail without
# List-Unsubscribe, and (where marked) only next to a job word (``JOB_CONTEXT``).
JOB_CONTEXT = _any(
    r"\b(?:role|position|job|candidate|candidacy|hiring|recruit\w*|career|opening|vacancy)s?\b",
    r"\b(?:engineer|developer|manager|designer|analyst|scientist|architect)s?\b",
)
OFFER_STRONG = _any(
    r"\b(?:pleased|thrilled|delighted|happy|excited|glad) to (?:extend (?:you )?an offer|"
    r"offer you|make you an offer)\b",
    r"\bextend (?:you )?an offer\b",
    r"\byour offer letter\b",
    r"\boffer of employment\b",
)
OFFER_WEAK = _any(r"\boffer letter\b", r"\bjob offer\b", r"\bsign(?:ed)? (?:the |your )?offer\b")
REJECTION_STRONG = _any(
    r"\bmove forward with other candidates\b",
    r"\bpursue other candidates\b",
    r"\b(?:decided|chosen|chose) (?:not to|to not) (?:move forward|proceed|continue) with "
    r"your (?:application|candidacy)\b",
    r"\bnot (?:be )?(?:moving forward|progressing|proceeding) with your (?:application|candidacy)\b",
)
REJECTION_WEAK = _any(  # with JOB_CONTEXT
    r"\bregret to inform you\b",
    r"\bunfortunately,? (?:we|your application|after careful)\b",
    r"\b(?:position|role) has (?:now )?been filled\b",
    r"\bnot (?:be )?(?:selected|shortlisted) for\b",
    r"\b(?:decided|chosen|chose) (?:not to|to not) (?:move forward|proceed)\b",
)
INTERVIEW_STRONG = _any(
    r"\binvit\w* you (?:to|for) (?:an? |the |your )?(?:[\w-]+ ){0,4}"
    r"(?:interview|onsite|phone screen)s?\b",
    r"\binterview invitation\b",
    r"\bschedule (?:your |an |the )?(?:[\w-]+ ){0,2}interview\b",
    r"\binterview (?:is |has been )?(?:scheduled|confirmed)\b",
)
INTERVIEW_CALL = _any(  # with JOB_CONTEXT
    r"\binvit\w* you (?:to|for) (?:an? |the |your )?(?:[\w-]+ ){0,4}(?:call|chat|conversation)\b"
)
INTERVIEW_SUBJECT = _any(r"\binterview", r"\bonsite\b", r"\bphone screen\b")
APPLICATION_STRONG = _any(
    r"\bthanks? (?:you )?(?:so much )?for (?:your )?applying\b",
    r"\b(?:we(?:'ve| have)? )?received your application\b",
    r"\byour application (?:for|to) .{0,80}?(?:has been|was|is) (?:received|submitted)\b",
)
APPLICATION_WEAK = _any(  # with JOB_CONTEXT
    r"\bapplication (?:has been |was )?(?:received|submitted)\b",
    r"\bthank you for your application\b",
    r"\bwe review (?:every|all|each) applications?\b",
)
# Outreach: an opener a recruiter writes, plus a recruiter title or a role.
OUTREACH_STRONG = _any(
    r"\b(?:is|are) hiring\b",
    r"\b(?:your|the) (?:background|profile|experience|work) (?:stood out|caught my eye|caught our)",
    r"\byour next (?:move|role|career step)\b",
    r"\binterested in (?:exploring |hearing about )?(?:a|the|an) (?:[\w-]+ ){0,3}(?:role|position)\b",
    r"\bexploring an? (?:[\w-]+ ){0,4}(?:role|position)\b",
)
OUTREACH_WEAK = _any(  # with a recruiter title
    r"\bopportunit(?:y|ies)\b",
    r"\bopen to (?:a |an )?(?:[\w-]+ ){0,2}(?:call|chat|conversation)\b",
)
RECRUITER_TITLE = _any(
    r"\brecruit(?:er|ing|ment)\b",
    r"\btalent (?:partner|acquisition|lead|scout)\b",
    r"\bhead of (?:talent|people)\b",
    r"\bsourcer\b",
    r"\bheadhunter\b",
)
ROLE_WORD = _any(
    r"\b(?:engineer|developer|manager|architect|designer|analyst|scientist)\b",
    r"\b(?:role|position)\b",
)
RECEIPT_TEXT = _any(
    r"\breceipt\b",
    r"\border (?:#|no\.?|number)\s*\w",
    r"\border\b.{0,40}\b(?:confirmed|has shipped|is on its way|was delivered)\b",
    r"\bthanks? (?:you )?for (?:your )?(?:purchase|order)\b",
    r"\bpayment (?:received|confirmation|successful)\b",
    r"\bamount (?:paid|charged)\b",
    r"\bpaid with\b",
)
# Weaker wording that marketing mail uses too ("complete your order"): not for bulk mail.
RECEIPT_WEAK = _any(r"\binvoice\b", r"\byour (?:\w+ ){0,3}order\b", r"\btotal:")
RECEIPT_ATTACHMENT = _any(r"invoice", r"receipt", r"rechnung", r"faktura", r"kvittering")
NOTIFICATION_TEXT = _any(
    r"\bsign[- ]?in\b",
    r"\blog[- ]?in (?:attempt|from)\b",
    r"\bpassword\b",
    r"\bverification code\b",
    r"\b(?:one[- ]time|security) (?:code|alert|notice)\b",
    r"\bverify your (?:email|account)\b",
    r"\breminder\b",
    r"\byour account\b",
    r"\b(?:mentioned|assigned|invited) you\b",
    r"\bnew (?:comment|login|device)\b",
)
NEWSLETTER_TEXT = _any(
    r"\byou(?:'re| are) receiving this\b",
    r"\bunsubscribe\b",
    r"\bview (?:this email |it )?in (?:your |a )?browser\b",
    r"\bmanage (?:your )?(?:email )?(?:preferences|subscriptions?)\b",
)
# Local parts that machines, not people, send from.
AUTOMATED_LOCAL = re.compile(
    r"^(?:no-?reply|do-?not-?reply|donotreply|notifications?|notify|alerts?|mailer-daemon|"
    r"postmaster|bounces?|automated|system|updates?|news(?:letter)?|digest|info|hello|team|"
    r"support|billing|orders?|receipts?|noreply[\w.-]*|no-reply[\w.-]*)(?:[+.-].*)?$",
    re.IGNORECASE,
)


def new_text(body: str) -> str:
    """The part of a body its sender wrote now: quoted replies and forwards cut off."""
    text = body[: TEXT_CHARS * 2]
    cut = _QUOTE_HEADER.search(text)
    if cut:
        text = text[: cut.start()]
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    return "\n".join(lines)[:TEXT_CHARS]


def is_reply(subject: str) -> bool:
    return bool(REPLY_PREFIX.match(subject))


def is_automated(address: str) -> bool:
    """True for addresses machines send from (no-reply@, notifications@, ...)."""
    local = address.rsplit("@", 1)[0] if "@" in address else address
    return bool(AUTOMATED_LOCAL.match(local.strip()))


def classify(mail: MailSignals) -> Verdict:
    """The category of one message and the rule that decided it (module docstring)."""
    if mail.from_me:
        return Verdict(OTHER, "from_me")
    reply = is_reply(mail.subject)
    subject = "" if reply else mail.subject.lower()
    body = new_text(mail.body).lower()
    text = f"{subject}\n{body}"
    bulk = mail.has_unsubscribe
    automated = is_automated(mail.from_address)
    job = _job(subject, body, text, bulk, mail)
    if job is not None:
        return job
    if (
        RECEIPT_TEXT.search(text)
        or (not bulk and RECEIPT_WEAK.search(text))
        or any(RECEIPT_ATTACHMENT.search(name.lower()) for name in mail.attachment_names)
    ):
        return Verdict(RECEIPT, "receipt")
    if automated and not bulk and NOTIFICATION_TEXT.search(text):
        return Verdict(NOTIFICATION, "notification_text")
    if bulk:
        return Verdict(NEWSLETTER, "list_unsubscribe")
    if NEWSLETTER_TEXT.search(body):
        return Verdict(NEWSLETTER, "newsletter_text")
    if automated:
        return Verdict(NOTIFICATION, "automated_sender")
    if reply:
        return Verdict(OTHER, "reply")
    if mail.from_address:
        return Verdict(PERSONAL, "person")
    return Verdict(OTHER, "no_rule")


def _job(subject: str, body: str, text: str, bulk: bool, mail: MailSignals) -> Verdict | None:
    """Hiring mail: offer, rejection, interview, application, recruiter outreach."""
    loose = not bulk  # weak wording and subjects count only outside bulk mail
    job = loose and bool(JOB_CONTEXT.search(text))
    offer_file = any("offer" in name.lower() for name in mail.attachment_names)
    if OFFER_STRONG.search(body) or (loose and (OFFER_WEAK.search(text) or offer_file)):
        return Verdict(OFFER, "offer")
    if REJECTION_STRONG.search(body) or (job and REJECTION_WEAK.search(body)):
        return Verdict(REJECTION, "rejection")
    if INTERVIEW_STRONG.search(body) or (loose and INTERVIEW_SUBJECT.search(subject)):
        return Verdict(INTERVIEW, "interview")
    if job and INTERVIEW_CALL.search(body):
        return Verdict(INTERVIEW, "interview")
    applied = APPLICATION_STRONG.search(text) or (loose and APPLICATION_WEAK.search(text))
    if applied and JOB_CONTEXT.search(text):  # banks and visa offices take applications too
        return Verdict(APPLICATION, "application")
    if loose and (
        (OUTREACH_STRONG.search(text) and (RECRUITER_TITLE.search(text) or ROLE_WORD.search(text)))
        or (OUTREACH_WEAK.search(text) and RECRUITER_TITLE.search(text))
    ):
        return Verdict(RECRUITER_OUTREACH, "recruiter_outreach")
    return None


def category(mail: MailSignals) -> str:
    return classify(mail).category

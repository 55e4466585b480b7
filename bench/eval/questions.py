"""The labelled questions of ``make eval``, computed from the mailbox's facts.

Every question says what a correct answer must do: which emails it needs (scored as
recall@5 of the citations), which intent it is, the exact count when it asks "how
many", or that the honest answer is "nothing" (no citation at all). Phrasings vary,
some carry typos, and some are follow-ups that refine the previous question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bench.eval.facts import MailFact

KIND_WORDS = {  # kind: (plural noun, typo)
    "interview": ("interviews", "intervews"),
    "offer": ("job offers", "job ofers"),
    "rejection": ("rejections", "rejectoins"),
    "application": ("application confirmations", "aplication confirmations"),
    "recruiter": ("recruiter emails", "recruter emails"),
    "receipt": ("receipts", "reciepts"),
    "newsletter": ("newsletters", "newsleters"),
    "personal": ("personal emails from friends", "personal emails from freinds"),
}
WINDOWS = (7, 30, 60, 90)
PHRASINGS = (
    "{noun} in the last {days} days",
    "show me {noun} from the past {days} days",
    "any {noun} over the last {days} days?",
)
ABSENT_SENDERS = ("Globex", "Initech", "Umbrella Corp", "Hooli")
ABSENT_TOPICS = (
    "my flight to Tokyo",
    "the mortgage statement",
    "jury duty",
    "the dentist",
    "the car insurance renewal",
)


@dataclass
class Question:
    text: str
    intent: str  # find, count, summarize, latest, needs_reply, unsubscribe, attachments
    needed: list[str]  # document ids a correct answer cites (best first where it matters)
    count: int | None = None  # the exact number, for "how many" questions
    follow_up_of: int | None = None  # index of the question this one refines
    tags: list[str] = field(default_factory=list)

    @property
    def honest_negative(self) -> bool:
        return not self.needed and self.count in (None, 0)


def _newest_first(facts: list[MailFact]) -> list[str]:
    return [f.doc_id for f in sorted(facts, key=lambda f: f.received_at, reverse=True)]


def build_questions(facts: list[MailFact], now: datetime) -> list[Question]:
    questions: list[Question] = []
    inbound = [f for f in facts if not f.from_owner]

    def where(test: Callable[..., bool], days: int) -> list[MailFact]:
        return [f for f in inbound if test(f) and f.within(days, now)]

    for kind, (noun, typo) in KIND_WORDS.items():
        for n, days in enumerate(WINDOWS):
            found = where(lambda f, k=kind: f.kind == k, days)
            text = PHRASINGS[n % len(PHRASINGS)].format(noun=noun, days=days)
            questions.append(Question(text, "find", _newest_first(found), tags=[kind]))
        found = where(lambda f, k=kind: f.kind == k, 30)
        questions.append(
            Question(f"{typo} in the last 30 days", "find", _newest_first(found), tags=["typo"])
        )
        for days in (30, 90):
            count = len(where(lambda f, k=kind: f.kind == k, days))
            questions.append(
                Question(
                    f"how many {noun} did I get in the last {days} days?",
                    "count",
                    _newest_first(where(lambda f, k=kind: f.kind == k, days)),
                    count=count,
                    tags=[kind],
                )
            )

    # One company per organisation: "careers.northwind.example" (its application
    # confirmations) is Northwind's, as "emails from Northwind" means (endswith below).
    companies = sorted(
        {
            f.domain.removeprefix("careers.")
            for f in inbound
            if f.kind in KIND_WORDS and f.kind not in ("newsletter", "receipt", "personal")
        }
    )
    for domain in companies:
        name = domain.split(".")[0].capitalize()
        found = where(lambda f, d=domain: f.domain.endswith(d), 90)
        questions.append(
            Question(
                f"emails from {name} in the last 90 days",
                "find",
                _newest_first(found),
                tags=["sender"],
            )
        )
        latest = _newest_first(where(lambda f, d=domain: f.domain.endswith(d), 365))[:1]
        questions.append(
            Question(f"when did {name} last write to me?", "latest", latest, tags=["sender"])
        )

    people = sorted(
        {
            f.from_name
            for f in inbound
            if f.kind in ("recruiter", "interview", "offer") and f.from_name
        }
    )
    for person in people:
        found = where(lambda f, p=person: f.from_name == p, 90)
        questions.append(
            Question(
                f"what did {person} send me in the last 90 days?",
                "find",
                _newest_first(found),
                tags=["person"],
            )
        )
        pdfs = where(
            lambda f, p=person: (
                f.from_name == p and any(a.lower().endswith(".pdf") for a in f.attachment_names)
            ),
            365,
        )
        if pdfs:
            questions.append(
                Question(
                    f"the PDF {person.split()[0]} sent me",
                    "attachments",
                    _newest_first(pdfs),
                    tags=["attachment"],
                )
            )

    week = where(lambda f: True, 7)
    important = [
        f for f in week if f.kind in ("interview", "offer", "rejection", "recruiter")
    ] or week
    for text in (
        "summarize my week",
        "what happened in my inbox this week?",
        "give me a digest of the last 7 days",
    ):
        questions.append(Question(text, "summarize", _newest_first(important), tags=["digest"]))

    offers = where(lambda f: f.kind == "offer", 365)
    questions.append(
        Question("did anyone send me an offer?", "find", _newest_first(offers), tags=["offer"])
    )
    questions.append(
        Question(
            "which recruiters wrote to me last month?",
            "find",
            _newest_first(where(lambda f: f.kind == "recruiter", 30)),
            tags=["recruiter"],
        )
    )

    threads: dict[str, list[MailFact]] = {}
    for fact in facts:
        threads.setdefault(fact.thread_id, []).append(fact)
    waiting = [
        thread[-1] for thread in threads.values()
        if len(thread) > 1 and not thread[-1].from_owner and thread[-1].within(30, now)
    ]  # fmt: skip
    questions.append(
        Question(
            "which emails still need a reply from me?",
            "needs_reply",
            _newest_first(waiting),
            tags=["reply"],
        )
    )

    bulk = [f for f in inbound if f.has_unsubscribe]
    senders: dict[str, MailFact] = {}
    for fact in sorted(bulk, key=lambda f: f.received_at):
        senders[fact.from_address] = fact
    questions.append(
        Question(
            "which newsletters could I unsubscribe from?",
            "unsubscribe",
            _newest_first(list(senders.values())),
            tags=["unsubscribe"],
        )
    )

    for sender in ABSENT_SENDERS:
        questions.append(Question(f"emails from {sender}", "find", [], tags=["negative"]))
    for topic in ABSENT_TOPICS:
        questions.append(Question(f"anything about {topic}?", "find", [], tags=["negative"]))

    # Follow-ups: a first question, then a refinement of it in the same conversation.
    for domain in companies[:6]:
        name = domain.split(".")[0].capitalize()
        first = len(questions)
        questions.append(
            Question(
                "interviews in the last 90 days",
                "find",
                _newest_first(where(lambda f: f.kind == "interview", 90)),
                tags=["follow-up-base"],
            )
        )
        refined = where(lambda f, d=domain: f.kind == "interview" and f.domain.endswith(d), 90)
        questions.append(
            Question(
                f"and from {name}?",
                "find",
                _newest_first(refined),
                follow_up_of=first,
                tags=["follow-up"],
            )
        )
    first = len(questions)
    questions.append(
        Question(
            "interviews in the last 30 days",
            "find",
            _newest_first(where(lambda f: f.kind == "interview", 30)),
            tags=["follow-up-base"],
        )
    )
    older = [f for f in where(lambda f: f.kind == "interview", 365) if not f.within(30, now)]
    questions.append(
        Question(
            "older than that", "find", _newest_first(older), follow_up_of=first, tags=["follow-up"]
        )
    )
    first = len(questions)
    questions.append(
        Question(
            "recruiter emails in the last 60 days",
            "find",
            _newest_first(where(lambda f: f.kind == "recruiter", 60)),
            tags=["follow-up-base"],
        )
    )
    with_files = where(lambda f: f.kind == "recruiter" and bool(f.attachment_names), 60)
    questions.append(
        Question(
            "only the ones with attachments",
            "find",
            _newest_first(with_files),
            follow_up_of=first,
            tags=["follow-up"],
        )
    )
    questions += more_questions(facts, now, companies, people)
    return questions


def more_questions(
    facts: list[MailFact], now: datetime, companies: list[str], people: list[str]
) -> list[Question]:
    """Other phrasings of every intent, labelled from the same facts."""
    inbound = [f for f in facts if not f.from_owner]
    questions: list[Question] = []

    def where(test: Callable[..., bool], days: int) -> list[MailFact]:
        return [f for f in inbound if test(f) and f.within(days, now)]

    for domain in companies[:6]:
        name = domain.split(".")[0].capitalize()
        found = where(lambda f, d=domain: f.domain.endswith(d), 90)
        questions.append(
            Question(
                f"how many emails did {name} send me in the last 90 days?",
                "count",
                _newest_first(found),
                count=len(found),
                tags=["sender"],
            )
        )
    for person in people:
        latest = _newest_first(where(lambda f, p=person: f.from_name == p, 365))[:1]
        questions.append(
            Question(f"when did {person} last email me?", "latest", latest, tags=["person"])
        )
    friends = sorted(
        {
            f.from_name
            for f in inbound
            if f.kind == "personal" and any(a.lower().endswith(".png") for a in f.attachment_names)
        }
    )
    for friend in friends:
        photos = where(
            lambda f, p=friend: (
                f.from_name == p and any(a.lower().endswith(".png") for a in f.attachment_names)
            ),
            365,
        )
        questions.append(
            Question(
                f"the photos {friend} sent me",
                "attachments",
                _newest_first(photos),
                tags=["attachment"],
            )
        )
    for days, text in ((30, "summarize the last 30 days"), (14, "recap of the past 2 weeks")):
        window = where(lambda f: True, days)
        important = [
            f for f in window if f.kind in ("interview", "offer", "rejection", "recruiter")
        ] or window
        questions.append(Question(text, "summarize", _newest_first(important), tags=["digest"]))
    threads: dict[str, list[MailFact]] = {}
    for fact in facts:
        threads.setdefault(fact.thread_id, []).append(fact)
    waiting = [
        thread[-1] for thread in threads.values()
        if len(thread) > 1 and not thread[-1].from_owner and thread[-1].within(30, now)
    ]  # fmt: skip
    for text in ("which conversations are waiting for my reply?", "what have I not replied to?"):
        questions.append(Question(text, "needs_reply", _newest_first(waiting), tags=["reply"]))
    senders: dict[str, MailFact] = {}
    for fact in sorted((f for f in inbound if f.has_unsubscribe), key=lambda f: f.received_at):
        senders[fact.from_address] = fact
    questions.append(
        Question(
            "what mailing lists should I unsubscribe from?",
            "unsubscribe",
            _newest_first(list(senders.values())),
            tags=["unsubscribe"],
        )
    )
    for sender in ABSENT_SENDERS[:2]:
        questions.append(
            Question(
                f"how many emails did {sender} send me?", "count", [], count=0, tags=["negative"]
            )
        )
    return questions

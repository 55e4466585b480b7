"""The category rules, each on mail written the way real senders write it (not the demo's)."""

from __future__ import annotations

import pytest

from shared.mail.categories import (
    CATEGORIES,
    MailSignals,
    classify,
    is_automated,
    is_reply,
    new_text,
)

pytestmark = pytest.mark.timeout(30)

CASES = [
    # (category, rule, signals)
    (
        "offer",
        "offer",
        MailSignals(
            subject="Your offer from Globex",
            from_address="anna.lee@globex.com",
            from_name="Anna Lee",
            body="Hi Kim,\n\nWe are delighted to offer you the position of Data Engineer. "
            "Please find the details attached.",
            attachment_names=("Globex - Employment Agreement.pdf",),
        ),
    ),
    (
        "offer",
        "offer",
        MailSignals(
            subject="Paperwork",
            from_address="hr@initech.com",
            body="Attached is your offer letter; please sign and return it by Friday.",
        ),
    ),
    (
        "rejection",
        "rejection",
        MailSignals(
            subject="Your application to Initech",
            from_address="no-reply@greenhouse.io",
            body="Thank you for applying. Unfortunately, we have decided not to move forward "
            "with your application at this time.",
        ),
    ),
    (
        "rejection",
        "rejection",
        MailSignals(
            subject="Regarding the Platform role",
            from_address="jobs@hooli.com",
            body="We regret to inform you that the position has been filled.",
        ),
    ),
    (
        "interview",
        "interview",
        MailSignals(
            subject="Next steps",
            from_address="coordinator@globex.com",
            body="We'd like to invite you to an onsite interview with the team next Tuesday.",
        ),
    ),
    (
        "interview",
        "interview",
        MailSignals(
            subject="Invitation: Phone screen with Initech @ Wed 10am",
            from_address="calendar-notification@google.com",
            body="You have been invited to the following event.",
            attachment_names=("invite.ics",),
        ),
    ),
    (
        "application",
        "application",
        MailSignals(
            subject="We've received your application",
            from_address="no-reply@hire.lever.co",
            body="Hi Kim, thanks for applying to Hooli for the Software Engineer position! "
            "Our team will review your application shortly.",
        ),
    ),
    (
        "recruiter_outreach",
        "recruiter_outreach",
        MailSignals(
            subject="Staff engineer opening",
            from_address="sarah@talentco.io",
            from_name="Sarah Kim",
            body="Hi Kim, I'm a Senior Technical Recruiter at TalentCo. Our client is hiring a "
            "Staff Engineer and your profile caught my eye. Open to a quick chat?",
        ),
    ),
    (
        "receipt",
        "receipt",
        MailSignals(
            subject="Your Amazon.com order of USB cable",
            from_address="auto-confirm@amazon.com",
            body="Thank you for your order. Order #112-1234567-1234567. Order total: $9.99",
        ),
    ),
    (
        "receipt",
        "receipt",
        MailSignals(
            subject="March statement",
            from_address="accounts@utility.example",
            body="Please find this month's statement attached.",
            attachment_names=("Invoice_2026-03.pdf",),
        ),
    ),
    (
        "notification",
        "notification_text",
        MailSignals(
            subject="Security alert",
            from_address="no-reply@accounts.google.com",
            body="A new sign-in to your account was detected on a Linux device.",
        ),
    ),
    (
        "notification",
        "automated_sender",
        MailSignals(
            subject="[acme/api] Build #512 passed",
            from_address="notifications@ci.example",
            body="Build 512 of main passed in 4m 12s.",
        ),
    ),
    (
        "newsletter",
        "list_unsubscribe",
        MailSignals(
            subject="5 ways to ace your next interview",  # bulk: a subject word is not enough
            from_address="newsletter@careers-weekly.example",
            body="This week's best reads on interviews and salary talks.",
            has_unsubscribe=True,
        ),
    ),
    (
        "newsletter",
        "newsletter_text",
        MailSignals(
            subject="The Friday Roundup",
            from_address="editor@roundup.example",
            body="Top stories of the week...\nYou are receiving this because you signed up. "
            "Unsubscribe here.",
        ),
    ),
    (
        "personal",
        "person",
        MailSignals(
            subject="Dinner Saturday?",
            from_address="jamie.r@gmail.com",
            from_name="Jamie R",
            body="Hey! Are you free on Saturday evening? Thinking tapas.",
        ),
    ),
    (
        "other",
        "from_me",
        MailSignals(
            subject="Re: Interview invitation",
            from_address="kim@example.com",
            body="Thanks, Tuesday works.",
            from_me=True,
        ),
    ),
    (
        "other",
        "reply",
        MailSignals(  # the quoted invitation belongs to the earlier message
            subject="Re: Interview invitation: Data Engineer",
            from_address="anna.lee@globex.com",
            body="Great, see you then.\n\nOn Mon, 3 Nov 2026 at 10:00, Kim <kim@example.com> "
            "wrote:\n> We'd like to invite you to an interview\n",
        ),
    ),
]


@pytest.mark.parametrize(("expected", "rule", "mail"), CASES)
def test_each_rule_on_real_world_mail(expected: str, rule: str, mail: MailSignals) -> None:
    verdict = classify(mail)
    assert (verdict.category, verdict.rule) == (expected, rule)
    assert verdict.category in CATEGORIES


LOOKALIKES = [
    # (what it must not be, signals): wording hiring mail shares with other mail
    (
        "rejection",
        MailSignals(
            subject="About your order",
            from_address="orders@shop.example",
            body="Unfortunately, we are out of stock of the lamp you ordered. A refund is on its way.",
        ),
    ),
    (
        "offer",
        MailSignals(
            subject="Negotiating your job offer: 5 tips",
            from_address="editor@careers-weekly.example",
            body="How to read an offer letter, and when to push back.",
            has_unsubscribe=True,
        ),
    ),
    (
        "interview",
        MailSignals(
            subject="Quick intro",
            from_address="mark@saas.example",
            from_name="Mark",
            body="I'd love to invite you to a call about our analytics platform next week.",
        ),
    ),
    (
        "application",
        MailSignals(
            subject="We received your application",
            from_address="cards@bank.example",
            body="Your application for the Platinum card has been received. We will write soon.",
        ),
    ),
    (
        "recruiter_outreach",
        MailSignals(
            subject="Partnership opportunity",
            from_address="lea@agency.example",
            from_name="Lea",
            body="We see a great opportunity to grow your brand. Open to a quick call?",
        ),
    ),
]


@pytest.mark.parametrize(("wrong", "mail"), LOOKALIKES)
def test_lookalikes_of_hiring_mail_are_not_hiring_mail(wrong: str, mail: MailSignals) -> None:
    assert classify(mail).category != wrong


def test_a_reply_is_judged_by_its_new_text() -> None:
    reply = MailSignals(
        subject="Re: catching up",
        from_address="anna.lee@globex.com",
        body="Good news: we'd like to invite you to a final interview on Friday.\n\n"
        "> how are things?",
    )
    assert classify(reply).category == "interview"


def test_quoted_text_is_cut_off() -> None:
    body = (
        "Sounds good.\n\nOn Tue, Nov 4, 2026 at 9:12 AM Priya <p@x.example> wrote:\n> offer letter"
    )
    assert new_text(body).strip() == "Sounds good."
    assert new_text("Top\n> quoted\nbottom") == "Top\nbottom"
    outlook = "Yes.\n-----Original Message-----\nFrom: a\nSent: b\n\nthank you for applying"
    assert new_text(outlook).strip() == "Yes."


def test_reply_prefixes_and_automated_senders() -> None:
    assert (
        is_reply("Re: x") and is_reply("AW: WG: x") and is_reply("Fwd: x") and is_reply("RE[2]: x")
    )
    assert not is_reply("Rejected: x") and not is_reply("Review of x")
    assert is_automated("no-reply@x.example") and is_automated("noreply+abc@x.example")
    assert is_automated("notifications@github.com") and is_automated("do-not-reply@x.example")
    assert not is_automated("nora.reply@x.example") and not is_automated("sam.patel@x.example")


def test_a_huge_body_is_read_only_at_its_start() -> None:
    mail = MailSignals(
        subject="Long one",
        from_address="sam@example.org",
        body="Hey there.\n" + "lorem ipsum " * 200_000 + " thank you for applying",
    )
    assert classify(mail).category == "personal"


def test_signals_come_from_document_fields() -> None:
    doc = {
        "subject": "Your receipt",
        "from_address": "billing@shop.example",
        "from_name": "Shop",
        "body": "",
        "snippet": "Total: $5",
        "to": ["kim@example.com"],
        "labels": ["Inbox"],
        "list_unsubscribe": "<mailto:u@shop.example>",
        "attachment_names": ["a.pdf"],
    }
    signals = MailSignals.from_document(doc)
    assert signals.has_unsubscribe and signals.body == "Total: $5"
    assert signals.to == ("kim@example.com",) and signals.attachment_names == ("a.pdf",)
    assert classify(signals).category == "receipt"
    assert classify(MailSignals.from_document({})).category == "other"

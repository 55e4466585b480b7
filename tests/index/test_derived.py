"""Derived fields from a document's own fields: attachment types, unread, from_me."""

from __future__ import annotations

import pytest

from shared.index.derived import attachment_types, derived_fields, is_from_me, unread
from shared.mail.parse import parse_email

pytestmark = pytest.mark.timeout(30)


def test_attachment_types_are_lowercase_extensions_once_each() -> None:
    names = ["Offer_Acme.PDF", "cv.docx", "scan.pdf", "README", "archive.tar.gz", "x."]
    assert attachment_types(names) == ["pdf", "docx", "gz"]
    assert attachment_types([], ["application/pdf", "text/calendar", "image/jpeg"]) == [
        "pdf",
        "ics",
        "jpg",
    ]
    assert attachment_types([], ["application/octet-stream", "x-unknown/thing"]) == []


def test_a_nameless_attachment_gets_its_type_from_mime_at_ingest() -> None:
    raw = (
        b"From: a@x.example\nTo: b@x.example\nSubject: s\nMessage-ID: <n@x>\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nsee attached\n"
        b"--b\nContent-Type: application/pdf\nContent-Disposition: attachment\n"
        b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n"
        b'--b\nContent-Type: text/csv\nContent-Disposition: attachment; filename="q3.CSV"\n\n'
        b"a,b\n--b--\n"
    )
    parsed = parse_email(raw)
    assert parsed.attachment_names == ["q3.CSV"]
    assert parsed.unnamed_attachment_types == ("application/pdf",)
    doc = {"attachment_names": parsed.attachment_names, "labels": []}
    fields = derived_fields(doc, (), parsed.unnamed_attachment_types)
    assert fields["attachment_types"] == ["csv", "pdf"]


def test_unread_only_where_the_provider_says() -> None:
    assert unread(["Inbox", "Unread"]) is True  # Takeout, Gmail UNREAD, IMAP without \Seen
    assert unread(["Inbox", "Opened"]) is False
    assert unread(["Inbox"]) is None
    assert "unread" not in derived_fields({"labels": ["Inbox"]}, ())
    assert derived_fields({"labels": ["Unread"]}, ())["unread"] is True


def test_from_me_by_address_or_sent_label() -> None:
    assert is_from_me("Kim@Example.com", ["Inbox"], ["kim@example.com"])
    assert is_from_me("old-address@example.net", ["Sent"], ["kim@example.com"])
    assert is_from_me("x@example.net", ["INBOX.Sent"], []) and is_from_me(
        "x@y", ["a/Sent Items"], []
    )
    assert not is_from_me("other@example.com", ["Inbox"], ["kim@example.com"])
    assert not is_from_me("other@example.com", ["Sentimental"], [])
    assert not is_from_me("", ["Inbox"], [""])
    fields = derived_fields(
        {"from_address": "kim@example.com", "subject": "hi"}, ["kim@example.com"]
    )
    assert fields["from_me"] is True and fields["category"] == "other"


def test_has_unsubscribe_follows_the_stored_header() -> None:
    assert derived_fields({"list_unsubscribe": "<mailto:u@x>"}, ())["has_unsubscribe"] is True
    assert derived_fields({"list_unsubscribe": None}, ())["has_unsubscribe"] is False

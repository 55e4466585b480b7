"""The demo mailbox generator: deterministic, realistic Takeout-style mail. No servers needed."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from devtools import demo_mailbox
from devtools.demo_mailbox import DEFAULT_SEED, generate_messages, write_mbox
from shared.mail.mbox import iter_mbox
from tests.conftest import PROJECT_ROOT

OWNER = "demo@example.com"
TODAY = date(2026, 11, 23)
MIDNIGHT = datetime.combine(TODAY, datetime.min.time(), UTC)
LAST_30_DAYS = MIDNIGHT - timedelta(days=30)
INTERVIEW = re.compile(r"interview", re.IGNORECASE)
RECRUITER = re.compile(r"opportunity at |is hiring: |your next move|^Exploring an? .+ role")


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    # Generation speed is a benchmark figure (make bench prints it), not a test.
    return list(generate_messages(owner_address=OWNER, today=TODAY))


@pytest.fixture(scope="module")
def messages(raws: list[bytes]) -> list[EmailMessage]:
    return [parse(raw) for raw in raws]


def originals(messages: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in messages if not str(m["Subject"]).startswith("Re: ")]


def test_generation_is_deterministic(raws: list[bytes]) -> None:
    again = list(generate_messages(owner_address=OWNER, today=TODAY, seed=DEFAULT_SEED))
    assert again == raws
    other = list(generate_messages(owner_address=OWNER, today=TODAY, count=50, seed=7))
    assert other != raws[:50]


def test_two_writes_are_byte_identical_and_seed_matters(tmp_path: Path) -> None:
    first, second, third = tmp_path / "a.mbox", tmp_path / "b.mbox", tmp_path / "c.mbox"
    assert write_mbox(first, owner_address=OWNER, today=TODAY, count=300) == 300
    assert write_mbox(second, owner_address=OWNER, today=TODAY, count=300) == 300
    assert write_mbox(third, owner_address=OWNER, today=TODAY, count=300, seed=1) == 300
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != third.read_bytes()


@pytest.mark.parametrize("count", [0, 1, 7, 123, 2000])
def test_count_is_exact(count: int) -> None:
    assert sum(1 for _ in generate_messages(owner_address=OWNER, today=TODAY, count=count)) == count


def test_default_run_is_about_two_thousand(raws: list[bytes]) -> None:
    assert len(raws) == 2000


@pytest.mark.parametrize(("count", "days"), [(2000, 120), (150, 10), (60, 45)])
def test_dates_within_window_and_oldest_first(count: int, days: int) -> None:
    dates = [
        parse(raw)["Date"].datetime
        for raw in generate_messages(owner_address=OWNER, today=TODAY, count=count, days=days)
    ]
    assert all(d.utcoffset() == timedelta(0) for d in dates)
    assert dates == sorted(dates)
    assert MIDNIGHT - timedelta(days=days) <= dates[0]
    assert dates[-1] <= MIDNIGHT
    assert len({d.hour for d in dates}) > 12 and len({d.minute for d in dates}) > 30


def test_every_message_parses_with_required_headers(messages: list[EmailMessage]) -> None:
    ids = []
    for message in messages:
        for header in ("Message-ID", "Date", "From", "Subject", "To", "X-Gmail-Labels"):
            assert message[header], f"{header} missing in {message['Message-ID']}"
        assert not message.defects, message["Message-ID"]
        assert re.fullmatch(r"\d{15,20}", str(message["X-GM-THRID"]))
        assert message["From"].addresses and message["From"].addresses[0].addr_spec
        ids.append(str(message["Message-ID"]))
    assert all(re.fullmatch(r"<demo-\d{6}\.[0-9a-f]{6}@mail\.example\.com>", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_headers_are_rfc_2047_encoded_and_decode_exactly(
    raws: list[bytes], messages: list[EmailMessage]
) -> None:
    for raw in raws:
        head = raw.split(b"\n\n", 1)[0]
        assert head.isascii(), head[:200]
        assert max(len(line) for line in head.split(b"\n")) <= 78, head[:200]
        assert all(len(w) <= 75 for w in re.findall(rb"=\?[^?]+\?[bq]\?[^?]*\?=", head, re.I))
    for message in messages:
        for name, value in message.items():  # folding never adds or doubles spaces
            assert str(value) == str(value).strip() and "  " not in str(value), (name, value)
    names = {m["From"].addresses[0].display_name for m in messages}
    assert {"José Álvarez", "Zoë Müller", "李伟", "Ærøskøbing Café"} <= names
    assert any(b"=?utf-8?" in raw.split(b"\n\n", 1)[0] for raw in raws)
    subjects = [str(m["Subject"]) for m in messages]
    assert any("Ærøskøbing Café" in s for s in subjects)
    assert sum(not s.isascii() for s in subjects) > 50


def test_newsletters_have_list_headers(messages: list[EmailMessage]) -> None:
    lists = [m for m in messages if m["List-Unsubscribe"]]
    assert len(lists) > 100
    for message in lists:
        value = str(message["List-Unsubscribe"])
        assert re.fullmatch(r"<mailto:[^>]+@[^>]+>, <https://[^>]+>", value), value
        assert message["List-Id"] and message["List-Unsubscribe-Post"]


def test_html_only_and_alternative_mail(messages: list[EmailMessage]) -> None:
    html_only = [m for m in messages if m.get_content_type() == "text/html"]
    alternative = [m for m in messages if m.get_content_type() == "multipart/alternative"]
    assert len(html_only) > 100 and len(alternative) > 100
    for message in html_only[:50]:
        html = message.get_content()
        assert html.startswith("<!DOCTYPE html>") and "<p>" in html and "</html>" in html
    for message in alternative[:50]:
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message.get_body(("plain",)) is not None


def test_attachments_are_real_small_files(messages: list[EmailMessage]) -> None:
    found: Counter[str] = Counter()
    magic = {"application/pdf": b"%PDF-", "text/calendar": b"BEGIN:VCALENDAR"}
    magic["image/png"] = b"\x89PNG\r\n"
    for message in messages:
        for part in message.iter_attachments():
            data, kind = part.get_content(), part.get_content_type()
            data = data.encode() if isinstance(data, str) else data
            assert part["Content-Transfer-Encoding"] == "base64"
            assert part.get_filename() and 100 < len(data) < 2000, (kind, len(data))
            assert data.startswith(magic[kind]), kind
            found[kind] += 1
    assert all(found[kind] >= 5 for kind in magic), found
    offers = [m for m in messages if str(m["Subject"]).startswith("Offer letter — ")]
    assert offers and all(
        any(p.get_content_type() == "application/pdf" for p in m.iter_attachments()) for m in offers
    )


def test_replies_point_to_earlier_messages(messages: list[EmailMessage]) -> None:
    position = {str(m["Message-ID"]): i for i, m in enumerate(messages)}
    replies = [(i, m) for i, m in enumerate(messages) if str(m["Subject"]).startswith("Re: ")]
    assert len(replies) > 100
    for index, reply in replies:
        parent = str(reply["In-Reply-To"])
        assert position[parent] < index
        references = str(reply["References"]).split()
        assert references[-1] == parent
        assert all(position[r] < index for r in references)
        original = messages[position[references[0]]]
        assert str(reply["Subject"]) == f"Re: {original['Subject']}"
        assert str(reply["X-GM-THRID"]) == str(original["X-GM-THRID"])
        assert "> " in reply.get_content() and "wrote:" in reply.get_content()
    sent = [m for _, m in replies if str(m["X-Gmail-Labels"]) == "Sent"]
    assert sent and all(m["From"].addresses[0].addr_spec == OWNER for m in sent)
    assert any(len(str(m["References"]).split()) >= 3 for _, m in replies)


def test_gmail_labels(messages: list[EmailMessage]) -> None:
    labels = Counter(label for m in messages for label in str(m["X-Gmail-Labels"]).split(","))
    expected = "Inbox,Important,Sent,Opened,Unread,Category Promotions,Category Updates"
    assert all(labels[label] > 10 for label in expected.split(",")), labels
    for message in messages:
        from_owner = message["From"].addresses[0].addr_spec == OWNER
        assert from_owner == ("Sent" in str(message["X-Gmail-Labels"]).split(","))


def test_interviews_and_recruiters_in_and_outside_thirty_days(messages: list[EmailMessage]) -> None:
    mail = originals(messages)
    interviews = [m for m in mail if INTERVIEW.search(str(m["Subject"]))]
    recent = [m for m in interviews if m["Date"].datetime >= LAST_30_DAYS]
    older = [m for m in interviews if m["Date"].datetime < LAST_30_DAYS]
    assert len(recent) >= 15
    assert len(older) >= 15
    assert any(m["Date"].datetime < MIDNIGHT - timedelta(days=90) for m in older)
    recruiters = [m for m in mail if RECRUITER.search(str(m["Subject"]))]
    assert sum(m["Date"].datetime >= LAST_30_DAYS for m in recruiters) >= 20
    assert len({m["From"].addresses[0].display_name for m in recruiters}) >= 8
    assert any(str(m["Subject"]).startswith("Interview invitation: ") for m in recent)


def test_small_counts_still_have_recent_interviews() -> None:
    mail = [parse(raw) for raw in generate_messages(owner_address=OWNER, today=TODAY, count=40)]
    assert any(
        INTERVIEW.search(str(m["Subject"])) and m["Date"].datetime >= LAST_30_DAYS for m in mail
    )


def test_mbox_reads_back(tmp_path: Path, raws: list[bytes]) -> None:
    path = tmp_path / "demo.mbox"
    assert write_mbox(path, owner_address=OWNER, today=TODAY) == 2000
    box = mailbox.mbox(path)
    try:
        assert len(box) == 2000
        ids = [box.get_message(key)["Message-ID"] for key in box.keys()]
    finally:
        box.close()
    assert ids == [parse(raw)["Message-ID"] for raw in raws]
    # The project's own reader (mboxrd) gets the exact generated bytes back.
    assert [m.raw for m in iter_mbox(path)] == raws
    data = path.read_bytes()
    assert sum(line.startswith(b"From ") for line in data.splitlines()) == 2000
    assert b"\n>From the editor" in data and any(b"\nFrom the editor" in raw for raw in raws)


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "demo.mbox"
    path.write_bytes(b"previous")
    calls = 0
    real_render = demo_mailbox._render

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls > 20:
            raise RuntimeError("disk on fire")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(demo_mailbox, "_render", flaky)
    with pytest.raises(RuntimeError):
        write_mbox(path, owner_address=OWNER, today=TODAY, count=100)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["demo.mbox"]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        list(generate_messages(owner_address=OWNER, today=TODAY, days=0))
    with pytest.raises(ValueError):
        list(generate_messages(owner_address=OWNER, today=TODAY, count=-1))


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "demo.mbox"
    command = [sys.executable, "-m", "devtools.demo_mailbox", str(out), "--owner", OWNER]
    command += ["--count", "25", "--days", "60", "--today", "2026-11-23"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert "wrote 25 messages" in result.stdout
    expected = tmp_path / "expected.mbox"
    write_mbox(expected, owner_address=OWNER, today=TODAY, count=25, days=60)
    assert out.read_bytes() == expected.read_bytes()

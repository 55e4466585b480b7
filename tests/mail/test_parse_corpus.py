"""shared.mail.parse against a peer parser's answers, plus focused unit tests.

The corpus (``tests/corpus/mime``, with its licences) holds 107 real-world and
deliberately broken messages from the test suite of stalwartlabs/mail-parser,
an independent Rust MIME parser, and ``expected.json`` with what that parser
decoded. We must never crash on any of them, must decode the same subject and
sender, and our indexed body must contain every word of its text body.

Where we disagree with the key on purpose, the file is listed in
DELIBERATE_DIFFERENCES with the reason, and OUR_ANSWERS pins what we return
instead, so a change in either direction is noticed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.mail.parse import ParsedEmail, html_to_text, parse_email
from tests.conftest import CORPUS_DIR as CORPUS

KEY: dict[str, dict] = {
    entry["file"]: entry for entry in json.loads((CORPUS / "expected.json").read_text("utf-8"))
}

_RAW_LATIN1_SUBJECT = (
    "the Subject carries raw, undeclared ISO-8859-1 bytes (no encoded word); the peer "
    "decodes them as UTF-8 and keeps U+FFFD ('Fr\ufffdsche'), we fall back to cp1252 with a "
    "warning and recover 'Frösche'"
)

DELIBERATE_DIFFERENCES: dict[str, str] = {
    "legacy/010.eml": _RAW_LATIN1_SUBJECT,
    "legacy/020.eml": _RAW_LATIN1_SUBJECT,
    "legacy/022.eml": _RAW_LATIN1_SUBJECT,
    "legacy/027.eml": _RAW_LATIN1_SUBJECT,
    "legacy/033.eml": (
        "text/plain declares charset=UTF-8 but its quoted-printable bytes (=F6, =FC, =DF) are "
        "ISO-8859-1; the peer substitutes U+FFFD and so splits 'Fr\ufffdsche' into two words, "
        "we retry the part as cp1252 with a warning and index 'Frösche'"
    ),
    "legacy/052.eml": (
        "both Subject and the charset-less text/plain body are raw 8-bit ISO-8859-1; the peer "
        "decodes them as UTF-8 with U+FFFD, we fall back to cp1252 with a warning"
    ),
    "malformed/005.eml": (
        "the inner boundary 'a----' extends the outer boundary 'a--', so by RFC 2046 5.1.1 the "
        "line '--a----' is the outer close delimiter ('--a--' followed by '--') and the rest "
        "is epilogue; Python's parser (and we) follow the RFC, the peer lets the inner "
        "boundary win and finds a 'body' part"
    ),
    "malformed/020.eml": (
        "the multipart/alternative part has two Content-Type headers and no blank line; we "
        "honour the first (multipart/alternative) and index its HTML alternative, the peer "
        "takes the last (text/plain) and returns the raw MIME source of both alternatives, "
        "boundary lines and part headers included, as one text body"
    ),
    "malformed/021.eml": (
        "same duplicate Content-Type structure as malformed/020 with non-ASCII text: we index "
        "the HTML alternative's text, the peer indexes MIME boundaries and headers as body"
    ),
}

_FROESCHE = "Die Hasen und die Frösche"
_FABLE_WORDS = ["Frösche", "außerordentliche", "mißliche", "ärger", "unglücklicher"]

# What we return instead of the key, for every DELIBERATE_DIFFERENCES entry.
# "replacement_wildcards": besides the pinned values, our subject/body must equal
# the key's exactly except where the key has U+FFFD (there we have a real letter).
OUR_ANSWERS: dict[str, dict] = {
    "legacy/010.eml": {"subject": _FROESCHE, "replacement_wildcards": True},
    "legacy/020.eml": {
        "subject": f"{_FROESCHE} (Microsoft Outlook 00)",
        "replacement_wildcards": True,
    },
    "legacy/022.eml": {
        "subject": f"{_FROESCHE} (Microsoft Outlook 00)",
        "replacement_wildcards": True,
    },
    "legacy/027.eml": {
        "subject": f"{_FROESCHE} (Microsoft Outlook 00)",
        "replacement_wildcards": True,
    },
    "legacy/033.eml": {
        "body_contains": _FABLE_WORDS,
        "warning": "not valid utf-8",
        "replacement_wildcards": True,
    },
    "legacy/052.eml": {
        "subject": f"{_FROESCHE} (Microsoft Outlook 00)",
        "body_contains": _FABLE_WORDS,
        "warning": "decoded as cp1252",
        "replacement_wildcards": True,
    },
    "malformed/005.eml": {"body": "", "warning": "StartBoundaryNotFoundDefect"},
    "malformed/020.eml": {"body": "HTML Body", "has_attachment": True},
    "malformed/021.eml": {"body": "áóúäöüß", "has_attachment": True},
}

_LOOKS_LIKE_HTML = re.compile(r"<(?:html|body)\b", re.IGNORECASE)
_parsed: dict[str, ParsedEmail] = {}


def parsed(name: str) -> ParsedEmail:
    if name not in _parsed:
        _parsed[name] = parse_email((CORPUS / name).read_bytes())
    return _parsed[name]


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def key_words(entry: dict) -> set[str]:
    found: set[str] = set()
    for part in entry["text_body"]:
        found |= words(html_to_text(part) if _LOOKS_LIKE_HTML.search(part) else part)
    return found


def same_but_replacement_chars(key: str, ours: str) -> bool:
    """``ours`` equals ``key`` except that each U+FFFD in the key is one real character."""
    pattern = ".".join(re.escape(piece) for piece in key.split("\ufffd"))
    return "\ufffd" not in ours and re.fullmatch(pattern, ours, re.DOTALL) is not None


FILES = sorted(KEY)


def test_corpus_is_complete() -> None:
    assert len(KEY) == 107
    assert sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.eml")) == FILES


def test_deliberate_differences_are_pinned() -> None:
    assert set(DELIBERATE_DIFFERENCES) == set(OUR_ANSWERS)
    assert set(DELIBERATE_DIFFERENCES) <= set(KEY)


@pytest.mark.parametrize("name", FILES)
def test_parse_never_raises(name: str) -> None:
    result = parse_email((CORPUS / name).read_bytes())
    assert isinstance(result, ParsedEmail)
    assert result.received_at.tzinfo is not None and result.received_at.utcoffset() == timedelta(0)
    assert re.fullmatch(r"(raw-)?[0-9a-f]{32}", result.message_key)
    assert result.size == (CORPUS / name).stat().st_size
    assert "\x00" not in result.body and "\x00" not in result.subject
    assert result.snippet == collapse(result.snippet) and len(result.snippet) <= 200


@pytest.mark.parametrize("name", FILES)
def test_subject_and_sender_match_key(name: str) -> None:
    entry, ours = KEY[name], parsed(name)
    answer = OUR_ANSWERS.get(name, {})
    if "subject" in answer:
        assert ours.subject == answer["subject"]
        assert same_but_replacement_chars(collapse(entry["subject"]), ours.subject)
    else:
        assert ours.subject == collapse(entry["subject"])
    assert ours.from_address == (entry["from"] or "").lower()


@pytest.mark.parametrize("name", FILES)
def test_body_contains_key_words(name: str) -> None:
    entry, ours = KEY[name], parsed(name)
    answer = OUR_ANSWERS.get(name)
    if answer is None:
        missing = key_words(entry) - words(ours.body)
        assert not missing, f"{len(missing)} key words missing from our body: {sorted(missing)}"
        return
    if "body" in answer:
        assert ours.body == answer["body"]
        assert "Content-Type" not in ours.body and "--" not in ours.body
    for word in answer.get("body_contains", ()):
        assert word in ours.body
    if answer.get("replacement_wildcards"):
        assert same_but_replacement_chars(
            collapse(" ".join(entry["text_body"])), collapse(ours.body)
        )
    if "warning" in answer:
        assert any(answer["warning"] in warning for warning in ours.warnings), ours.warnings
    if "has_attachment" in answer:
        assert ours.has_attachment is answer["has_attachment"]


def test_never_raises_on_mutated_corpus() -> None:
    """A small deterministic fuzz: truncations, byte flips and splices of corpus files."""
    rng = random.Random(20240501)
    raws = [(CORPUS / name).read_bytes() for name in FILES]
    tokens = [
        b"\x00",
        b"\xff\xfe",
        b"=?utf-8?q?",
        b"?=",
        b"--",
        b"\r\n\r\n",
        b";",
        b'"',
        b"charset=x-unknown",
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\n",
        b"Content-Type: message/rfc822\n\n",
        b"Date: 99 Foo 99999\n",
        b"From: <@>,;:\n",
    ]
    for _ in range(300):
        data = bytearray(rng.choice(raws))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randint(0, len(data))
            roll = rng.random()
            if roll < 0.4:
                data[pos:pos] = rng.choice(tokens)
            elif roll < 0.6:
                del data[pos : pos + rng.randint(1, 40)]
            elif roll < 0.8 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            else:
                data = data[:pos]
        result = parse_email(bytes(data))
        assert result.received_at.utcoffset() == timedelta(0)
        assert "\x00" not in result.body


# --- focused unit tests ---------------------------------------------------------------


def message(headers: str, body: bytes | str = b"Hello.\r\n") -> bytes:
    head = headers.strip("\n").replace("\n", "\r\n").encode("utf-8") + b"\r\n\r\n"
    return head + (body.encode("utf-8") if isinstance(body, str) else body)


def test_message_without_message_id_gets_stable_raw_key() -> None:
    raw = message("From: a@example.com\nSubject: no id\nDate: Mon, 1 Jan 2024 10:00:00 +0000")
    first, again = parse_email(raw), parse_email(bytes(raw))
    assert first.message_id is None
    assert first.message_key == again.message_key == "raw-" + hashlib.sha256(raw).hexdigest()[:32]
    assert parse_email(raw + b"x").message_key != first.message_key


def test_message_id_key_is_normalised() -> None:
    one = parse_email(message("Message-ID: <ABC.123@Example.COM>\nSubject: a"))
    two = parse_email(message("Message-ID:   <abc.123@example.com>  \nSubject: b", "other"))
    assert one.message_id == "ABC.123@Example.COM"
    assert one.message_key == two.message_key
    assert one.message_key == hashlib.sha256(b"abc.123@example.com").hexdigest()[:32]
    assert parse_email(message("Message-ID: <>\nSubject: a")).message_key.startswith("raw-")


def test_unknown_charset_decodes_with_warning() -> None:
    headers = "Subject: x\nContent-Type: text/plain; charset=x-unknown"
    utf8 = parse_email(message(headers, "Grüße aus Köln".encode()))
    assert utf8.body == "Grüße aus Köln"
    assert any("x-unknown" in warning for warning in utf8.warnings)
    latin1 = parse_email(message(headers, "Grüße aus Köln".encode("latin-1")))
    assert latin1.body == "Grüße aus Köln"
    assert any("x-unknown" in warning for warning in latin1.warnings)


def test_lying_charset_falls_back_with_warning() -> None:
    raw = message("Content-Type: text/plain; charset=us-ascii", "naïve café".encode())
    result = parse_email(raw)
    assert result.body == "naïve café"
    assert any("not valid us-ascii" in warning for warning in result.warnings)


def test_html_only_message_gives_text_without_tags() -> None:
    html = (
        "<html><head><title>T</title><style>p { color: red }</style></head><body>"
        "<script>alert('x')</script><p>Hello&nbsp;<b>wor</b>ld &amp; friends</p>"
        "<table><tr><td>cell one</td><td>cell two</td></tr></table>"
        "<div>last<br>line</div><!-- hidden --></body></html>"
    )
    result = parse_email(message("Subject: html\nContent-Type: text/html; charset=utf-8", html))
    assert result.body == "Hello world & friends\ncell one\ncell two\nlast\nline"
    assert "<" not in result.body and "color" not in result.body and "alert" not in result.body
    assert result.snippet == "Hello world & friends cell one cell two last line"
    assert html_to_text("") == "" and html_to_text("plain words") == "plain words"


def test_alternative_prefers_plain_text() -> None:
    raw = message(
        'Content-Type: multipart/alternative; boundary="b"',
        "--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n--b--\r\n",
    )
    result = parse_email(raw)
    assert result.body == "plain version"
    assert not result.has_attachment


def test_attachment_names_and_sizes() -> None:
    pdf = bytes(range(256)) * 12
    notes = b"line one\r\nline two\r\n"
    inner = b"Subject: Forwarded thing\r\nFrom: c@example.com\r\n\r\nInner body.\r\n"
    body = (
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="report.pdf"\r\n\r\n'
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
        + b"--b\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt\r\n\r\n"
        + notes
        + b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        + inner
        + b"--b--\r\n"
    )
    result = parse_email(
        message('Subject: files\nContent-Type: multipart/mixed; boundary="b"', body)
    )
    assert result.body == "See attached."
    assert result.has_attachment
    assert result.attachment_names == ["report.pdf", "résumé.txt", "Forwarded thing"]
    # The text attachment keeps its final CRLF up to the boundary's own CRLF.
    expected = len(pdf) + len(notes) - 2 + len(inner) - 2
    assert abs(result.attachment_bytes - expected) <= 4


def test_bad_date_falls_back_to_fallback_date_with_warning() -> None:
    fallback = datetime(2021, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    result = parse_email(
        message("Subject: x\nDate: the day after tomorrow"), fallback_date=fallback
    )
    assert result.received_at == fallback and result.received_at.tzinfo == UTC
    assert "unparseable Date header" in result.warnings
    assert "date taken from fallback_date" in result.warnings

    naive = parse_email(message("Subject: x"), fallback_date=datetime(2020, 1, 2, 3, 4))
    assert naive.received_at == datetime(2020, 1, 2, 3, 4, tzinfo=UTC)
    assert parse_email(message("Subject: x")).received_at == datetime(1970, 1, 1, tzinfo=UTC)


def test_missing_date_uses_earliest_received_header() -> None:
    raw = message(
        "Received: from b by c; Tue, 2 Jan 2024 10:00:05 +0000\n"
        "Received: from a by b; Tue, 2 Jan 2024 11:00:00 +0100\nSubject: x"
    )
    result = parse_email(raw, fallback_date=datetime(1999, 1, 1, tzinfo=UTC))
    assert result.received_at == datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
    assert "date taken from Received header" in result.warnings
    good = parse_email(message("Date: Tue, 2 Jan 2024 11:00:00 -0500"))
    assert good.received_at == datetime(2024, 1, 2, 16, 0, tzinfo=UTC) and not good.warnings


def test_headers_decoded_and_collapsed() -> None:
    raw = message(
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg@Example.COM>\n"
        'To: a@example.com, "Last, First" <B@example.com>\nCc: undisclosed-recipients:;\n'
        "Subject: =?utf-8?b?R3LDvMOfZQ==?=\n  and\tmore\n"
        "List-Unsubscribe: <mailto:u@example.com>,\n <https://example.com/u>\n"
        "In-Reply-To: <parent@example.com>\nReferences: <r1@example.com>\n <parent@example.com>"
    )
    result = parse_email(raw)
    assert (result.from_name, result.from_address) == ("Jörg Müller", "joerg@example.com")
    assert result.to == ["a@example.com", "b@example.com"] and result.cc == []
    assert result.subject == "Grüße and more"
    assert result.list_unsubscribe == "<mailto:u@example.com>, <https://example.com/u>"
    assert result.in_reply_to == "parent@example.com"
    assert result.references == ["r1@example.com", "parent@example.com"]


def test_sender_without_domain_is_a_name() -> None:
    assert parse_email(message("From: Whomever")).from_address == ""
    assert parse_email(message("From: Whomever")).from_name == "Whomever"
    assert parse_email(message("From: Cron Daemon <root>")).from_address == "root"

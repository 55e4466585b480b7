"""Derived fields on real noida-db: filled at ingest, and by ``index migrate`` for mail indexed
before they existed (recomputed from each stored ``_source``)."""

from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers

from shared.core.clients import get_elasticsearch, get_redis
from shared.identity.users import create_user
from shared.index.derived import DERIVED_FIELDS
from shared.index.lifecycle import migrate
from shared.index.template import (
    TEMPLATE_VERSION,
    bootstrap,
    first_index,
    index_meta,
    template_body,
)
from shared.index.writer import (
    ProviderMessage,
    document_id,
    email_document,
    import_mbox,
    takeout_metadata,
)
from shared.mail.parse import parse_email
from shared.sync import accounts
from shared.sync.documents import update_labels
from tests.index.test_lifecycle import isolated, run_flask
from tests.index.test_writer import write_raw_mbox

pytestmark = pytest.mark.timeout(60)

OWNER = "kim@example.com"


def _raw(key: str, labels: str, head: str, body: str, *, attachment: str | None = None) -> bytes:
    when = (datetime.now(UTC) - timedelta(days=2)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    top = f"X-Gmail-Labels: {labels}\nMessage-ID: <{key}@refill.test>\nDate: {when}\n{head}"
    if attachment is None:
        return f"{top}\n\n{body}\n".encode()
    return (
        f'{top}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\n{body}\n--b\nContent-Type: application/octet-stream\n"
        f'Content-Disposition: attachment; filename="{attachment}"\n\nxx\n--b--\n'
    ).encode()


MAIL = {
    "newsletter": _raw(
        "n1",
        "Inbox,Unread",
        "From: Weekly <news@weekly.example>\nTo: kim@example.com\nSubject: This week\n"
        "List-Unsubscribe: <mailto:u@weekly.example>",
        "Ten links for you.",
    ),
    "mine": _raw(
        "s1",
        "Inbox",  # no Sent label: only the address says it is the owner's
        "From: Kim <kim@example.com>\nTo: sam@example.org\nSubject: Re: Dinner",
        "Friday works!",
    ),
    "interview": _raw(
        "i1",
        "Inbox,Opened",
        "From: Anna <anna@globex.example>\nTo: kim@example.com\nSubject: Next steps",
        "We would like to invite you to a technical interview on Monday.",
        attachment="invite.ICS",
    ),
    "receipt": _raw(
        "r1",
        "Inbox",
        "From: Shop <orders@shop.example>\nTo: kim@example.com\nSubject: Your receipt",
        "Thanks for your purchase. Total: $12.00",
        attachment="invoice-77.pdf",
    ),
}
EXPECTED = {
    "newsletter": {"category": "newsletter", "from_me": False, "has_unsubscribe": True,
                   "attachment_types": [], "unread": True},
    "mine": {"category": "other", "from_me": True, "has_unsubscribe": False,
             "attachment_types": []},
    "interview": {"category": "interview", "from_me": False, "has_unsubscribe": False,
                  "attachment_types": ["ics"], "unread": False},
    "receipt": {"category": "receipt", "from_me": False, "has_unsubscribe": False,
                "attachment_types": ["pdf"]},
}  # fmt: skip


def _derived(es: Any, alias: str, owner: str) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=alias)
    found: dict[str, dict[str, Any]] = {}
    for name, raw in MAIL.items():
        doc_id = document_id(owner, parse_email(raw).message_key)
        source = es.search(index=alias, query={"ids": {"values": [doc_id]}})["hits"]["hits"][0]
        found[name] = {k: v for k, v in source["_source"].items() if k in DERIVED_FIELDS}
    return found


def test_import_fills_the_derived_fields(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = isolated(settings)
    es = get_elasticsearch(s)
    bootstrap(es, s)
    path = tmp_path / "mail.mbox"
    write_raw_mbox(path, list(MAIL.values()))
    stats = import_mbox(es, s, "u_derived", path, refresh=True, owner_addresses=[OWNER])
    assert stats.indexed == len(MAIL) and stats.failed == 0
    assert _derived(es, s.index_alias, "u_derived") == EXPECTED
    hits = es.search(index=s.index_alias, query={"term": {"category": "interview"}})["hits"]
    assert hits["total"]["value"] == 1, "category is a keyword the assistant can filter on"

    # Reading the newsletter in Gmail (a label change) makes it read here too.
    newsletter = document_id("u_derived", parse_email(MAIL["newsletter"]).message_key)
    assert update_labels(es, s, {newsletter: ["Inbox", "Opened"]}) == 1
    assert _derived(es, s.index_alias, "u_derived")["newsletter"]["unread"] is False


def _version_one(settings: Any) -> dict[str, Any]:
    """The template as it was before the derived fields existed."""
    body = copy.deepcopy(template_body(settings))
    for name in DERIVED_FIELDS:
        del body["template"]["mappings"]["properties"][name]
    body["version"] = 1
    return body


def _version_one_index(s: Any, owner: str) -> Any:
    """An alias whose only index was built from version 1 and holds ``MAIL`` for ``owner``
    as the version-1 importer stored it: no derived field."""
    es = get_elasticsearch(s)
    es.indices.put_index_template(name=s.index_template, **_version_one(s))
    es.indices.create(
        index=first_index(s),
        aliases={s.index_alias: {"is_write_index": True}},
        mappings={"_meta": index_meta(datetime.now(UTC), 1)},
    )
    old_docs = []
    for raw in MAIL.values():
        labels, _thread = takeout_metadata(raw)
        parsed = parse_email(raw)
        doc = email_document(owner, parsed, ProviderMessage(raw=raw, labels=labels), "mbox")
        doc = {k: v for k, v in doc.items() if k not in DERIVED_FIELDS}
        old_docs.append(
            {"_index": s.index_alias, "_id": document_id(owner, parsed.message_key),
             "_source": doc}
        )  # fmt: skip
    helpers.bulk(es, old_docs, refresh=True)
    assert all(v == {} for v in _derived(es, s.index_alias, owner).values())
    return es


def test_migrate_fills_the_derived_fields_of_existing_mail(settings) -> None:  # type: ignore[no-untyped-def]
    assert TEMPLATE_VERSION > 1
    s = isolated(settings)
    es, r = _version_one_index(s, "u_old"), get_redis(s)

    result = migrate(es, r, s, owner_addresses=lambda owner: [OWNER] if owner == "u_old" else [])
    assert result.outcome == "migrated", result.message
    assert _derived(es, s.index_alias, "u_old") == EXPECTED
    assert es.count(index=s.index_alias)["count"] == len(MAIL)
    hits = es.search(index=s.index_alias, query={"term": {"from_me": True}})["hits"]
    assert hits["total"]["value"] == 1
    assert migrate(es, r, s).outcome == "up_to_date"


def test_the_cli_migrate_knows_each_owners_addresses(settings) -> None:  # type: ignore[no-untyped-def]
    """``flask index migrate`` looks the owners' addresses up in Redis (sign-in email and
    account addresses), so mail a person sent from another account is ``from_me`` too."""
    s = isolated(settings)
    r = get_redis(s)
    user = create_user(r, s, f"cli-{secrets.token_hex(4)}@example.net", "a long password here")
    accounts.create_account(r, s, user.id, "imap", OWNER, {}, None)  # the address "mine" used
    es = _version_one_index(s, user.id)
    env = {"MAILCHAT_INDEX_ALIAS": s.index_alias, "MAILCHAT_INDEX_TEMPLATE": s.index_template}
    done = run_flask("index", "migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "migrated"
    assert _derived(es, s.index_alias, user.id) == EXPECTED

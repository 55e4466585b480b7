"""Importing mbox files: streaming, labels, idempotency, malformed mail, the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch
from shared.index.writer import import_mbox, mbox_messages, takeout_metadata
from shared.mail.mbox import iter_mbox
from tests.conftest import CORPUS_DIR, PROJECT_ROOT


def owner_count(settings, owner_id: str) -> int:
    es = get_elasticsearch(settings)
    es.indices.refresh(index=settings.index_alias)
    return es.count(index=settings.index_alias, query={"term": {"owner_id": owner_id}})["count"]


def write_raw_mbox(path: Path, messages: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for number, raw in enumerate(messages):
            handle.write(f"From sender{number}@example.com Mon Nov  2 10:00:00 2026\n".encode())
            for line in raw.splitlines(keepends=True):
                handle.write(b">" + line if line.startswith(b"From ") else line)
            if not raw.endswith(b"\n"):
                handle.write(b"\n")
            handle.write(b"\n")


def test_mbox_reader_splits_and_unescapes(tmp_path: Path) -> None:
    raw_one = b"Subject: one\nMessage-ID: <1@x>\n\nFrom here on, a body line.\n"
    raw_two = b"Subject: two\nMessage-ID: <2@x>\n\nsecond\n"
    path = tmp_path / "two.mbox"
    write_raw_mbox(path, [raw_one, raw_two])
    messages = list(iter_mbox(path))
    assert [m.raw for m in messages] == [raw_one, raw_two]
    assert messages[0].offset == 0 and messages[1].offset > 0
    assert messages[0].envelope_date == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    resumed = list(iter_mbox(path, start_offset=messages[1].offset))
    assert [m.raw for m in resumed] == [raw_two]


def test_takeout_labels_and_thread_id() -> None:
    raw = (
        b"X-GM-THRID: 1789\nX-Gmail-Labels: Inbox,Important,\n =?UTF-8?Q?R=C3=A9sum=C3=A9s?=\n"
        b"Subject: s\n\nbody\nX-Gmail-Labels: not-a-header\n"
    )
    labels, thread = takeout_metadata(raw)
    assert labels == ("Inbox", "Important", "Résumés")
    assert thread == "1789"


def test_import_is_idempotent_and_keeps_labels(settings, make_user, tmp_path: Path) -> None:
    user, _ = make_user("importer")
    path = tmp_path / "demo.mbox"
    written = write_mbox(path, owner_address=user.email, today=date.today(), count=300)
    es = get_elasticsearch(settings)
    first = import_mbox(es, settings, user.id, path, refresh=True)
    assert first.seen == written == 300
    # The demo spans 120 days; what is older than the 90-day retention is not kept.
    assert first.skipped_expired > 0 and first.failed == 0
    assert first.indexed + first.skipped_expired == 300
    assert owner_count(settings, user.id) == first.indexed
    second = import_mbox(es, settings, user.id, path, refresh=True)
    assert second.indexed == first.indexed
    assert owner_count(settings, user.id) == first.indexed, "a re-import must not duplicate"
    labelled = es.search(
        index=settings.index_alias,
        query={
            "bool": {"filter": [{"term": {"owner_id": user.id}}, {"term": {"labels": "Inbox"}}]}
        },
        size=1,
    )
    assert labelled["hits"]["total"]["value"] > 0
    doc = labelled["hits"]["hits"][0]
    assert doc["_id"] == f"{user.id}:{doc['_source']['message_key']}"


def test_corpus_imports_without_losing_a_message(settings, make_user, tmp_path: Path) -> None:
    """Every corpus file, malformed ones included, ends up indexed."""
    files = sorted(CORPUS_DIR.glob("*/*.eml"))
    assert len(files) == 107
    raws = [f.read_bytes() for f in files]
    path = tmp_path / "corpus.mbox"
    write_raw_mbox(path, raws)
    user, _ = make_user("corpus")
    assert sum(1 for _ in mbox_messages(path)) == len(raws)
    keep_all = dataclasses.replace(settings, retention_days=0)  # the corpus spans decades
    stats = import_mbox(get_elasticsearch(settings), keep_all, user.id, path, refresh=True)
    assert stats.skipped_expired == 0
    assert stats.failed == 0, stats.errors
    assert stats.with_warnings > 0, "the malformed files must be reported"
    distinct_keys = stats.indexed  # duplicates by Message-ID in the corpus collapse into one doc
    assert owner_count(settings, user.id) <= distinct_keys
    assert owner_count(settings, user.id) >= 100


def run_flask(settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=PROJECT_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_import_and_user_create(settings, tmp_path: Path) -> None:
    email = f"cli-{datetime.now().timestamp():.0f}@example.com"
    created = run_flask(settings, "users", "create", email, stdin="a-long-password\n")
    assert created.returncode == 0, created.stderr
    path = tmp_path / "cli.mbox"
    write_mbox(path, owner_address=email, today=date.today(), count=50, days=60)
    imported = run_flask(settings, "mail", "import-mbox", str(path), "--user", email)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout.strip().splitlines()[-1])["indexed"] == 50
    again = run_flask(settings, "index", "bootstrap")
    assert again.returncode == 0 and "present" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["mail", "import-mbox", "/nonexistent/mail.mbox", "--user", "x@example.com"],
            "does not exist",
        ),
        (["mail", "import-mbox", __file__, "--user", "nobody@example.com"], "no user"),
    ],
)
def test_cli_import_bad_input_is_a_usage_error(settings, args: list[str], message: str) -> None:
    result = run_flask(settings, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_cursor_advances_only_after_each_batch_is_indexed(
    settings, make_user, tmp_path: Path
) -> None:
    import dataclasses

    from shared.index.writer import import_messages

    user, _ = make_user("cursor")
    path = tmp_path / "cursor.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=250, days=60)
    small_batches = dataclasses.replace(settings, import_batch_size=100)
    es = get_elasticsearch(settings)
    seen: list[tuple[int, int]] = []

    def record(stats) -> None:  # type: ignore[no-untyped-def]
        es.indices.refresh(index=settings.index_alias)
        seen.append((stats.cursor, owner_count(settings, user.id)))

    offsets = [m.cursor for m in mbox_messages(path)]
    import_messages(
        es, small_batches, user.id, mbox_messages(path), source="mbox", on_batch_indexed=record
    )
    assert [cursor for cursor, _ in seen] == [offsets[99], offsets[199], offsets[249]]
    assert [count for _, count in seen] == [100, 200, 250], (
        "a cursor must never run ahead of the index"
    )


def test_import_fails_loudly_when_elasticsearch_is_down(
    settings, make_user, tmp_path: Path
) -> None:
    import dataclasses

    from elasticsearch import ConnectionError as ESConnectionError

    from devtools.servers import free_port

    user, _ = make_user("down")
    path = tmp_path / "down.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=20)
    nowhere = dataclasses.replace(settings, elasticsearch_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ESConnectionError):
        import_mbox(get_elasticsearch(nowhere), nowhere, user.id, path)

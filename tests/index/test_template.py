"""Index bootstrap, and the mail import task run by a real Celery worker."""

from __future__ import annotations

import dataclasses
import time
from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch
from shared.core.task_names import MAIL_IMPORT_MBOX
from shared.index.template import EMAIL_MAPPINGS, IndexBootstrapError, bootstrap, first_index


def test_bootstrap_is_idempotent_and_uses_the_seed_names(settings) -> None:
    es = get_elasticsearch(settings)
    again = bootstrap(es, settings)
    assert "alias gmail_emails present" in again
    template = es.indices.get_index_template(name="gmail-emails-template")["index_templates"][0]
    assert template["index_template"]["index_patterns"] == ["gmail_emails-*"]
    aliases = es.indices.get_alias(name="gmail_emails")
    assert aliases["gmail_emails-000001"]["aliases"]["gmail_emails"]["is_write_index"] is True
    mapping = es.indices.get_mapping(index="gmail_emails-000001")["gmail_emails-000001"]["mappings"]
    assert mapping["properties"]["owner_id"] == {"type": "keyword"}
    assert set(EMAIL_MAPPINGS["properties"]) <= set(mapping["properties"])


def test_bootstrap_refuses_an_index_without_its_alias(settings) -> None:
    odd = dataclasses.replace(
        settings, index_alias="orphan_emails", index_template="orphan-template"
    )
    es = get_elasticsearch(settings)
    es.indices.create(index=first_index(odd))
    with pytest.raises(IndexBootstrapError, match="orphan_emails-000001 exists without"):
        bootstrap(es, odd)


def test_import_task_runs_on_the_worker(settings, make_user, celery_worker, tmp_path: Path) -> None:
    from celery_app import create_celery

    user, _ = make_user("task")
    path = tmp_path / "task.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=120, days=60)
    client = create_celery(settings, with_tasks=False)
    client.send_task(MAIL_IMPORT_MBOX, args=[user.id, str(path)])
    es = get_elasticsearch(settings)
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        es.indices.refresh(index=settings.index_alias)
        count = es.count(index=settings.index_alias, query={"term": {"owner_id": user.id}})["count"]
        if count == 120:
            break
        time.sleep(0.3)
    assert count == 120

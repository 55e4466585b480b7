"""Logs: one JSON object per line, with the context of the request or task, and no secrets."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time

import pytest

from shared.core import logs
from shared.core.settings import Settings
from tests.conftest import auth_header


@pytest.fixture()
def captured(settings: Settings):  # type: ignore[no-untyped-def]
    """The root logger's Mailchat handler, writing JSON into a buffer for the test."""
    logs.configure_logging(dataclasses.replace(settings, log_format="json"))
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_mailchat", False))
    buffer = io.StringIO()
    original = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(original)  # type: ignore[attr-defined]


def _lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_a_request_logs_one_line_with_its_id_route_status_and_hashed_user(
    client, make_user, settings, captured
) -> None:
    user, _password = make_user()
    secret_question = "what did my doctor say about the biopsy"
    response = client.get(
        f"/api/emails/no-such-email?q={secret_question}",
        headers={**auth_header(settings, user), "X-Request-ID": "req-test-0001"},
    )
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "req-test-0001"
    request_lines = [line for line in _lines(captured) if line.get("message") == "request"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["request_id"] == "req-test-0001"
    assert line["route"] == "/api/emails/<email_id>", "the template, never the path"
    assert line["status"] == 404 and line["method"] == "GET"
    assert isinstance(line["duration_ms"], float)
    assert line["user"] == logs.user_hash(user.id) and user.id not in captured.getvalue()
    assert "biopsy" not in captured.getvalue() and "no-such-email" not in captured.getvalue()


def test_an_unusable_request_id_is_replaced(client, captured) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"})
    assert response.headers["X-Request-ID"] != "bad id; with spaces"
    assert len(response.headers["X-Request-ID"]) == 16


def test_a_refused_request_still_has_an_id(client, captured) -> None:
    response = client.get("/api/conversations")
    assert response.status_code == 401
    (line,) = [line for line in _lines(captured) if line.get("message") == "request"]
    assert line["status"] == 401 and line["request_id"] == response.headers["X-Request-ID"]


def test_plain_format_names_the_context(settings) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.request_id = "abc"
    text = logs.formatter("plain").format(record)
    assert text.endswith("x: hello [request_id=abc]")
    with pytest.raises(ValueError, match="MAILCHAT_LOG_FORMAT"):
        logs.formatter("xml")


def test_worker_lines_carry_the_task_id(settings, session_dir, celery_worker) -> None:
    """The session's real worker logs JSON; a task's lines name the task and its id."""
    from celery_app import create_celery
    from shared.core.task_names import INDEX_ROLLOVER

    result = create_celery(settings, with_tasks=False).send_task(INDEX_ROLLOVER)
    log_path = session_dir / "worker.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [
            entry
            for raw in log_path.read_text("utf-8", "replace").splitlines()
            if raw.startswith("{") and (entry := json.loads(raw)).get("task_id") == result.id
        ]
        if found:
            break
        time.sleep(0.2)
    assert found, "no JSON log line of the task"
    assert all(entry["task"] == INDEX_ROLLOVER for entry in found)
    # Celery's own context (args, kwargs, return value) stays out of the log store.
    assert not [entry for entry in found if "data" in entry], found


def test_celery_s_task_context_never_reaches_a_json_line() -> None:
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "Task x", None, None)
    record.data = {"kwargs": {"data": {"text": "my private answer"}}, "return_value": "snippet"}
    record.task_id = "t-1"
    line = json.loads(logs.formatter("json").format(record))
    assert line["task_id"] == "t-1" and "data" not in line
    assert "private" not in json.dumps(line) and "snippet" not in json.dumps(line)

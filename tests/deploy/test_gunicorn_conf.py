"""deploy/gunicorn.conf.py against a real gunicorn: what its access log may record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.live import http, start_web

SECRETS = {
    "ticket": "tk-1234567890abcdef",
    "q": "my-secret-question-words",
    "token": "push-secret-0987654321",
    "code": "4/oauth-code-abcdef",
}


@pytest.mark.timeout(60)
def test_access_log_records_the_path_but_no_query_string(settings, session_dir: Path) -> None:
    """Issue 10, item 12: the query string carries tickets, questions, the push token, OAuth codes."""
    instance = start_web(session_dir)
    try:
        query = "&".join(f"{name}={value}" for name, value in SECRETS.items())
        for path in ("/api/chat/stream", "/api/gmail/push", "/api/accounts/gmail/callback"):
            http(
                "GET",
                f"{instance.base}{path}?{query}",
                headers={"Referer": f"{instance.base}/?ticket={SECRETS['ticket']}"},
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = instance.log_path.read_text()
            if log.count('"GET /api/') >= 3:
                break
            time.sleep(0.1)
    finally:
        instance.stop()
    log = instance.log_path.read_text()
    for path in ("/api/chat/stream", "/api/gmail/push", "/api/accounts/gmail/callback"):
        assert f'"GET {path} HTTP/1.1"' in log, f"{path} missing from the access log:\n{log}"
    for name, value in SECRETS.items():
        assert value not in log, f"?{name}= reached the access log:\n{log}"

"""Issue 11: the CLI in a second terminal beside ``make run`` finds its servers.

``make run`` records the URLs of the servers it started in DATA_DIR/servers.json;
a CLI process with no MAILCHAT_* URL exported (only the data dir, as the same
checkout's default ``.data`` would give it) creates a user and imports an mbox
into them, says which servers it used, and the running web serves that mail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from devtools.servers import free_port
from tests.conftest import PROJECT_ROOT
from tests.devtools.test_make_run import ctrl_c, http, start, wait_ready


def cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCHAT_", "PROMETHEUS_"))}
    env["MAILCHAT_DATA_DIR"] = str(data_dir)  # the one thing a second terminal shares: the dir
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=PROJECT_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(150)
def test_the_cli_finds_make_runs_servers_with_nothing_exported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    web_port, flower_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    process = start(data_dir, web_port, flower_port, tmp_path / "run.log")
    try:
        wait_ready(base, process, time.monotonic() + 60)
        recorded = json.loads((data_dir / "servers.json").read_text())
        assert recorded["redis_url"].startswith("redis://")
        assert recorded["embedded_elasticsearch"] is True

        created = cli(data_dir, "users", "create", "me@example.com", stdin="my own password\n")
        assert created.returncode == 0, created.stderr
        assert "created me@example.com" in created.stdout
        assert f"using Redis {recorded['redis_url']}" in created.stderr

        mbox = tmp_path / "mine.mbox"
        write_mbox(mbox, owner_address="me@example.com", today=date.today(), count=150, days=60)
        imported = cli(data_dir, "mail", "import-mbox", str(mbox), "--user", "me@example.com")
        assert imported.returncode == 0, imported.stderr
        stats = json.loads(imported.stdout.strip().splitlines()[-1])
        assert stats["indexed"] > 100 and stats["failed"] == 0
        assert "emails/s" in imported.stderr, "plain progress lines when not on a terminal"

        status, body = http(
            "POST",
            f"{base}/api/auth/login",
            {"email": "me@example.com", "password": "my own password"},
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        status, body = http("POST", f"{base}/api/chat", {"q": "interviews"}, token)
        assert status == 200 and json.loads(body)["search"]["total_hits"] > 0
    finally:
        ctrl_c(process)
    assert not (data_dir / "servers.json").exists(), "forgotten once its servers stopped"
    stopped = cli(data_dir, "users", "create", "late@example.com", stdin="another password\n")
    assert stopped.returncode != 0 and "does not answer" not in stopped.stdout

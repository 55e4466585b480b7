"""devtools/supervisor.py: the configuration make run hands to a real supervisord."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from devtools.supervisor import START_RETRIES, Program, programs, render_config
from shared.core.settings import Settings

BIN = Path(sys.executable).parent


def test_every_process_of_make_run_is_supervised_and_restarted() -> None:
    settings = Settings.from_env({}, data_dir="/tmp/mailchat-config-test")
    names = [p.name for p in programs(settings)]
    assert names == ["web", "search-worker", "worker", "beat", "flower"]
    config = render_config(settings)
    for name in names:
        section = config.split(f"[program:{name}]")[1].split("\n[")[0]
        assert "autorestart=true" in section and "killasgroup=true" in section, name
    search = next(p for p in programs(settings) if p.name == "search-worker")
    assert "--queues=search" in search.command, "the search queue has a worker of its own"
    assert "%%h" in config and "%h" not in config.replace("%%h", ""), "% must be escaped"


@pytest.mark.timeout(60)
def test_a_process_that_keeps_dying_is_retried_with_backoff_while_the_others_run(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    config = tmp_path / "supervisord.conf"
    config.write_text(
        render_config(
            settings,
            [
                Program("crasher", ["/bin/sh", "-c", "exit 3"]),
                Program("steady", ["/bin/sh", "-c", "exec sleep 120"]),
            ],
        )
    )
    log = tmp_path / "supervisord.log"
    with open(tmp_path / "stdout.log", "ab") as sink:
        supervisord = subprocess.Popen(
            [str(BIN / "supervisord"), "--configuration", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count("spawned: 'crasher'") >= 4:
                break
            time.sleep(0.2)
        text = log.read_text()
        status = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(config), "status"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    finally:
        supervisord.terminate()
        supervisord.wait(30)
    spawns = [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        for stamp in re.findall(r"^(\S+ \S+) INFO spawned: 'crasher'", text, re.MULTILINE)
    ]
    assert len(spawns) >= 4, text
    gaps = [(b - a).total_seconds() for a, b in zip(spawns, spawns[1:], strict=False)]
    # supervisord waits 1 s, 2 s, 3 s ... (its clock ticks in whole seconds, and a loaded
    # machine stretches every gap): the later waits are longer than the first one.
    assert max(gaps[1:]) >= gaps[0] + 0.5, f"no backoff between attempts: {gaps}"
    assert text.count("spawned: 'steady'") == 1, "the steady program was disturbed"
    assert re.search(r"mailchat:steady\s+RUNNING", status), status
    assert START_RETRIES >= 5

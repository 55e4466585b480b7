"""Session fixtures: real redis-server, real noida-db (Elasticsearch protocol), a real
Celery worker subprocess, and the Flask app wired to them.

Servers start on free ports in temporary directories, once per test session.
Tests isolate themselves by creating their own users (every document and
every query is scoped to its owner).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.servers import LocalServer, start_noida_elasticsearch, start_redis
from shared.core.settings import ENV_PREFIX, Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = PROJECT_ROOT / "tests" / "corpus" / "mime"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mailchat")


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[LocalServer]:
    server = start_redis(session_dir / "redis")
    yield server
    stop_relays()
    server.stop()


def stop_relays() -> None:
    """Stop every doorbell relay apps of this process started, before their Redis goes away.

    Apps made in a test (not through the ``app`` fixture) leave their relay's daemon threads
    running; once Redis stops they log "lost Redis" into streams pytest has closed by then.
    """
    import gc

    from web.realtime.relay import Relay

    for candidate in gc.get_objects():
        if isinstance(candidate, Relay):
            candidate.stop()


@pytest.fixture(scope="session")
def es_server(session_dir: Path) -> Iterator[LocalServer]:
    server = start_noida_elasticsearch(session_dir / "elasticsearch")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(
    redis_server: LocalServer, es_server: LocalServer, session_dir: Path
) -> Iterator[Settings]:
    """Settings for the session, exported to the environment so subprocesses share them."""
    values = {
        "redis_url": redis_server.url,
        "elasticsearch_url": es_server.url,
        "data_dir": str(session_dir / "data"),
        "secret_key": secrets.token_urlsafe(32),
        "chat_timeout_seconds": "10",
        # The whole suite logs in and asks from 127.0.0.1 far more often than a person would:
        # limits that count per address or per person are tested with their own settings.
        "login_rate_limit": "10000 per minute",
        "auth_rate_limit": "10000 per minute",
        "login_free_failures_per_ip": "10000",
        "ask_rate_limit": "10000 per minute",
    }
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    for name, value in values.items():
        os.environ[ENV_PREFIX + name.upper()] = str(value)
    get_settings.cache_clear()
    built = get_settings()
    from shared.core.clients import get_elasticsearch
    from shared.index.template import bootstrap

    bootstrap(get_elasticsearch(built), built)
    yield built
    for name in values:
        os.environ.pop(ENV_PREFIX + name.upper(), None)
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def celery_worker(settings: Settings, session_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker subprocess consuming every queue."""
    from tests.live import start_worker

    # The session's Dovecot listens on loopback, which IMAP accounts may only use when allowed.
    env = {**os.environ, ENV_PREFIX + "IMAP_ALLOW_PRIVATE_HOSTS": "true"}
    process = start_worker(settings, session_dir / "worker.log", env)
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from web import create_app

    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    yield flask_app
    flask_app.extensions["mailchat"].relay.stop()  # before the session's Redis goes away


@pytest.fixture()
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture()
def make_user(settings: Settings):  # type: ignore[no-untyped-def]
    """Create a fresh user; returns (user, password)."""
    from shared.core.clients import get_redis
    from shared.identity.users import create_user

    def _make(prefix: str = "user") -> tuple:
        password = secrets.token_urlsafe(12)
        email = f"{prefix}-{secrets.token_hex(4)}@example.com"
        return create_user(get_redis(settings), settings, email, password), password

    return _make


def user_with_mailbox(  # type: ignore[no-untyped-def]
    settings: Settings, folder: Path, *, name: str, count: int, password: str = "mailbox-password"
):
    """A new user whose generated mailbox of ``count`` realistic emails is imported (and searchable)."""
    from datetime import date

    from devtools.demo_mailbox import write_mbox
    from shared.core.clients import get_elasticsearch, get_redis
    from shared.identity.users import create_user
    from shared.index.writer import import_mbox

    user = create_user(
        get_redis(settings), settings, f"{name}-{secrets.token_hex(4)}@example.com", password
    )
    path = folder / "mail.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=count)
    import_mbox(get_elasticsearch(settings), settings, user.id, path, refresh=True)
    return user


def auth_header(settings: Settings, user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from shared.identity.users import issue_token

    return {"Authorization": f"Bearer {issue_token(settings, user)}"}


def _fail_skips(report) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("MAILCHAT_NO_SKIPS") == "1" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped, but MAILCHAT_NO_SKIPS=1 forbids skips: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """In CI (MAILCHAT_NO_SKIPS=1) a test that skips for a missing tool fails instead."""
    outcome = yield
    _fail_skips(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # type: ignore[no-untyped-def]
    """The same for whole modules skipped at collection (e.g. a missing corpus)."""
    outcome = yield
    _fail_skips(outcome.get_result())


@pytest.fixture(scope="session")
def dovecot():  # type: ignore[no-untyped-def]
    """A real Dovecot IMAP server (Debian's dovecot-imapd) on a free port, for the session."""
    from tests.sync.dovecot import DovecotMissing, start_dovecot

    try:
        server = start_dovecot()
    except DovecotMissing as exc:
        pytest.skip(f"{exc}; install it with: apt-get install dovecot-imapd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mail_app(settings: Settings):  # type: ignore[no-untyped-def]
    """The web app with IMAP hosts on loopback allowed (the test Dovecot listens there)."""
    import dataclasses

    from web import create_app

    flask_app = create_app(dataclasses.replace(settings, imap_allow_private_hosts=True))
    flask_app.config["TESTING"] = True
    return flask_app

"""``make run``: the whole system on one machine, under one supervisor.

1. Start redis-server and noida-db unless their URLs are configured.
2. Bootstrap the index, create the demo user, import the demo mailbox once.
3. Hand over to supervisord (``devtools.supervisor``), which runs web, the
   search worker, the worker, beat and Flower with the resolved settings in
   their environment, and restarts any of them that dies.

Ctrl-C stops supervisord's processes, then the servers started here. All
state lives in the data dir, so the next ``make run`` finds it again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from devtools.demo_mailbox import write_mbox
from devtools.servers import LocalServer, start_noida_elasticsearch, start_redis
from devtools.supervisor import config_path, run_supervisord
from shared.core import local_servers
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keyfiles import read_or_create
from shared.core.keys import RedisKeys
from shared.core.settings import ENV_PREFIX, Settings
from shared.identity.users import ensure_user
from shared.index.template import bootstrap
from shared.index.writer import import_mbox

log = logging.getLogger("mailchat.run")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_missing_servers(settings: Settings) -> tuple[Settings, list[LocalServer]]:
    """Start local servers for every URL left empty; return settings pointing at them."""
    started: list[LocalServer] = []
    if not settings.redis_url:
        redis_server = start_redis(settings.data_path / "redis", settings.redis_port)
        started.append(redis_server)
        settings = dataclasses.replace(settings, redis_url=redis_server.url)
    if not settings.elasticsearch_url:
        es_server = start_noida_elasticsearch(
            settings.data_path / "elasticsearch", settings.elasticsearch_port
        )
        started.append(es_server)
        settings = dataclasses.replace(settings, elasticsearch_url=es_server.url)
    return settings, started


def engine_warnings(settings: Settings) -> list[str]:
    """One line per person whose mail outgrows the embedded engine (issue 11)."""
    if not settings.embedded_search_engine:
        return []
    found = get_elasticsearch(settings).search(
        index=settings.index_alias,
        size=0,
        aggs={"owners": {"terms": {"field": "owner_id", "size": 20}}},
    )
    limit = settings.embedded_engine_warn_emails
    big = [b["doc_count"] for b in found["aggregations"]["owners"]["buckets"]]
    return [
        f"a mailbox of {count:,} emails outgrows the built-in search engine (over {limit:,}: "
        "answers take seconds); run Mailchat on Elasticsearch for it (README, deploy/)"
        for count in big
        if count > limit
    ]


def prepare_demo(settings: Settings) -> str:
    """Bootstrap the index and import the demo mailbox on first start. Returns a status line."""
    es = get_elasticsearch(settings)
    r = get_redis(settings)
    for action in bootstrap(es, settings):
        log.info("index: %s", action)
    user = ensure_user(r, settings, settings.demo_email, settings.demo_password)
    flag = RedisKeys(settings.key_prefix).demo_imported()
    if r.get(flag):
        return f"demo mailbox already imported for {user.email}"
    mbox_path = settings.data_path / "demo.mbox"
    write_mbox(
        mbox_path,
        owner_address=settings.demo_email,
        today=datetime.now(UTC).date(),
        count=settings.demo_message_count,
        # The whole demo is kept: it spans the retention (mail older than that is not kept).
        days=min(120, settings.retention_days - 1) if settings.retention_days > 1 else 120,
    )
    stats = import_mbox(
        es, settings, user.id, mbox_path, refresh=True, owner_addresses=[user.email]
    )
    r.set(flag, datetime.now(UTC).isoformat())
    skipped = (
        f" ({stats.skipped_expired} older than {settings.retention_days} days not kept)"
        if stats.skipped_expired
        else ""
    )
    return f"demo mailbox imported for {user.email}: {stats.indexed} emails{skipped}"


def with_flower_login(settings: Settings) -> tuple[Settings, bool]:
    """Flower's basic-auth login: the setting, else one generated once into the data dir.

    Flower shows every task's arguments and can revoke tasks and restart pools,
    so it never runs open. Returns whether the login was generated here (then
    the banner prints it; a configured one is not printed).
    """
    if settings.flower_basic_auth:
        return settings, False
    login = read_or_create(
        settings.data_path / "flower_basic_auth", lambda: f"mailchat:{secrets.token_urlsafe(18)}"
    )
    return dataclasses.replace(settings, flower_basic_auth=login), True


def settings_environment(settings: Settings) -> dict[str, str]:
    """Settings as MAILCHAT_* variables, so every child process reads the same values."""
    env = dict(os.environ)
    for field in dataclasses.fields(settings):
        env[ENV_PREFIX + field.name.upper()] = str(getattr(settings, field.name))
    if settings.flower_basic_auth:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth  # Flower reads FLOWER_* options
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def banner(settings: Settings, status: str, *, show_flower_login: bool) -> str:
    host = settings.web_host
    flower_login = (
        settings.flower_basic_auth.replace(":", " / ", 1)
        if show_flower_login
        else "from MAILCHAT_FLOWER_BASIC_AUTH"
    )
    return "\n".join(
        [
            "",
            "Mailchat is starting",
            f"  chat API       http://{host}:{settings.web_port}/  (POST /api/auth/login, /api/chat)",
            f"  metrics        http://{host}:{settings.web_port}/metrics",
            f"  Flower         http://127.0.0.1:{settings.flower_port}/  (login {flower_login})",
            f"  Redis          {settings.redis_url}",
            f"  Elasticsearch  {settings.elasticsearch_url}",
            f"  demo login     {settings.demo_email} / {settings.demo_password}",
            f"  processes      {Path(sys.executable).parent / 'supervisorctl'} "
            f"-c {config_path(settings)} status",
            f"  {status}",
            "",
        ]
    )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `finally` stops the servers
    os.environ.setdefault(ENV_PREFIX + "LOG_FORMAT", "plain")  # a terminal, not a log shipper
    settings = Settings.from_env().with_secret_key()
    settings.data_path.mkdir(parents=True, exist_ok=True)
    settings, notes = local_servers.discover(settings)  # a second make run reuses the first's
    for note in notes:
        log.info("%s", note)
    settings, show_flower_login = with_flower_login(settings)
    settings, started = start_missing_servers(settings)
    if any(server.name.startswith("noida-db") for server in started):
        settings = dataclasses.replace(settings, embedded_search_engine=True)
    if started:
        local_servers.record(
            settings, embedded_elasticsearch=settings.embedded_search_engine, owner_pid=os.getpid()
        )
    try:
        status = prepare_demo(settings)
        print(banner(settings, status, show_flower_login=show_flower_login), flush=True)
        for warning in engine_warnings(settings):
            log.warning("%s", warning)
        env = settings_environment(settings)
        metrics_dir = settings.data_path / "prometheus"  # web, workers and beat share it
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        return run_supervisord(settings, env)
    finally:
        if started:
            local_servers.forget(settings, os.getpid())
        for server in reversed(started):
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

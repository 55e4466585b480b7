"""One typed settings object, read from the environment once per process.

Every port, URL, path, limit and secret Mailchat uses is a field here with a
documented default (the README's settings table mirrors this file). Web,
workers, CLI commands and tests all build from the same object, so a value can
never mean one thing in the web process and another in the worker.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shared.core.keyfiles import read_or_create
from shared.core.settings_groups import LimitsSyncAndOperationsSettings

ENV_PREFIX = "MAILCHAT_"

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def parse_bool(name: str, value: str) -> bool:
    """Accept the usual spellings (true/false, 1/0, yes/no, y/n, on/off)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be true/false, 1/0, yes/no or y/n, not {value!r}")


@dataclass(frozen=True)
class Settings(LimitsSyncAndOperationsSettings):
    """Mailchat's configuration. Field name ``foo_bar`` is read from ``MAILCHAT_FOO_BAR``.

    Fields marked ``secret`` (and the credentials inside URLs) never appear in
    ``repr``: settings get logged and printed in tracebacks, secrets must not.
    A new secret field must carry ``"secret": True`` (a test checks the names).
    """

    # Servers. Empty URL = start a local server (make run / tests) and fill it in.
    redis_url: str = field(
        default="", metadata={"doc": "Redis URL; empty starts a local redis-server", "url": True}
    )
    elasticsearch_url: str = field(
        default="",
        metadata={"doc": "Elasticsearch URL; empty starts a local noida-db", "url": True},
    )
    redis_port: int = field(
        default=0, metadata={"doc": "Port for the local redis-server (0 = free port)"}
    )
    elasticsearch_port: int = field(
        default=0, metadata={"doc": "Port for the local noida-db server (0 = free port)"}
    )
    web_host: str = field(default="127.0.0.1", metadata={"doc": "Address gunicorn binds"})
    web_port: int = field(default=8000, metadata={"doc": "Port gunicorn binds"})
    web_workers: int = field(default=2, metadata={"doc": "gunicorn worker processes"})
    flower_port: int = field(default=5555, metadata={"doc": "Port Flower binds"})
    flower_basic_auth: str = field(
        default="",
        metadata={
            "doc": "Flower's login as user:password (no commas); empty = make run generates "
            "one into DATA_DIR/flower_basic_auth and prints it",
            "secret": True,
        },
    )
    worker_concurrency: int = field(default=2, metadata={"doc": "Celery worker processes"})
    data_dir: str = field(
        default=".data", metadata={"doc": "Local state: Redis AOF, noida-db data, keys"}
    )
    log_format: str = field(
        default="json",
        metadata={
            "doc": "Log lines: `json` (one object per line, for shippers) or `plain`; make run uses plain"
        },
    )
    log_level: str = field(default="INFO", metadata={"doc": "Lowest level logged"})

    # Secrets and accounts.
    secret_key: str = field(
        default="",
        metadata={
            "doc": "Signs access tokens; empty = generated once into DATA_DIR/secret_key",
            "secret": True,
        },
    )
    demo_email: str = field(default="demo@example.com", metadata={"doc": "Demo account login"})
    demo_password: str = field(
        default="mailchat-demo",
        metadata={"doc": "Demo account password (printed by make run)", "secret": True},
    )
    demo_message_count: int = field(default=2000, metadata={"doc": "Messages in the demo mailbox"})
    access_token_ttl_seconds: int = field(default=900, metadata={"doc": "Access token lifetime"})
    # Sessions and login (issue 10).
    session_max_seconds: int = field(
        default=30 * 86400,
        metadata={"doc": "Absolute lifetime of a login session: refreshing cannot extend it"},
    )
    session_recheck_seconds: float = field(
        default=30.0,
        metadata={"doc": "How often an open SSE stream or WebSocket re-checks its token (<= 30)"},
    )
    password_hash_threads: int = field(
        default=2,
        metadata={"doc": "Threads hashing passwords off the gevent loop (0 = on the caller)"},
    )
    login_free_failures_per_account: int = field(
        default=5,
        metadata={"doc": "Wrong passwords for one account before each try must wait"},
    )
    login_free_failures_per_ip: int = field(
        default=20,
        metadata={"doc": "Wrong passwords from one IP address before each try must wait"},
    )
    login_delay_base_seconds: float = field(
        default=1.0,
        metadata={"doc": "First wait after the free failures; it doubles with each further one"},
    )
    login_delay_max_seconds: float = field(
        default=900.0, metadata={"doc": "Longest wait a failed login imposes"}
    )
    login_failure_memory_seconds: int = field(
        default=3600, metadata={"doc": "How long failed logins are remembered"}
    )

    # Elasticsearch names fixed by the seed documents.
    index_alias: str = field(
        default="gmail_emails", metadata={"doc": "Write alias for email indices"}
    )
    index_template: str = field(
        default="gmail-emails-template", metadata={"doc": "Index template name"}
    )

    # Index lifecycle: the seed's policy emails-rolling-90d (issue 6).
    rollover_max_age: str = field(
        default="30d", metadata={"doc": "Roll the write index over once it is this old (d/h/m/s)"}
    )
    rollover_max_primary_shard_size: str = field(
        default="20gb",
        metadata={"doc": "Roll the write index over once a primary shard is this big (b..tb)"},
    )
    retention_days: int = field(
        default=90,
        metadata={
            "doc": "Mail older than this (by received_at) is not kept: sync and import skip it, "
            "questions cannot look further back, the daily retention deletes it; a non-write "
            "index is deleted this many days after its rollover. 0 keeps everything"
        },
    )
    lifecycle_owner: str = field(
        default="mailchat",
        metadata={
            "doc": "Who runs rollover/retention: 'mailchat' (beat jobs) or 'elasticsearch' "
            "(native ILM from deploy/ilm; the jobs stand down)"
        },
    )
    rollover_interval_seconds: int = field(
        default=3600, metadata={"doc": "How often beat runs index.rollover"}
    )
    retention_interval_seconds: int = field(
        default=86400, metadata={"doc": "How often beat runs index.retention"}
    )
    lifecycle_lock_seconds: int = field(
        default=600,
        metadata={"doc": "Expiry of the Redis lock a lifecycle job holds (renewed while it works)"},
    )

    # Limits.
    max_request_bytes: int = field(default=65536, metadata={"doc": "Largest accepted request body"})
    max_question_chars: int = field(default=2000, metadata={"doc": "Longest accepted question"})
    chat_timeout_seconds: float = field(
        default=15.0, metadata={"doc": "How long POST /api/chat waits for a worker"}
    )
    search_result_size: int = field(default=8, metadata={"doc": "Emails cited per answer"})
    # Bounded questions and answers that always end (issue 10).
    search_max_terms: int = field(
        default=8,
        metadata={
            "doc": "Words of a question one search uses at most (one query clause each); "
            "the rest are ignored and listed in the answer's search.ignored_terms"
        },
    )
    search_timeout_seconds: float = field(
        default=5.0,
        metadata={
            "doc": "Server-side time limit of one search (Elasticsearch 'timeout': partial "
            "results, reported as search.timed_out); the client gives up 2 s later"
        },
    )
    answer_soft_time_limit_seconds: float = field(
        default=20.0,
        metadata={
            "doc": "Soft time limit of one assistant.answer run (ends it: assistant_timeout); "
            "0 = none. Must be below the hard limit, which Celery arms only when it fires"
        },
    )
    answer_time_limit_seconds: float = field(
        default=30.0,
        metadata={
            "doc": "Hard time limit of one assistant.answer run: its process is killed and "
            "the answer ends with error assistant_timeout"
        },
    )
    answer_sweep_seconds: float = field(
        default=10.0,
        metadata={
            "doc": "How often beat ends questions still open past their deadline "
            "(CHAT_TIMEOUT + ANSWER_TIME_LIMIT + this) with error assistant_unavailable"
        },
    )
    import_batch_size: int = field(
        default=500, metadata={"doc": "Emails per bulk request on import"}
    )
    chat_streaming_enabled: bool = field(
        default=True,
        metadata={
            "doc": "Serve SSE streams; false answers 503 so clients use POST /api/chat "
            "(also read from the seed's CHAT_STREAMING_ENABLED)",
            "alias": "CHAT_STREAMING_ENABLED",
        },
    )
    sse_ping_seconds: float = field(
        default=15.0, metadata={"doc": "SSE keep-alive comment interval"}
    )
    sse_retry_ms: int = field(default=3000, metadata={"doc": "SSE reconnect delay sent as retry:"})
    ws_allowed_origins: str = field(
        default="",
        metadata={
            "doc": "Comma-separated Origins allowed to open /ws (others get close 1008); "
            "empty = this server's own http://WEB_HOST:WEB_PORT and http://localhost:WEB_PORT"
        },
    )
    ws_ping_seconds: float = field(
        default=30.0, metadata={"doc": "WebSocket application ping interval"}
    )
    ws_pong_timeout_seconds: float = field(
        default=10.0, metadata={"doc": "Close a socket whose pong is this late"}
    )
    ws_auth_timeout_seconds: float = field(
        default=5.0, metadata={"doc": "Time allowed for the first (auth) frame"}
    )
    ws_max_message_bytes: int = field(
        default=16384, metadata={"doc": "Largest client frame; bigger closes with 1009"}
    )
    ws_max_connections: int = field(
        default=10000, metadata={"doc": "Sockets per web process before new ones get 1013"}
    )
    # The browser client (issue 4).
    ux_heartbeat_seconds: float = field(
        default=30.0,
        metadata={"doc": "How often the chat page sends POST /api/ux/heartbeat while visible"},
    )
    ux_rate_limit_per_minute: int = field(
        default=20,
        metadata={"doc": "Requests per minute one person may send to each /api/ux/* endpoint"},
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), then apply ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            alias = str(f.metadata.get("alias", ""))
            if name not in env and alias and alias in env:
                name = alias
            if name not in env:
                continue
            raw = env[name]
            try:
                if f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                elif f.type in ("bool", bool):
                    values[f.name] = parse_bool(name, raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r} is not a valid {f.type}") from exc
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins whose pages may open the WebSocket: the setting, or this server's own."""
        if self.ws_allowed_origins.strip():
            return frozenset(o.strip() for o in self.ws_allowed_origins.split(",") if o.strip())
        return frozenset(
            {f"http://{self.web_host}:{self.web_port}", f"http://localhost:{self.web_port}"}
        )

    @property
    def answer_deadline_seconds(self) -> float:
        """After this long an unanswered question can no longer be answered by its task.

        Its task expires (is discarded unstarted) after ``chat_timeout_seconds``, and
        once started is killed after ``answer_time_limit_seconds``; one sweep interval
        more covers clock skew between the web and the workers.
        """
        return (
            self.chat_timeout_seconds + self.answer_time_limit_seconds + self.answer_sweep_seconds
        )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    def with_secret_key(self) -> Settings:
        """Fill an empty secret key from DATA_DIR/secret_key, creating it once.

        Every process of one installation must sign with the same key, and a
        restart must not log everybody out, so the generated key is persisted
        rather than made up per process.
        """
        if self.secret_key:
            return self
        key = read_or_create(self.data_path / "secret_key", lambda: secrets.token_urlsafe(48))
        return dataclasses.replace(self, secret_key=key)

    def __repr__(self) -> str:
        """Every setting, with secrets and URL credentials redacted."""
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "<redacted>"
            elif f.metadata.get("url"):
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def redact_url(url: str) -> str:
    """``url`` without the user name and password it may carry (``https://<redacted>@host``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"<redacted>@{host}"))


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) rows, for the README and `--help` output."""
    rows = []
    for f in dataclasses.fields(Settings):
        rows.append((ENV_PREFIX + f.name.upper(), repr(f.default), f.metadata.get("doc", "")))
    return rows


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env().with_secret_key()

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
class Settings:
    """Mailchat's configuration. Field name ``foo_bar`` is read from ``MAILCHAT_FOO_BAR``."""

    # Servers. Empty URL = start a local server (make run / tests) and fill it in.
    redis_url: str = field(
        default="", metadata={"doc": "Redis URL; empty starts a local redis-server"}
    )
    elasticsearch_url: str = field(
        default="", metadata={"doc": "Elasticsearch URL; empty starts a local noida-db"}
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
    worker_concurrency: int = field(default=2, metadata={"doc": "Celery worker processes"})
    data_dir: str = field(
        default=".data", metadata={"doc": "Local state: Redis AOF, noida-db data, keys"}
    )

    # Secrets and accounts.
    secret_key: str = field(
        default="",
        metadata={"doc": "Signs access tokens; empty = generated once into DATA_DIR/secret_key"},
    )
    demo_email: str = field(default="demo@example.com", metadata={"doc": "Demo account login"})
    demo_password: str = field(
        default="mailchat-demo", metadata={"doc": "Demo account password (printed by make run)"}
    )
    demo_message_count: int = field(default=2000, metadata={"doc": "Messages in the demo mailbox"})
    access_token_ttl_seconds: int = field(default=900, metadata={"doc": "Access token lifetime"})

    # Elasticsearch names fixed by the seed documents.
    index_alias: str = field(
        default="gmail_emails", metadata={"doc": "Write alias for email indices"}
    )
    index_template: str = field(
        default="gmail-emails-template", metadata={"doc": "Index template name"}
    )

    # Limits.
    max_request_bytes: int = field(default=65536, metadata={"doc": "Largest accepted request body"})
    max_question_chars: int = field(default=2000, metadata={"doc": "Longest accepted question"})
    chat_timeout_seconds: float = field(
        default=15.0, metadata={"doc": "How long POST /api/chat waits for a worker"}
    )
    search_result_size: int = field(default=8, metadata={"doc": "Emails cited per answer"})
    import_batch_size: int = field(
        default=500, metadata={"doc": "Emails per bulk request on import"}
    )
    key_prefix: str = field(default="mailchat:", metadata={"doc": "Prefix of every Redis key"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), then apply ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
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
        path = self.data_path / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text().strip()
        else:
            key = secrets.token_urlsafe(48)
            with os.fdopen(fd, "w") as handle:
                handle.write(key)
        return dataclasses.replace(self, secret_key=key)


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

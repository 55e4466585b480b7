"""The lifecycle policy ``emails-rolling-90d`` as settings: conditions and retention.

Values use Elasticsearch's own units (``30d``, ``20gb``) so the same strings
can go into the native ILM policy in ``deploy/ilm/`` unchanged. A value the
policy cannot read is an error that names its environment variable: a
lifecycle job must never guess what "30 dayz" means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.core.settings import Settings

OWNER_MAILCHAT = "mailchat"
OWNER_ELASTICSEARCH = "elasticsearch"
OWNERS = (OWNER_MAILCHAT, OWNER_ELASTICSEARCH)

_DURATION = re.compile(r"^\s*(\d+)\s*(d|h|m|s|ms)\s*$")
_DURATION_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb|tb|pb)\s*$", re.IGNORECASE)
# Elasticsearch's byte units are binary (1kb = 1024b).
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4, "pb": 1024**5}


class LifecycleError(RuntimeError):
    """A lifecycle run cannot proceed. The message says how to fix it; nothing was changed."""


def parse_duration(name: str, text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``500ms`` (whole numbers, as Elasticsearch writes them)."""
    match = _DURATION.match(text)
    if not match:
        raise LifecycleError(f"{name}={text!r} is not a duration such as 30d, 12h or 90m")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(name: str, text: str) -> int:
    """``20gb``, ``512mb``... in bytes (binary units, as Elasticsearch reads them)."""
    match = _SIZE.match(text)
    if not match:
        raise LifecycleError(f"{name}={text!r} is not a size such as 20gb or 512mb")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def format_duration(seconds: float) -> str:
    """Seconds as ``12d 4h 3m`` for people reading a dry run."""
    whole = int(max(0, seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{minutes}m" if days or hours or minutes else f"{secs}s")
    return " ".join(parts)


def format_size(size: int) -> str:
    for unit in ("tb", "gb", "mb", "kb"):
        if size >= _SIZE_UNITS[unit]:
            return f"{size / _SIZE_UNITS[unit]:.1f}{unit}"
    return f"{size}b"


@dataclass(frozen=True)
class Policy:
    """Rollover conditions and retention, parsed once per run."""

    owner: str
    max_age: timedelta
    max_age_text: str
    max_primary_shard_bytes: int
    max_primary_shard_size_text: str
    retention: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        if settings.lifecycle_owner not in OWNERS:
            raise LifecycleError(
                f"MAILCHAT_LIFECYCLE_OWNER={settings.lifecycle_owner!r} must be one of "
                f"{', '.join(OWNERS)}"
            )
        if settings.retention_days < 0:
            raise LifecycleError(
                f"MAILCHAT_RETENTION_DAYS={settings.retention_days} must be 0 (keep everything) "
                "or more"
            )
        return cls(
            owner=settings.lifecycle_owner,
            max_age=parse_duration("MAILCHAT_ROLLOVER_MAX_AGE", settings.rollover_max_age),
            max_age_text=settings.rollover_max_age.strip(),
            max_primary_shard_bytes=parse_size(
                "MAILCHAT_ROLLOVER_MAX_PRIMARY_SHARD_SIZE", settings.rollover_max_primary_shard_size
            ),
            max_primary_shard_size_text=settings.rollover_max_primary_shard_size.strip(),
            retention=timedelta(days=settings.retention_days),
        )

    @property
    def runs_here(self) -> bool:
        """False when native ILM owns the lifecycle: then Mailchat's jobs stand down."""
        return self.owner == OWNER_MAILCHAT

    def conditions(self) -> dict[str, str]:
        return {
            "max_age": self.max_age_text,
            "max_primary_shard_size": self.max_primary_shard_size_text,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "rollover": self.conditions(),
            "retention_days": self.retention.days,
        }

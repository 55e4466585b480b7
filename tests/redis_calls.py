"""Counting the commands a real redis-server executed (``INFO commandstats``).

The tests of "an idle socket costs no Redis call" measure on the server
itself, not by wrapping the client: a test Redis of their own, so every
command it counts came from the code under test.
"""

from __future__ import annotations

import redis

# Commands a web process sends on its own clock, whatever its sockets do: the
# instance heartbeat (every 30 s) and the doorbell subscription.
BACKGROUND = frozenset({"zadd", "zremrangebyscore", "subscribe", "ping", "info", "config|get"})
# What ``EventLog.append`` itself sends: its script, the epoch, the doorbell (and, on a
# connection the pool opens for it, redis-py's CLIENT SETINFO).
APPEND_COMMANDS = frozenset(
    {"evalsha", "eval", "script", "script|load", "xadd", "expire", "get", "set", "publish"}
    | {"client", "client|setinfo"}
)


def command_counts(r: redis.Redis) -> dict[str, int]:
    """Calls per command name since the server started (or since CONFIG RESETSTAT)."""
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The commands run between two counts, less the background ones and INFO itself."""
    diff = {name: after[name] - before.get(name, 0) for name in after}
    return {name: n for name, n in diff.items() if n and name not in BACKGROUND}

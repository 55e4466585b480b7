"""Per-conversation and per-user event logs on Redis Streams.

Every message to a person — an answer's ``search``, ``hits``, ``delta``s and
``done``, a sync notification — is an entry in a stream. The entry id is the
event id: ordered, unique and resumable. Transports (SSE, WebSocket, JSON)
only ever *read* the log, so a reconnecting client resumes exactly where it
left off, on any web instance.

Writers append through one Lua script that checks a dedup key before
``XADD`` and returns the entry id either way, so a retried or redelivered
task can never write an event twice. Each stream has an epoch, set once; a
client whose epoch differs, or whose last id was trimmed away, gets
``reset`` and refetches.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000  # approximate trim: old events go, resume beyond them means reset
DEDUP_TTL_SECONDS = 7 * 24 * 3600
EVENT_TTL_SECONDS = 90 * 24 * 3600
READ_PAGE = 500  # entries per XRANGE: a reader further behind reads page after page

# KEYS: stream, dedup key, epoch key.
# ARGV: maxlen, dedup ttl, epoch candidate, stream ttl, doorbell channel, then field/value pairs.
# Returns {entry id, epoch, 1 if written now else 0}. The doorbell says only
# "this stream has news"; a listener that misses it catches up on its next read.
_APPEND = """
local existing = redis.call('GET', KEYS[2])
if not existing then
  redis.call('SET', KEYS[3], ARGV[3], 'NX')
  existing = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 6))
  redis.call('SET', KEYS[2], existing, 'EX', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
  redis.call('PUBLISH', ARGV[5], KEYS[1])
  return {existing, redis.call('GET', KEYS[3]), 1}
end
return {existing, redis.call('GET', KEYS[3]), 0}
"""


Entries = list[tuple[str, dict[str, str]]]  # XRANGE with decode_responses=True


@dataclass(frozen=True)
class Event:
    """One log entry as every transport sends it."""

    id: str
    type: str
    conversation_id: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "conversation_id": self.conversation_id,
            "data": self.data,
        }

    @cached_property
    def json(self) -> str:
        """The event as one JSON line, serialised once however many clients receive it."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Appended:
    id: str
    epoch: str
    written: bool


@dataclass(frozen=True)
class ReadResult:
    """Events after a position, or ``reset`` when the client must refetch."""

    epoch: str
    events: list[Event]
    reset: bool = False


def _entry_to_event(entry_id: str, fields: dict[str, str]) -> Event:
    try:
        data = json.loads(fields.get("data", "{}"))
    except ValueError:
        data = {"raw": fields.get("data")}
    return Event(entry_id, fields.get("type", "unknown"), fields.get("conversation_id", ""), data)


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable tuple (ids compare numerically, not as text)."""
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def position_before(entry_id: str) -> str:
    """The position just before ``entry_id``, so reading "after" it includes that entry."""
    millis, _, seq = entry_id.partition("-")
    if int(seq or 0) > 0:
        return f"{millis}-{int(seq) - 1}"
    return f"{int(millis) - 1}-{2**64 - 1}" if int(millis) > 0 else "0"


_ENTRY_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")  # ASCII: "²".isdigit() is True
MAX_ID_PART = 2**64 - 1  # both halves of a stream id are unsigned 64-bit numbers


def is_entry_id(value: str) -> bool:
    """True for a stream entry id Redis accepts, such as ``1700000000000-0`` (or ``0``)."""
    match = _ENTRY_ID.fullmatch(value)
    if match is None:
        return False
    return int(match[1]) <= MAX_ID_PART and int(match[2] or 0) <= MAX_ID_PART


class EventLog:
    """Append to and read from event streams."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.redis = r
        self.keys = RedisKeys(settings.key_prefix)
        self._append = r.register_script(_APPEND)

    def conversation_stream(self, conversation_id: str) -> str:
        return self.keys.conversation_events(conversation_id)

    def user_stream(self, user_id: str) -> str:
        return self.keys.user_events(user_id)

    def append(
        self,
        stream: str,
        event_type: str,
        data: dict[str, Any],
        *,
        dedup_key: str,
        conversation_id: str = "",
    ) -> Appended:
        """Append once per ``dedup_key``; a repeat returns the first entry's id."""
        entry_id, epoch, written = self._run_append(
            self.redis, stream, (event_type, data, dedup_key), conversation_id
        )
        return Appended(str(entry_id), str(epoch), bool(written))

    def append_all(
        self,
        stream: str,
        events: list[tuple[str, dict[str, Any], str]],
        conversation_id: str = "",
    ) -> list[Appended]:
        """Append ``(type, data, dedup key)`` events in order, pipelined.

        Each event is its own deduplicated append, so an answer of a dozen events
        costs two round trips (redis-py checks the script is loaded, then sends
        them all) instead of a dozen. A failure part-way leaves a prefix written,
        which a retry completes (the dedup keys make the written ones no-ops).
        """
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            self._run_append(pipe, stream, event, conversation_id)
        return [
            Appended(str(entry_id), str(epoch), bool(written))
            for entry_id, epoch, written in pipe.execute()
        ]

    def _run_append(
        self,
        client: Any,
        stream: str,
        event: tuple[str, dict[str, Any], str],
        conversation_id: str,
    ) -> Any:
        event_type, data, dedup_key = event
        if not dedup_key:
            raise ValueError("every event needs a dedup key")
        fields = [
            "type",
            event_type,
            "conversation_id",
            conversation_id,
            "data",
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        ]
        return self._append(
            keys=[stream, self.keys.dedup(stream, dedup_key), self.keys.stream_epoch(stream)],
            args=[
                STREAM_MAXLEN,
                DEDUP_TTL_SECONDS,
                secrets.token_hex(8),
                EVENT_TTL_SECONDS,
                self.keys.doorbell_channel(),
                *fields,
            ],
            client=client,
        )

    def epoch(self, stream: str) -> str:
        """The stream's epoch, or ``""`` while it has none.

        Read only (one GET): thousands of open sockets read their streams, and
        a read that also wrote (``SET NX``) cost every one of them a write. The
        epoch is made by the first append; a stream without one has nothing
        to resume (never written, or gone), and a client holding an epoch
        for it gets ``reset``.
        """
        return str(self.redis.get(self.keys.stream_epoch(stream)) or "")

    def read(
        self, stream: str, *, after: str = "0", epoch: str | None = None, count: int = READ_PAGE
    ) -> ReadResult:
        """Events strictly after ``after``; ``reset`` if the position cannot be resumed.

        A position is unusable when the client's epoch is not the stream's
        (also when the log is gone: it has no epoch left), or when it is
        older than the first retained entry (or the position just before it):
        entries only leave a stream by trimming, so the client's own entry,
        and maybe more after it, is gone, and it cannot know what it missed.
        The epoch, the first entry and the page come in one round trip, and
        nothing is written.
        """
        from_start = after in ("", "0", "0-0")
        past_the_end = entry_key(after or "0") == (MAX_ID_PART, MAX_ID_PART)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.stream_epoch(stream))
        if not from_start:
            pipe.xrange(stream, count=1)
        if not past_the_end:  # nothing can follow the largest id
            pipe.xrange(stream, min="-" if from_start else f"({after}", count=count)
        replies = pipe.execute()
        current_epoch = str(replies[0] or "")
        if epoch and epoch != current_epoch:
            return ReadResult(current_epoch, [], reset=True)
        if not from_start:
            first = cast(Entries, replies[1])
            if first and entry_key(after) < entry_key(position_before(first[0][0])):
                return ReadResult(current_epoch, [], reset=True)
        entries = cast(Entries, replies[-1]) if not past_the_end else []
        return ReadResult(current_epoch, [_entry_to_event(i, f) for i, f in entries])

    def range_after(self, stream: str, after: str, count: int = READ_PAGE) -> list[Event]:
        """Up to ``count`` events after ``after``: one XRANGE, no epoch, no checks.

        For a process's shared tail (``web.realtime.relay``), which follows a
        position it already resumed; resuming a client's position is ``read``.
        """
        if entry_key(after or "0") == (MAX_ID_PART, MAX_ID_PART):
            return []
        start = "-" if after in ("", "0", "0-0") else f"({after}"
        entries = cast(Entries, self.redis.xrange(stream, min=start, count=count))
        return [_entry_to_event(i, f) for i, f in entries]

    def last_id(self, stream: str) -> str:
        entries = cast(Entries, self.redis.xrevrange(stream, count=1))
        return str(entries[0][0]) if entries else "0"

    def read_back(self, stream: str, *, before: str, count: int) -> list[Event]:
        """Up to ``count`` events strictly before ``before``, newest first.

        The assistant reads a conversation's earlier turns this way (a follow-up
        refines the last answered question), without paging through the whole log.
        """
        entries = cast(Entries, self.redis.xrevrange(stream, max=f"({before}", count=count))
        return [_entry_to_event(i, f) for i, f in entries]

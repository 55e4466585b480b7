"""Idle WebSockets cost no Redis call (issue 14 item 1), counted on a real redis-server.

The web process runs on a Redis of this test's own, so every command the
server counts came from it. Before the fix each socket's sender woke every
second and re-read its stream, writing the epoch each time (SET NX + GET +
XRANGE): thousands of idle sockets made tens of thousands of calls a second.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from devtools.servers import start_redis
from shared.core.clients import get_redis
from shared.identity.users import create_user, issue_token
from shared.realtime.eventlog import EventLog
from tests.live import start_web
from tests.redis_calls import APPEND_COMMANDS, calls_between, command_counts
from tests.wsclient import WsClient

SOCKETS = 40
IDLE_SECONDS = 4.0


@pytest.fixture()
def own_stack(tmp_path, settings):  # type: ignore[no-untyped-def]
    server = start_redis(tmp_path / "redis", appendonly=False)
    mine = dataclasses.replace(settings, redis_url=server.url)
    web = start_web(
        tmp_path,
        {"MAILCHAT_REDIS_URL": server.url, "MAILCHAT_WS_MAX_SOCKETS_PER_USER": str(SOCKETS)},
    )
    yield mine, web
    web.stop()
    server.stop()


@pytest.mark.timeout(60)
def test_idle_sockets_make_no_redis_calls_and_one_event_costs_one_read(own_stack) -> None:
    mine, web = own_stack
    r = get_redis(mine)
    user = create_user(r, mine, "idle@example.com", "idle-password")
    token = issue_token(mine, user)
    clients = []
    for _ in range(SOCKETS):
        client = WsClient(web.base, web.origin)
        client.send({"type": "auth", "token": token})
        clients.append(client)
    for client in clients:
        ready = client.receive()
        assert ready and ready["type"] == "ready"
    time.sleep(1.0)  # the connects' own calls (slot claims, last id) are done
    before = command_counts(r)
    time.sleep(IDLE_SECONDS)
    idle_calls = calls_between(before, command_counts(r))
    assert idle_calls == {}, f"{SOCKETS} idle sockets called Redis in {IDLE_SECONDS}s: {idle_calls}"

    # Still following: one event reaches every socket once, for one read of the stream.
    events = EventLog(r, mine)
    before = command_counts(r)
    appended = events.append(events.user_stream(user.id), "notification", {}, dedup_key="n1")
    for client in clients:
        frame = client.receive(timeout=10)
        assert frame and frame["id"] == appended.id
    time.sleep(0.5)
    calls = calls_between(before, command_counts(r))
    assert calls.pop("xrange", 0) <= 2, calls  # one fetch (two if a ring raced it)
    # The rest is the append itself: its script and the commands inside it (2 GETs, 2 SETs).
    assert calls.get("get", 0) <= 2 and calls.get("set", 0) <= 2, calls
    assert set(calls) <= APPEND_COMMANDS, calls
    for client in clients:
        with pytest.raises(TimeoutError):
            client.raw.receive(0.2)  # and nothing twice

"""Scenario d: Elasticsearch (noida-db) stopped for 30 s while a mailbox import runs.

A person uploads a generated mbox through ``POST /api/mail/import``; the
worker's sync indexes it batch by batch, the cursor moving only after a
batch is acknowledged. Once the import is under way the search server is
stopped (SIGTERM to its process group) for ``outage`` seconds and started
again on the same port and data directory. Meanwhile a prober asks the web
for an email every 100 ms: while the server is down every answer must be 503
with ``Retry-After`` and code ``search_unavailable`` (a 500, a 502, a hang or
a 503 without Retry-After is a failed request). The sync's retries (with
``MAILCHAT_SYNC_RETRY_BASE_SECONDS`` shortened) must then catch up.

The history treats the mailbox as a stream: every Message-ID of the file is
*sent* and, once the upload answered 202, *acked*; afterwards every document
the index holds for the person is *received* by the client ``index``. So
the checker's "lost" is an email missing from the index and its "doubled"
one indexed twice: the counts are equal exactly when the verdict is ok.
"""

from __future__ import annotations

import dataclasses
import mailbox
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos.harness import (
    Result,
    SupervisedWorker,
    chaos_settings,
    child_env,
    judge,
    together,
)
from bench.chaos.history import History
from bench.chaos.traffic import (
    Person,
    http_json,
    make_person,
)
from devtools.demo_mailbox import write_mbox
from devtools.servers import LocalServer, start_noida_elasticsearch
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.index.template import bootstrap
from shared.sync import accounts
from tests.live import start_web

NAME = "search_down"
STREAM = "mailbox"


@dataclass(frozen=True)
class Params:
    emails: int = 3000
    outage: float = 30.0
    batch: int = 100
    stop_after: float = 1.0  # seconds into the import
    catch_up_timeout: float = 240.0


SMALL = Params(emails=600, outage=3.0, batch=25, stop_after=0.3, catch_up_timeout=60.0)


class Prober(threading.Thread):
    """Asks for an email every 100 ms; right answers are 404 (no such email) while the
    search server is up and 503 + Retry-After ``search_unavailable`` while it is down."""

    def __init__(self, base: str, person: Person, history: History) -> None:
        super().__init__(name="prober", daemon=True)
        self.base, self.person, self.history = base, person, history
        self.stop = threading.Event()
        self.unavailable = 0
        self.statuses: dict[int, int] = {}

    def run(self) -> None:
        url = f"{self.base}/api/emails/{self.person.user.id}:chaos-missing"
        while not self.stop.wait(0.1):
            status, headers, body = http_json("GET", url, None, self.person.headers(), timeout=20)
            code = str(((body or {}).get("error") or {}).get("code", ""))
            retry_after = headers.get("Retry-After", "")
            down_right = status == 503 and code == "search_unavailable" and retry_after.isdigit()
            ok = status in (200, 404) or down_right
            self.unavailable += down_right
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.history.request("prober", "GET email", status, ok, f"{code} {retry_after}")


def upload(base: str, person: Person, path: Path) -> tuple[int, Any]:
    """The mbox as multipart/form-data field ``file`` (what the page's upload sends)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="chaos.mbox"\r\n'
        "Content-Type: application/mbox\r\n\r\n"
    ).encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{base}/api/mail/import",
        data=body,
        method="POST",
        headers={**person.headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    import json

    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def message_ids(path: Path) -> list[str]:
    return [str(message["Message-ID"]).strip().strip("<>") for message in mailbox.mbox(str(path))]


def indexed(settings: Settings, user_id: str, size: int) -> list[str]:
    """The Message-ID of every document the index holds for ``user_id``."""
    es = get_elasticsearch(settings)
    es.indices.refresh(index=settings.index_alias)
    found = es.search(
        index=settings.index_alias,
        query={"term": {"owner_id": user_id}},
        size=size,
        source_includes=["message_id"],
    )
    return [str(hit["_source"].get("message_id", "")) for hit in found["hits"]["hits"]]


def count(settings: Settings, user_id: str) -> int:
    try:
        get_elasticsearch(settings).indices.refresh(index=settings.index_alias)
        found = get_elasticsearch(settings).count(
            index=settings.index_alias, query={"term": {"owner_id": user_id}}
        )
        return int(found["count"])
    except Exception:  # noqa: BLE001 - down: not counted yet
        return -1


def run(settings: Settings, workdir: Path, params: Params = Params()) -> Result:
    data = workdir / "chaos-elasticsearch"
    es: LocalServer = start_noida_elasticsearch(data)
    settings = chaos_settings(
        dataclasses.replace(settings, elasticsearch_url=es.url),
        sync_retry_base_seconds=2.0,
        sync_batch_size=params.batch,
    )
    bootstrap(get_elasticsearch(settings), settings)
    env = child_env(settings)
    path = workdir / f"{NAME}.jsonl"
    history = History(path)
    web = None
    worker = None
    prober = None
    figures: dict[str, Any] = {}
    problems: list[str] = []
    try:
        web, worker = together(
            lambda: start_web(workdir, env),
            lambda: SupervisedWorker(settings, workdir / "search-down-worker.log", env),
        )
        person = make_person(settings, 1)
        mbox = workdir / "chaos.mbox"
        write_mbox(
            mbox,
            owner_address=person.user.email,
            today=datetime.now(UTC).date(),
            count=params.emails,
        )
        ids = message_ids(mbox)
        for message in ids:
            history.sent(STREAM, message)
        history.follows("index", STREAM)
        prober = Prober(web.base, person, history)
        prober.start()
        status, answer = upload(web.base, person, mbox)
        if status != 202:
            raise RuntimeError(f"upload answered {status}: {answer!r}")
        for message in ids:
            history.acked(STREAM, message)
        account_id = answer["account"]["id"]
        r = get_redis(settings)
        started = time.monotonic()
        while time.monotonic() - started < 60:  # the worker has begun the import
            account = accounts.get_account(r, settings, account_id)
            if account is not None and account.state == accounts.SYNCING:
                break
            time.sleep(0.02)
        time.sleep(params.stop_after)
        at_stop = count(settings, person.user.id)
        es.stop()
        history.fault("stop", "elasticsearch", indexed_before=at_stop)
        time.sleep(params.outage)
        es = start_noida_elasticsearch(data, es.port)
        history.fault("restart", "elasticsearch")
        back = time.monotonic()
        while time.monotonic() - back < params.catch_up_timeout:
            account = accounts.get_account(r, settings, account_id)
            done = account is not None and account.state != accounts.SYNCING
            if done and count(settings, person.user.id) >= len(ids):
                break
            time.sleep(0.5)
        caught_up = time.monotonic() - back
        time.sleep(1)  # the prober sees the server back up
        prober.stop.set()
        prober.join(30)
        for message in indexed(settings, person.user.id, len(ids) * 2 + 10):
            history.received("index", STREAM, message, "")
        account = accounts.get_account(r, settings, account_id)
        figures = {
            "emails": len(ids),
            "indexed when stopped": at_stop,
            "outage s": params.outage,
            "caught up after restart s": round(caught_up, 1),
            "503 + Retry-After while down": prober.unavailable,
            "probe statuses": dict(sorted(prober.statuses.items())),
            "account state": account.state if account else "gone",
            "worker exits (restarted)": worker.exits,
        }
        if at_stop >= len(ids):
            problems.append("the import had finished before the server was stopped")
        if not prober.unavailable:
            problems.append("no 503 + Retry-After was seen while the server was down")
    finally:
        if prober is not None:
            prober.stop.set()
        if worker is not None:
            worker.shutdown()
        if web is not None:
            web.stop()
        es.stop()
        history.close()
    return judge(NAME, path, figures, problems)

"""What the chaos tests share: an isolated broker, and proof that the checker has teeth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.chaos.harness import Result
from bench.chaos.history import check, read
from shared.core.settings import Settings


def isolated(settings: Settings, db: int, name: str) -> Settings:
    """The session's servers with a Redis database of the scenario's own: the session's
    Celery worker (database 0) must not take the scenario's tasks, or it would do the
    work of the workers the scenario kills."""
    return dataclasses.replace(
        settings,
        redis_url=settings.redis_url.rsplit("/", 1)[0] + f"/{db}",
        key_prefix=f"chaos-{name}:",
    )


def assert_ok_and_checked(result: Result, *fault_kinds: str) -> None:
    """The run is clean, its history holds the faults injected, and the same history with
    one receipt dropped and another repeated is judged lost and doubled."""
    assert result.ok, "\n".join(result.lines())
    kinds = {fault["kind"] for fault in result.verdict.faults}
    assert set(fault_kinds) <= kinds, kinds
    assert result.verdict.acked > 0 and result.verdict.received >= result.verdict.acked
    records = read(result.history)
    received = [r for r in records if r["op"] == "received"]
    tampered = [r for r in records if r is not received[0]] + [dict(received[-1])]
    path = Path(str(result.history) + ".tampered")
    path.write_text("".join(json.dumps(r) + "\n" for r in tampered))
    verdict = check(read(path))
    assert [x["message"] for x in verdict.lost] == [received[0]["message"]]
    assert [x["message"] for x in verdict.doubled] == [received[-1]["message"]]

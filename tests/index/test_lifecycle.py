"""Index lifecycle: rollover, retention, the lock, bad input, native ILM, beat.

Every test works on its own alias and template (``isolated``), never on the
shared ``gmail_emails`` that other tests write to. Clocks are passed in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.core.locks import LockBusy, RedisLock, hold
from shared.core.settings import Settings
from shared.index.lifecycle import LifecycleError, beat_schedule, retention, rollover, status
from shared.index.lifecycle.policy import parse_duration, parse_size
from shared.index.lifecycle.state import index_name
from shared.index.template import (
    META_KEY,
    TEMPLATE_VERSION,
    bootstrap,
    first_index,
    template_body,
)
from shared.index.writer import ProviderMessage, import_messages
from tests.conftest import PROJECT_ROOT

# -- helpers other lifecycle test modules share ------------------------------------------


def isolated(settings: Settings, **changes: Any) -> Settings:
    """The session settings pointed at a fresh alias and template of this test's own."""
    tag = secrets.token_hex(4)
    return dataclasses.replace(
        settings, index_alias=f"lc_{tag}_emails", index_template=f"lc-{tag}-template", **changes
    )


def raw_email(key: str, when: datetime, subject: str = "hello") -> bytes:
    return (
        f"From: Sender <sender@example.com>\r\nTo: owner@example.com\r\n"
        f"Subject: {subject}\r\nDate: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        f"Message-ID: <{key}@lifecycle.test>\r\n\r\nbody of {key}\r\n"
    ).encode()


def message(key: str, when: datetime, labels: tuple[str, ...] = ("Inbox",)) -> ProviderMessage:
    return ProviderMessage(raw=raw_email(key, when), labels=labels)


def nth(settings: Settings, number: int) -> str:
    """The name rollover gives generation ``number`` (``-v<N>-`` for template versions 2+)."""
    return index_name(settings.index_alias, number, TEMPLATE_VERSION)


def behind(es: Any, alias: str) -> dict[str, bool]:
    """index name -> is it the write index, for every index behind ``alias``."""
    found = es.indices.get_alias(name=alias).body
    return {
        name: bool(body["aliases"][alias].get("is_write_index")) for name, body in found.items()
    }


def backdate(es: Any, index: str, days: float) -> None:
    """Make an index look ``days`` old in real time (for runs that use the real clock)."""
    meta = es.indices.get_mapping(index=index)[index]["mappings"].get("_meta", {})
    stamp = dict(meta.get(META_KEY, {}))
    stamp["created_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    es.indices.put_mapping(index=index, meta={META_KEY: stamp})


def counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def run_flask(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def bootstrapped(settings: Settings) -> tuple[Settings, Any, Any]:
    """(settings, es, redis) for a freshly bootstrapped alias of the caller's own."""
    own = isolated(settings)
    es = get_elasticsearch(own)
    bootstrap(es, own)
    return own, es, get_redis(own)


@pytest.fixture()
def lc(settings):  # type: ignore[no-untyped-def]
    return bootstrapped(settings)


# -- rollover ---------------------------------------------------------------------------


def test_rollover_at_max_age_with_stamps_and_metrics(lc) -> None:
    s, es, r = lc
    start = datetime.now(UTC)
    import_messages(es, s, "u_lc", [message("a", start)], source="test", refresh=True)
    before = counter("index_rollovers_total", {"outcome": "rolled_over"})

    young = rollover(es, r, s, now=start + timedelta(days=29, hours=23))
    assert young.outcome == "not_due" and young.met == {
        "max_age": False,
        "max_primary_shard_size": False,
    }
    due = start + timedelta(days=30, hours=1)
    rolled = rollover(es, r, s, now=due)
    assert rolled.outcome == "rolled_over"
    assert rolled.new_index == nth(s, 2)
    assert behind(es, s.index_alias) == {first_index(s): False, nth(s, 2): True}
    assert counter("index_rollovers_total", {"outcome": "rolled_over"}) == before + 1
    assert counter("index_write_index_age_seconds") >= 30 * 86400

    assert rollover(es, r, s, now=due).outcome == "not_due", "the new write index is new"
    later = due + timedelta(days=31)
    again = rollover(es, r, s, now=later)
    assert again.outcome == "empty", "the new write index is empty and must not roll"
    state = status(es, r, s, now=later)
    old = state["indices"][0]
    assert old["rolled_over_at"] == due.isoformat()
    assert old["rolled_over_at_source"] == "mailchat"
    assert state["indices"][1]["created_at"] == due.isoformat()
    assert state["last_runs"]["index.rollover"]["outcome"] == "empty"


def test_rollover_at_max_primary_shard_size(lc) -> None:
    s, es, r = lc
    small = dataclasses.replace(s, rollover_max_primary_shard_size="1kb")
    now = datetime.now(UTC)
    messages = [message(f"big{i}", now) for i in range(6)]
    import_messages(es, small, "u_lc", messages, source="test", refresh=True)
    result = rollover(es, r, small, now=now)
    assert result.met["max_primary_shard_size"] and not result.met["max_age"]
    assert result.outcome == "rolled_over"


def test_empty_write_index_is_never_rolled(lc) -> None:
    s, es, r = lc
    result = rollover(es, r, s, now=datetime.now(UTC) + timedelta(days=400))
    assert result.outcome == "empty" and result.met["max_age"]
    assert list(behind(es, s.index_alias)) == [first_index(s)]


def test_dry_run_cli_prints_conditions_values_and_plan(lc) -> None:
    s, es, r = lc
    import_messages(es, s, "u_lc", [message("cli", datetime.now(UTC))], source="t", refresh=True)
    backdate(es, first_index(s), 31)
    env = {"MAILCHAT_INDEX_ALIAS": s.index_alias, "MAILCHAT_INDEX_TEMPLATE": s.index_template}

    plain = run_flask("index", "rollover", "--dry-run", env=env)
    assert plain.returncode == 0, plain.stderr
    assert "max_age 30d: current 31d" in plain.stdout and "-> met" in plain.stdout
    assert "max_primary_shard_size 20gb: current" in plain.stdout
    assert f"would roll {first_index(s)} over to {nth(s, 2)}" in plain.stdout
    assert list(behind(es, s.index_alias)) == [first_index(s)], "a dry run changes nothing"

    as_json = json.loads(run_flask("index", "rollover", "--dry-run", "--json", env=env).stdout)
    assert as_json["outcome"] == "would_roll_over" and as_json["current"]["docs"] == 1

    retention_plan = run_flask("index", "retention", "--dry-run", env=env)
    assert retention_plan.returncode == 0 and "nothing_due" in retention_plan.stdout

    done = run_flask("index", "rollover", env=env)
    assert done.returncode == 0 and "rolled_over" in done.stdout
    shown = json.loads(run_flask("index", "status", env=env).stdout)
    assert shown["alias"] == s.index_alias and shown["write_index"] == nth(s, 2)
    assert [i["docs"] for i in shown["indices"]] == [1, 0]
    assert {"created_at", "rolled_over_at", "primary_bytes", "template_version"} <= set(
        shown["indices"][0]
    )


# -- retention --------------------------------------------------------------------------


def test_retention_deletes_only_old_non_write_indices(lc) -> None:
    s, es, r = lc
    start = datetime.now(UTC)
    for month in range(3):
        when = start + timedelta(days=30 * month)
        import_messages(es, s, "u_lc", [message(f"m{month}", when)], source="t", refresh=True)
        assert rollover(es, r, s, now=when + timedelta(days=30)).outcome == "rolled_over"
    # Rolled at day 30, 60, 90; the write index -000004 is empty.
    plan = retention(es, r, s, now=start + timedelta(days=121), dry_run=True)
    assert [d["name"] for d in plan.deleted] == [first_index(s)]
    assert len(behind(es, s.index_alias)) == 4

    before = counter("index_retention_deleted_total")
    done = retention(es, r, s, now=start + timedelta(days=151))
    assert [d["name"] for d in done.deleted] == [first_index(s), nth(s, 2)]
    assert counter("index_retention_deleted_total") == before + 2
    assert behind(es, s.index_alias) == {
        nth(s, 3): False,
        nth(s, 4): True,
    }
    far = retention(es, r, s, now=start + timedelta(days=10_000))
    assert [d["name"] for d in far.deleted] == [nth(s, 3)]
    assert behind(es, s.index_alias) == {nth(s, 4): True}, "never the write index"


def test_retention_falls_back_to_newest_received_at(lc) -> None:
    """An index rolled by hand carries no Mailchat stamp; noida-db records no rollover_info."""
    s, es, r = lc
    old = datetime(2020, 1, 10, tzinfo=UTC)
    kept = dataclasses.replace(s, retention_days=0)  # filled while everything was kept
    import_messages(es, kept, "u_lc", [message("old1", old - timedelta(days=3))], source="t")
    import_messages(es, kept, "u_lc", [message("old2", old)], source="t", refresh=True)
    es.indices.rollover(alias=s.index_alias)  # by hand, as an operator or ILM would
    rolled = status(es, r, s)["indices"][0]
    if rolled["rolled_over_at_source"] == "server":
        # Elasticsearch records rollover_info itself: the index was rolled just now.
        assert datetime.fromisoformat(rolled["rolled_over_at"]) > old + timedelta(days=365)
        assert retention(es, r, s).deleted == []
    else:  # noida-db records none: the newest email inside dates the index
        assert rolled["rolled_over_at_source"] == "newest_received_at"
        assert rolled["rolled_over_at"] == old.isoformat()
        assert [d["name"] for d in retention(es, r, s).deleted] == [first_index(s)]


# -- one actor at a time ------------------------------------------------------------------


def test_lock_is_released_only_by_its_holder(settings) -> None:
    r = get_redis(settings)
    key = f"{settings.key_prefix}test-lock:{secrets.token_hex(4)}"
    first = RedisLock(r, key, 30, owner="one")
    second = RedisLock(r, key, 30, owner="two")
    assert first.acquire() and not second.acquire()
    assert not second.release() and r.get(key) == first.token, "a non-holder cannot release"
    assert not second.extend()
    r.set(key, "taken-over-after-expiry")  # as if first's lock expired and another took it
    assert not first.release() and r.get(key) == "taken-over-after-expiry"
    r.delete(key)
    with hold(r, key, 30) as held:
        assert 0 < r.pttl(key) <= 30_000
        with pytest.raises(LockBusy):
            with hold(r, key, 30):
                pass
        assert held.extend(60) and r.pttl(key) > 30_000
    assert r.get(key) is None


def test_a_held_lock_stops_both_jobs(lc) -> None:
    s, es, r = lc
    now = datetime.now(UTC) + timedelta(days=200)
    import_messages(es, s, "u_lc", [message("x", now)], source="t", refresh=True)
    key = RedisKeys(s.key_prefix).index_lifecycle_lock(s.index_alias)
    with hold(r, key, 60, owner="someone-else"):
        assert rollover(es, r, s, now=now).outcome == "locked"
        assert retention(es, r, s, now=now).outcome == "locked"
    assert list(behind(es, s.index_alias)) == [first_index(s)]
    assert rollover(es, r, s, now=now).outcome == "rolled_over"


def test_two_rollovers_at_the_same_moment_roll_once(lc) -> None:
    s, es, r = lc
    now = datetime.now(UTC) + timedelta(days=31)
    import_messages(es, s, "u_lc", [message("race", now)], source="t", refresh=True)
    gate = threading.Barrier(6)
    outcomes: list[str] = []

    def run() -> None:
        gate.wait()
        outcomes.append(rollover(es, r, s, now=now, owner="thread").outcome)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("rolled_over") == 1, outcomes
    assert set(outcomes) <= {"rolled_over", "locked", "not_due"}
    assert sorted(behind(es, s.index_alias)) == [first_index(s), nth(s, 2)]


def test_two_rollover_tasks_on_the_worker_roll_once(lc, celery_worker) -> None:
    from celery_app import create_celery
    from shared.core.task_names import INDEX_ROLLOVER

    s, es, r = lc
    import_messages(es, s, "u_lc", [message("w", datetime.now(UTC))], source="t", refresh=True)
    backdate(es, first_index(s), 31)
    client = create_celery(s, with_tasks=False)
    kwargs = {"alias": s.index_alias, "template": s.index_template}
    # A result is wanted here (the web's client asks for none unless told).
    pending = [
        client.send_task(INDEX_ROLLOVER, kwargs=kwargs, ignore_result=False) for _ in range(2)
    ]
    outcomes = sorted(p.get(timeout=60)["outcome"] for p in pending)
    assert outcomes in (["locked", "rolled_over"], ["not_due", "rolled_over"]), outcomes
    assert sorted(behind(es, s.index_alias)) == [first_index(s), nth(s, 2)]


def test_a_rollover_computed_from_a_stale_view_cannot_roll_twice(lc) -> None:
    """Without the lock (expired, or a foreign actor), the named target still guards."""
    from shared.index.lifecycle.jobs import roll_write_index
    from shared.index.lifecycle.state import read_state

    s, es, r = lc
    now = datetime.now(UTC)
    import_messages(es, s, "u_lc", [message("stale", now)], source="t", refresh=True)
    stale_view = read_state(es, s).write_index
    second = f"{s.index_alias}-000002"
    assert roll_write_index(es, s, stale_view, second, 1, now) == "rolled_over"
    import_messages(es, s, "u_lc", [message("more", now)], source="t", refresh=True)
    assert roll_write_index(es, s, stale_view, second, 1, now) == "raced"
    assert sorted(behind(es, s.index_alias)) == [first_index(s), second]

    es.indices.create(index=f"{s.index_alias}-000003")  # a stray index, not behind the alias
    current = read_state(es, s).write_index
    with pytest.raises(LifecycleError, match="already exists but is not the write index"):
        roll_write_index(es, s, current, f"{s.index_alias}-000003", 1, now)
    assert behind(es, s.index_alias)[second] is True


# -- bad input ----------------------------------------------------------------------------


def _indices_matching(es: Any, s: Settings) -> set[str]:
    return set(es.indices.get(index=f"{s.index_alias}-*", allow_no_indices=True).body)


def test_missing_alias_fails_loudly_and_changes_nothing(settings) -> None:
    s = isolated(settings)
    es, r = get_elasticsearch(s), get_redis(s)
    failed = counter("index_rollovers_total", {"outcome": "failed"})
    for job in (rollover, retention, status):
        with pytest.raises(LifecycleError, match="does not exist.*index bootstrap"):
            job(es, r, s)
    assert _indices_matching(es, s) == set()
    assert counter("index_rollovers_total", {"outcome": "failed"}) == failed + 1
    result = run_flask(
        "index", "rollover", env={"MAILCHAT_INDEX_ALIAS": s.index_alias}
    )  # the CLI says the same, with a non-zero exit
    assert result.returncode == 1 and "index bootstrap" in result.stderr


@pytest.mark.parametrize("indices", [1, 2])
def test_unmarked_write_index_fails_loudly_and_changes_nothing(settings, indices: int) -> None:
    s = isolated(settings)
    es, r = get_elasticsearch(s), get_redis(s)
    es.indices.put_index_template(name=s.index_template, **template_body(s))
    names = [f"{s.index_alias}-{n:06d}" for n in range(1, indices + 1)]
    for name in names:
        es.indices.create(index=name, aliases={s.index_alias: {}})  # no is_write_index
        es.index(index=name, document={"owner_id": "u", "received_at": "2020-01-01"})
    es.indices.refresh(index=",".join(names))
    later = datetime.now(UTC) + timedelta(days=500)
    for job in (rollover, retention):
        with pytest.raises(LifecycleError, match="no write index marked") as caught:
            job(es, r, s, now=later)
        assert f'"index":"{names[-1]}","alias":"{s.index_alias}","is_write_index":true' in str(
            caught.value
        ), "the message carries the fix"
    assert _indices_matching(es, s) == set(names)
    assert behind(es, s.index_alias) == dict.fromkeys(names, False)


def test_a_concrete_index_named_like_the_alias_is_refused(settings) -> None:
    s = isolated(settings)
    es, r = get_elasticsearch(s), get_redis(s)
    es.indices.create(index=s.index_alias)
    with pytest.raises(LifecycleError, match="concrete index, not an alias"):
        rollover(es, r, s)


def test_bad_policy_settings_name_their_variable(lc) -> None:
    s, es, r = lc
    failed = counter("index_rollovers_total", {"outcome": "failed"})
    with pytest.raises(LifecycleError, match="MAILCHAT_ROLLOVER_MAX_AGE"):
        rollover(es, r, dataclasses.replace(s, rollover_max_age="30 dayz"))
    assert counter("index_rollovers_total", {"outcome": "failed"}) == failed + 1
    assert status(es, r, s)["last_runs"]["index.rollover"]["outcome"] == "failed"
    with pytest.raises(LifecycleError, match="MAILCHAT_LIFECYCLE_OWNER"):
        retention(es, r, dataclasses.replace(s, lifecycle_owner="both"))
    assert parse_duration("x", "90m") == timedelta(minutes=90)
    assert parse_size("x", "20gb") == 20 * 1024**3


# -- native ILM: one owner, never both ------------------------------------------------------


def test_native_ilm_owner_makes_the_jobs_stand_down(lc) -> None:
    s, es, r = lc
    ilm = dataclasses.replace(s, lifecycle_owner="elasticsearch")
    now = datetime.now(UTC) + timedelta(days=500)
    import_messages(es, s, "u_lc", [message("ilm", now)], source="t", refresh=True)
    assert rollover(es, r, ilm, now=now).outcome == "stood_down"
    assert retention(es, r, ilm, now=now).outcome == "stood_down"
    assert list(behind(es, s.index_alias)) == [first_index(s)]
    assert beat_schedule(ilm) == {}
    body = template_body(ilm)["template"]["settings"]
    assert body["index.lifecycle.name"] == "emails-rolling-90d"
    assert body["index.lifecycle.rollover_alias"] == s.index_alias
    assert "index.lifecycle.name" not in template_body(s)["template"]["settings"]


def test_mailchat_refuses_indices_managed_by_ilm(settings) -> None:
    s = isolated(settings)
    es, r = get_elasticsearch(s), get_redis(s)
    es.indices.put_index_template(name=s.index_template, **template_body(s))
    es.indices.create(
        index=first_index(s),
        aliases={s.index_alias: {"is_write_index": True}},
        settings={"index.lifecycle.name": "emails-rolling-90d"},
    )
    with pytest.raises(LifecycleError, match="MAILCHAT_LIFECYCLE_OWNER=elasticsearch"):
        rollover(es, r, s)


def test_deploy_ilm_policy_matches_the_default_settings() -> None:
    policy = json.loads((PROJECT_ROOT / "deploy/ilm/emails-rolling-90d.json").read_text())
    phases = policy["policy"]["phases"]
    defaults = Settings()
    assert phases["hot"]["actions"]["rollover"] == {
        "max_age": defaults.rollover_max_age,
        "max_primary_shard_size": defaults.rollover_max_primary_shard_size,
        "min_docs": 1,
    }
    assert phases["delete"]["min_age"] == f"{defaults.retention_days}d"
    assert phases["delete"]["actions"] == {"delete": {}}


# -- beat -----------------------------------------------------------------------------------


def test_beat_schedule_is_built_from_settings() -> None:
    from celery_app import create_celery

    custom = Settings(redis_url="redis://127.0.0.1:1/0", rollover_interval_seconds=120)
    schedule = create_celery(custom, with_tasks=False).conf.beat_schedule
    assert schedule["index.rollover"]["task"] == "index.rollover"
    assert schedule["index.rollover"]["schedule"] == 120.0
    assert schedule["index.retention"]["schedule"] == 86400.0
    ilm = dataclasses.replace(custom, lifecycle_owner="elasticsearch")
    assert "index.rollover" not in create_celery(ilm, with_tasks=False).conf.beat_schedule


def test_real_beat_runs_both_jobs_on_the_worker(settings, celery_worker, tmp_path: Path) -> None:
    """A real ``celery beat`` sends both jobs; the worker runs them on the session alias."""
    r = get_redis(settings)
    runs_key = RedisKeys(settings.key_prefix).index_lifecycle_runs(settings.index_alias)
    r.delete(runs_key)
    env = {
        **os.environ,
        "MAILCHAT_ROLLOVER_INTERVAL_SECONDS": "1",
        "MAILCHAT_RETENTION_INTERVAL_SECONDS": "1",
    }
    command = [sys.executable, "-m", "celery", "-A", "celery_app", "beat", "--loglevel=INFO"]
    with open(tmp_path / "beat.log", "wb") as sink:
        beat = subprocess.Popen(
            [*command, f"--schedule={tmp_path / 'beat-schedule'}"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        runs: dict[str, str] = {}
        while time.monotonic() < deadline and len(runs) < 2:
            runs = r.hgetall(runs_key)
            time.sleep(0.2)
    finally:
        beat.terminate()
        beat.wait(20)
    assert set(runs) == {"index.rollover", "index.retention"}, (tmp_path / "beat.log").read_text()
    assert json.loads(runs["index.rollover"])["outcome"] in ("not_due", "empty", "locked")
    assert json.loads(runs["index.retention"])["outcome"] in ("nothing_due", "locked")

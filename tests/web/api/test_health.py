"""Liveness and deep readiness (/healthz, /readyz) against real Redis, noida-db and a worker."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from devtools.servers import start_redis

CHECK_NAMES = {"redis", "pubsub", "elasticsearch", "celery"}


def _app(settings, **changes):  # type: ignore[no-untyped-def]
    from web import create_app

    values = {"readyz_startup_grace_seconds": 0.0, "readyz_cache_seconds": 0.0, **changes}
    return create_app(dataclasses.replace(settings, **values))


@pytest.mark.timeout(60)
def test_readyz_names_every_check_and_its_time(settings, celery_worker) -> None:
    response = _app(settings).test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    checks = response.get_json()["checks"]
    assert set(checks) == CHECK_NAMES
    for name, check in checks.items():
        assert check["status"] == "ok", name
        assert 0 <= check["seconds"] < 2, name


@pytest.mark.timeout(60)
def test_healthz_stays_cheap_when_redis_is_gone(settings, tmp_path) -> None:
    own_redis = start_redis(tmp_path / "redis", appendonly=False)
    client = _app(settings, redis_url=own_redis.url).test_client()
    own_redis.kill()
    started = time.monotonic()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert time.monotonic() - started < 0.5


@pytest.mark.timeout(60)
def test_readyz_fails_when_redis_is_stopped(settings, tmp_path) -> None:
    """A second app on its own redis-server: stop that server, readiness names it."""
    own_redis = start_redis(tmp_path / "redis", appendonly=False)
    client = _app(settings, redis_url=own_redis.url).test_client()
    before = client.get("/readyz").get_json()["checks"]
    assert before["redis"]["status"] == "ok" and before["pubsub"]["status"] == "ok"
    own_redis.kill()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["field"] == "redis" and "redis: unreachable" in body["error"]["message"]
    assert body["checks"]["redis"]["status"].startswith("unreachable")
    assert body["checks"]["pubsub"]["status"] != "ok"
    assert body["checks"]["elasticsearch"]["status"] == "ok"


@pytest.mark.timeout(60)
def test_readyz_fails_within_a_second_when_no_worker_answers(settings, celery_worker) -> None:
    """Database 7 of the same server: Redis answers, but no worker consumes that broker."""
    lonely = settings.redis_url.rsplit("/", 1)[0] + "/7"
    started = time.monotonic()
    response = _app(settings, redis_url=lonely).test_client().get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"]["field"] == "celery"
    assert body["checks"]["celery"]["status"] == "no worker answered"
    assert body["checks"]["redis"]["status"] == "ok"
    assert 0.9 <= body["checks"]["celery"]["seconds"] < 1.6
    assert elapsed < 2.5  # the checks ran side by side, each within its own timeout


@pytest.mark.timeout(60)
def test_readyz_fails_when_alias_is_missing(settings, celery_worker) -> None:
    response = _app(settings, index_alias="no_such_alias").test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"]["field"] == "elasticsearch"
    assert body["checks"]["elasticsearch"]["status"] == "write alias missing"


@pytest.mark.timeout(60)
def test_readyz_result_is_cached(settings, tmp_path) -> None:
    own_redis = start_redis(tmp_path / "redis", appendonly=False)
    client = _app(settings, redis_url=own_redis.url, readyz_cache_seconds=30.0).test_client()
    first = client.get("/readyz").get_json()["checks"]
    own_redis.kill()
    second = client.get("/readyz").get_json()["checks"]
    assert second == first  # the same round, not a new one against the dead server
    assert second["redis"]["status"] == "ok"


@pytest.mark.timeout(60)
def test_startup_grace_answers_starting_without_warnings(settings, tmp_path, caplog) -> None:
    own_redis = start_redis(tmp_path / "redis", appendonly=False)
    client = _app(
        settings, redis_url=own_redis.url, readyz_startup_grace_seconds=60.0
    ).test_client()
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="web.api.health"):
        response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "starting"
    assert not [r for r in caplog.records if r.name == "web.api.health"]

"""Per-person limits on syncs and uploads (Flask-Limiter and ``limits`` on Redis), counted."""

from __future__ import annotations

import dataclasses

import pytest

from shared.core.settings import SettingsError
from tests.conftest import auth_header
from tests.web.test_client_api import metric_value

pytestmark = pytest.mark.timeout(60)


def app_with(settings, **limits):  # type: ignore[no-untyped-def]
    from web import create_app

    return create_app(dataclasses.replace(settings, **limits)).test_client()


def test_syncs_are_limited_per_person_and_counted(settings, make_user) -> None:
    client = app_with(settings, sync_rate_limit="2 per minute")
    user, _ = make_user("sync-limit")
    other, _ = make_user("sync-limit")
    before = metric_value(client, "http_rate_limited_total", '{limit="sync"}')
    statuses = [
        client.post("/api/accounts/acc_none/sync", headers=auth_header(settings, user)).status_code
        for _ in range(3)
    ]
    assert statuses == [404, 404, 429]  # a sync asked for costs server time, found or not
    refused = client.post("/api/accounts/acc_none/sync", headers=auth_header(settings, user))
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert metric_value(client, "http_rate_limited_total", '{limit="sync"}') == before + 2
    mine = client.post("/api/accounts/acc_none/sync", headers=auth_header(settings, other))
    assert mine.status_code == 404


def test_uploads_are_limited_per_person(settings, make_user) -> None:
    client = app_with(settings, upload_rate_limit="2 per hour")
    user, _ = make_user("upload-limit")
    statuses = [
        client.post("/api/mail/import", data=b"x", headers=auth_header(settings, user)).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_upload_bytes_are_limited_per_person_per_day(settings, make_user) -> None:
    client = app_with(settings, upload_bytes_per_day=1000)
    user, _ = make_user("upload-bytes")
    before = metric_value(client, "http_rate_limited_total", '{limit="upload_bytes"}')
    first = client.post("/api/mail/import", data=b"x" * 600, headers=auth_header(settings, user))
    assert first.status_code == 400  # not multipart, but its bytes were spent
    second = client.post("/api/mail/import", data=b"x" * 600, headers=auth_header(settings, user))
    assert second.status_code == 429
    assert second.get_json()["error"]["field"] == "file"
    assert int(second.headers["Retry-After"]) > 3600  # a daily budget
    assert metric_value(client, "http_rate_limited_total", '{limit="upload_bytes"}') == before + 1


def test_a_bad_limit_setting_stops_the_app_from_starting(settings) -> None:
    from web import create_app

    with pytest.raises(SettingsError, match="MAILCHAT_ASK_RATE_LIMIT"):
        create_app(dataclasses.replace(settings, ask_rate_limit="lots"))


def test_each_app_keeps_its_own_limit_storage(settings, make_user) -> None:
    """A second app in the process (on a Redis that is gone) must not take over the first's
    counters: Flask-Limiter keeps one storage per Limiter, the last init_app's."""
    first = app_with(settings, sync_rate_limit="50 per minute")
    app_with(settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    user, _ = make_user("own-storage")
    response = first.post("/api/accounts/acc_none/sync", headers=auth_header(settings, user))
    assert response.status_code == 404, response.get_json()

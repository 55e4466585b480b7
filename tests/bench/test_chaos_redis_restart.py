"""make chaos, scenario b, small: Redis killed and restarted (AOF, fsync always) mid-traffic."""

from __future__ import annotations

import pytest

from bench.chaos import redis_restart
from tests.bench.chaos_support import assert_ok_and_checked

pytestmark = pytest.mark.timeout(90)


def test_nothing_acknowledged_is_lost_when_redis_restarts(settings, tmp_path) -> None:
    # The scenario starts a Redis of its own (it kills it); search is the session's.
    result = redis_restart.run(settings, tmp_path, redis_restart.SMALL)
    assert_ok_and_checked(result, "kill", "restart")
    assert result.figures["client reconnects"] >= 1
    assert result.figures["resets"] == 0  # the epochs survived: AOF kept them

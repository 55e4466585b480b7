"""make chaos, scenario a, small: workers killed with SIGKILL mid-delivery; each event once."""

from __future__ import annotations

import pytest

from bench.chaos import workers_killed
from tests.bench.chaos_support import assert_ok_and_checked, isolated

pytestmark = pytest.mark.timeout(90)


def test_every_delivery_arrives_once_while_workers_are_killed(settings, tmp_path) -> None:
    result = workers_killed.run(isolated(settings, 5, "a"), tmp_path, workers_killed.SMALL)
    assert_ok_and_checked(result, "kill")
    assert result.figures["workers killed"] >= 1

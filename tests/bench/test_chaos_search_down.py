"""make chaos, scenario d, small: the search server stopped mid-import; 503s, then catch-up."""

from __future__ import annotations

import pytest

from bench.chaos import search_down
from tests.bench.chaos_support import assert_ok_and_checked, isolated

pytestmark = pytest.mark.timeout(90)


def test_search_down_answers_503_and_the_import_catches_up(settings, tmp_path) -> None:
    # Its own search server (it stops it) and its own broker database (its worker imports
    # into that server; the session's worker must not take the task).
    result = search_down.run(isolated(settings, 7, "d"), tmp_path, search_down.SMALL)
    assert_ok_and_checked(result, "stop", "restart")
    assert result.figures["503 + Retry-After while down"] > 0
    assert result.verdict.acked == result.verdict.received == search_down.SMALL.emails

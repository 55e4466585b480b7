"""make chaos, scenario c, small: each of two web instances behind nginx gets SIGTERM in turn.

Before deploy/nginx/nginx.conf set ``max_fails=0`` this failed: nginx still
counted the restarted instance as down (``fail_timeout=10s``) when the other
one stopped, and answered 502 "no live upstreams" (62 of 872 requests)."""

from __future__ import annotations

import pytest

from bench.chaos import web_sigterm
from bench.chaos.harness import nginx_binary
from tests.bench.chaos_support import assert_ok_and_checked, isolated

pytestmark = pytest.mark.timeout(120)


def test_rolling_sigterm_fails_no_request_and_every_client_resumes(settings, tmp_path) -> None:
    if nginx_binary() is None:
        pytest.skip("nginx missing; install it with: apt-get install nginx")
    result = web_sigterm.run(isolated(settings, 6, "c"), tmp_path, web_sigterm.SMALL)
    assert_ok_and_checked(result, "sigterm", "restart")
    assert result.verdict.requests > 0 and not result.verdict.failed_requests
    assert all(times >= 1 for times in result.verdict.resumes.values())
    # Every client (the sockets, one SSE stream per conversation) resumed.
    clients = web_sigterm.SMALL.websockets + web_sigterm.SMALL.conversations
    assert len(result.verdict.resumes) == clients

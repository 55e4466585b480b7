"""Several hosts in network namespaces: a web host cut off loses and doubles nothing.

Needs root and ``ip netns`` (iproute2, which ``.ci/run`` installs): without
them these tests skip, and under ``MAILCHAT_NO_SKIPS=1`` (CI) that skip fails.
The scenario test is the short form of ``python -m bench.chaos.netns``: an 8 s
cut instead of 20 s, and a 3 s visibility timeout so redelivery still happens
while web1 is away.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos.netns import Plan, run
from bench.chaos.topology import OWNERS_DIR, Topology, ip, sweep_stale, unusable_reason

REASON = unusable_reason() if sys.platform == "linux" else "network namespaces are Linux only"


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    if REASON:
        pytest.skip(REASON)


def _ours(run_id: str) -> list[str]:
    """This run's namespaces and links still on the machine."""
    names = ip("netns", "list").stdout + ip("-o", "link", "show").stdout
    return [word for word in names.split() if f"-{run_id}-" in word]


def _connects(net: Topology, host: str, port: int) -> bool:
    """Whether ``host`` reaches the root namespace (the bridge's address) on ``port``."""
    probe = f"import socket; socket.create_connection(({net.gateway!r}, {port}), timeout=1)"
    done = subprocess.run(
        net[host].command(sys.executable, "-c", probe), capture_output=True, timeout=20
    )
    return done.returncode == 0


@pytest.mark.timeout(30)
def test_a_cut_host_reaches_nothing_and_a_restored_one_does_again() -> None:
    with Topology(["web1", "web2"]) as net, socket.socket() as listener:
        listener.bind((net.gateway, 0))
        listener.listen(8)
        port = listener.getsockname()[1]  # the kernel completes handshakes into the backlog
        assert _connects(net, "web1", port)
        net.cut("web1")
        assert not _connects(net, "web1", port)
        assert _connects(net, "web2", port)  # only web1's cable was pulled
        net.restore("web1")
        assert _connects(net, "web1", port)


@pytest.mark.timeout(30)
def test_the_topology_is_removed_when_the_run_fails() -> None:
    with pytest.raises(RuntimeError, match="mid-run"), Topology(["data", "web1"]) as net:
        run_id = net.run_id
        assert len(_ours(run_id)) >= 4  # two namespaces, the bridge, the cables
        raise RuntimeError("mid-run")
    assert _ours(run_id) == []
    assert not (OWNERS_DIR / run_id).exists()


@pytest.mark.timeout(30)
def test_leftovers_of_a_killed_run_are_swept_and_a_live_runs_are_not() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with Topology(["web1"]) as live, Topology(["web1"]) as killed:
        (OWNERS_DIR / killed.run_id).write_text(str(dead.pid))  # as if its owner was killed
        removed = sweep_stale()
        assert f"mc-{killed.run_id}-web1" in removed
        assert _ours(killed.run_id) == []
        assert _ours(live.run_id) != []
        assert (OWNERS_DIR / live.run_id).exists()
    assert _ours(live.run_id) == []


@pytest.mark.timeout(90)
def test_web1_cut_off_its_clients_resume_on_web2_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    plan = Plan(
        cut_seconds=8,
        before_seconds=4,
        after_seconds=3,
        conversations=4,
        burst=20,
        drain_seconds=20,
        visibility_timeout_seconds=3,
    )
    found, outcome = run(plan, tmp_path)
    figures = {figure.name: figure.value for figure in found}
    verdict = outcome["verdict"]
    assert verdict.ok, verdict.summary()
    assert outcome["drained"], "some acknowledged deliveries never reached a follower"
    assert verdict.acked >= plan.burst * 10
    assert [f["kind"] for f in verdict.faults] == ["cut", "restore"]  # the history says what hit
    for follower in outcome["followers"]:
        if follower.home == 0:  # resumed at home, then on web2 after the cut
            assert verdict.resumes[follower.name] >= 2, follower.name
    # Every follower homed on web1 reconnected to web2 after the cut, and got events there.
    cut = outcome["cut"]
    for follower in outcome["followers"]:
        if follower.home == 0:
            moved = [c for c in follower.connections if c.web == 1 and c.ready_at > cut.at]
            assert moved and sum(c.events for c in moved) > 0, follower.name
        assert follower.resets == 0 and follower.errors == []
    assert figures["netns.clients_failed_over"] == plan.conversations
    # The cut comes mid-burst, so web1's worker holds unacknowledged tasks (it
    # prefetches one per process); they are handed to web2's worker by the visibility
    # timeout and their events arrive before web1's link comes back.
    assert cut.error == ""
    assert cut.held_messages, "web1's worker held no delivery at the cut: nothing to redeliver"
    assert cut.redelivered == cut.held
    assert outcome["held_arrived_during_cut"] == len(cut.held_messages)
    # The control (a client resuming from the start) shows the checker would see a double.
    assert outcome["control"].doubled
    assert all(d["client"].startswith("control") for d in outcome["control"].doubled)
    assert _ours(outcome["run_id"]) == []  # and the hosts are gone

"""The chaos checker finds every kind of anomaly in a history, and none in a clean one."""

from __future__ import annotations

from pathlib import Path

from bench.chaos.history import History, check, read


def _clean(history: History) -> None:
    history.follows("c1", "s")
    for n in range(3):
        history.sent("s", f"m{n}")
        history.acked("s", f"m{n}")
        history.received("c1", "s", f"m{n}", f"100-{n}")


def test_a_clean_history_passes(tmp_path: Path) -> None:
    with History(tmp_path / "h.jsonl") as history:
        _clean(history)
        history.sent("s", "maybe")  # never acked, never received: indeterminate, fine
    verdict = check(read(tmp_path / "h.jsonl"))
    assert verdict.ok, verdict.summary()
    assert (verdict.acked, verdict.received, verdict.indeterminate) == (3, 3, 1)


def test_lost_doubled_out_of_order_and_phantom_are_each_found(tmp_path: Path) -> None:
    with History(tmp_path / "a.jsonl") as producer, History(tmp_path / "b.jsonl") as client:
        _clean(producer)
        producer.sent("s", "m3")
        producer.acked("s", "m3")  # acked, never received: lost
        client.received("c1", "s", "m1", "100-1")  # second time: doubled
        client.received("c1", "s", "m0", "100-0")  # lower position after 100-2: out of order
        client.received("c1", "s", "ghost", "100-9")  # never sent: phantom
    verdict = check(read(tmp_path / "a.jsonl", tmp_path / "b.jsonl"))
    assert not verdict.ok
    assert [x["message"] for x in verdict.lost] == ["m3"]
    assert {x["message"] for x in verdict.doubled} == {"m0", "m1"}
    assert [x["position"] for x in verdict.out_of_order] == ["100-1", "100-0"]
    assert [x["message"] for x in verdict.phantom] == ["ghost"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with History(path) as history:
        _clean(history)
    with open(path, "a") as handle:
        handle.write('{"op":"acked","stream":"s","mess')
    assert check(read(path)).ok


def test_faults_resumes_and_failed_requests_are_read(tmp_path: Path) -> None:
    with History(tmp_path / "h.jsonl") as history:
        _clean(history)
        history.fault("kill", "worker-0", signal="SIGKILL")
        history.resumed("c1", "s", "100-1")
        history.request("load0", "GET events", 200, True)
        history.request("load0", "GET events", 503, True, "search_unavailable 5")
    verdict = check(read(tmp_path / "h.jsonl"))
    assert verdict.ok, verdict.summary()
    assert [f["target"] for f in verdict.faults] == ["worker-0"]
    assert verdict.resumes == {"c1": 1} and verdict.requests == 2
    with History(tmp_path / "h.jsonl") as history:
        history.request("load1", "POST chat", 502, False, "no live upstreams")
    verdict = check(read(tmp_path / "h.jsonl"))
    assert not verdict.ok
    assert [r["status"] for r in verdict.failed_requests] == [502]
    assert "failed 1" in verdict.summary()

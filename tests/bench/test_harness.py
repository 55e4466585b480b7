"""``make bench``'s harness: bounds, failures as figures, the chat arithmetic, the README table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench import chat, table
from bench.__main__ import Run, bench_settings, bounded
from bench.results import Figure, report
from shared.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.timeout(10)
def test_a_benchmark_past_its_bound_is_stopped_and_reported_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("bench.__main__").__main__.BOUNDS, "chat", 1)
    run = Run()
    started = time.monotonic()
    run.measure("chat", lambda: [time.sleep(5), []][1])  # type: ignore[func-returns-value]
    assert time.monotonic() - started < 3
    assert run.failed == ["chat"]
    failed = next(f for f in run.figures if f.name == "chat.failed")
    assert failed.value is None and "Overran" in failed.detail["error"]


@pytest.mark.timeout(10)
def test_a_failing_benchmark_does_not_hide_the_next_ones_figures() -> None:
    run = Run()

    def broken() -> list[Figure]:
        raise RuntimeError("server gone")

    run.measure("ingest", broken)
    run.measure("mailbox", lambda: [Figure("mailbox.upload_import_rate", 700, "emails/s")])
    names = [f.name for f in run.figures]
    assert run.failed == ["ingest"]
    assert "ingest.failed" in names and "mailbox.upload_import_rate" in names
    assert "mailbox.seconds" in names


def test_bounded_leaves_no_alarm_behind() -> None:
    with bounded(1):
        pass
    time.sleep(1.2)  # an alarm left set would raise Overran here


def test_chat_pipeline_is_first_delta_minus_elasticsearch_per_question() -> None:
    # 100..199 ms to the first delta, 80 ms of search, 50 ms waiting for a worker.
    timings = [chat.Timing(0.100 + n / 1000, 0.080, 0.050) for n in range(100)]
    figures = {f.name: f for f in chat.figures(timings)}
    assert figures["chat.first_delta_p50"].value == pytest.approx(150.0, abs=1)
    assert figures["chat.first_delta_p50"].peer == pytest.approx(80.0)
    assert figures["chat.pipeline_p50"].value == pytest.approx(70.0, abs=1)
    assert figures["chat.pipeline_p99"].value == pytest.approx(118.0, abs=1)
    assert figures["chat.queue_wait_p99"].value == pytest.approx(50.0)
    assert figures["chat.pipeline_unqueued_p99"].value == pytest.approx(68.0, abs=1)
    assert figures["chat.pipeline_p99"].aim == "<= 50 ms"
    assert figures["chat.queue_wait_p99"].aim == ""


def test_one_client_figures_are_the_pipeline_beside_its_search() -> None:
    # 40..139 ms to the first delta, 30 ms of search each: 10..109 ms of pipeline.
    timings = [chat.Timing(0.040 + n / 1000, 0.030, 0.0) for n in range(100)]
    figures = {f.name: f for f in chat.one_client_figures(timings)}
    assert set(figures) == {"chat.one_client_pipeline_p50", "chat.one_client_pipeline_p99"}
    assert figures["chat.one_client_pipeline_p50"].value == pytest.approx(60.0)  # rank 50
    assert figures["chat.one_client_pipeline_p99"].value == pytest.approx(108.0)  # rank 98
    assert figures["chat.one_client_pipeline_p99"].peer == pytest.approx(30.0)
    assert figures["chat.one_client_pipeline_p50"].detail["clients"] == 1


def test_bench_settings_lift_only_the_per_person_limits() -> None:
    base = Settings.from_env()
    lifted = bench_settings(base)
    assert lifted.ws_max_sockets_per_user >= 2000
    assert lifted.ask_rate_limit != base.ask_rate_limit
    assert lifted.ws_max_connections == base.ws_max_connections


def test_the_table_shows_each_figure_beside_its_peer_with_date_and_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    report(
        [
            Figure("ingest.rate", 812, "emails/s", peer=2400, peer_name="raw helpers.bulk"),
            Figure("reconnect_storm.lost", 0, "events", aim="0"),
            Figure("ingest.seconds", 120.5, "s"),
            Figure("mail_sync.imap_rate", None, "messages/s", detail={"skipped": "no dovecot"}),
        ],
        path,
        load_before=0.25,
    )
    assert (
        "ingest.rate: 812 emails/s (vs raw helpers.bulk: 2400 emails/s)" in capsys.readouterr().out
    )
    document = json.loads(path.read_text())
    rendered = table.render(document)
    assert document["date"] in rendered and str(document["machine"]["cpus"]) in rendered
    # How busy the machine was is measured, not asserted: before the run, and after it.
    assert "load average 0.25 when it began" in rendered
    assert f"{document['machine']['load_after']} when it ended" in rendered
    assert "| `ingest.rate` | 812 emails/s | 2400 emails/s (raw helpers.bulk) |" in rendered
    assert "| `reconnect_storm.lost` | 0 events |  | 0 |" in rendered
    assert "n/a" in rendered and "no dovecot" in rendered
    assert "ingest.seconds" not in rendered


def test_the_readme_section_is_replaced_between_its_markers_only() -> None:
    text = f"intro\n{table.BEGIN}\nold table\n{table.END}\noutro\n"
    replaced = table.replace_section(text, "| new |\n")
    assert replaced == f"intro\n{table.BEGIN}\n| new |\n{table.END}\noutro\n"
    with pytest.raises(ValueError):
        table.replace_section("no markers", "| new |\n")


def test_the_readme_has_the_generated_table_section() -> None:
    text = README.read_text()
    assert table.BEGIN in text and table.END in text
    section = text[text.index(table.BEGIN) : text.index(table.END)]
    assert "| figure | Mailchat | peer or floor | aim | what it means |" in section


def test_every_figure_make_bench_writes_has_a_meaning() -> None:
    names = [
        "ingest.rate",
        "ingest.ratio_to_raw_bulk",
        "chat.first_delta_p99",
        "chat.pipeline_p99",
        "reconnect_storm.all_resumed",
        "reconnect_storm.lost",
        "reconnect_storm.doubled",
        "mail_sync.imap_rate",
        "mail_sync.gmail_full_units_per_1k",
        "mailbox.search_median_10k",
        "bench.total_seconds",
    ]
    assert all(table.meaning(name) for name in names)

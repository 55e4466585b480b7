"""The README's table of the latest ``make bench`` figures, generated from ``bench-results.json``.

``python -m bench.table`` prints the table; ``python -m bench.table --readme
README.md`` (``make bench-table``) rewrites the part of the README between the
``<!-- bench-table:begin -->`` and ``<!-- bench-table:end -->`` markers, so the
README shows what a run measured, with its date and machine, never figures
copied by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.results import RESULTS_FILE, Figure, format_number

BEGIN = "<!-- bench-table:begin -->"
END = "<!-- bench-table:end -->"

# What each figure means, by name (or by the name's benchmark, for the fallbacks).
MEANINGS = {
    "ingest.rate": "50,000 generated emails through Mailchat's import (parse, build, route, "
    "bulk); peer: the same documents, prebuilt, by a raw `helpers.bulk`",
    "ingest.ratio_to_raw_bulk": "Mailchat's import rate / the raw bulk rate (1 = no cost "
    "over the search server's own)",
    "chat.first_delta": "time from asking over SSE to the first `delta`, 50 clients at once; "
    "peer: the worker's Elasticsearch time for the same questions",
    "chat.pipeline": "first delta minus Elasticsearch time, question by question: queueing, "
    "task hop, composing, event log, relay",
    "chat.queue_wait": "of that, waiting for a free worker (question appended until the "
    "worker's `search` event, minus the search)",
    "chat.pipeline_unqueued": "the pipeline's own work per question: the cost above without "
    "the wait for a worker",
    "chat.one_client_pipeline": "the pipeline's cost (first delta minus Elasticsearch "
    "time) with one client asking one question at a time: nothing queued, the cores free; "
    "peer: the Elasticsearch time at the same percentile",
    "ws_idle": "idle WebSockets one gevent web process holds, and RSS growth per socket; "
    "peer: Flask-SocketIO, same gunicorn/gevent setup (bench/ws_idle.py)",
    "ws_fanout": "per-conversation delivery to 1,000 sockets at an offered rate: delivered "
    "rate and p99; peer: Flask-SocketIO with its Redis queue (bench/ws_fanout.py)",
    "reconnect_storm.all_resumed": "1,000 WebSockets dropped by a web restart (SIGTERM, new "
    "process): until the last one is back with everything it missed; floor: the restart alone",
    "reconnect_storm.lost": "events appended during the storm that a client never received",
    "reconnect_storm.doubled": "events a client received twice",
    "assistant": "the assistant's own time per eval question (parsing, query building, "
    "composing, emitting; its search requests' time taken out), and requests per question "
    "(bench/assistant.py)",
    "mail_sync.imap": "sync of 10,000 messages from a local Dovecot; then a sync with nothing new",
    "mail_sync.gmail": "Gmail quota units and HTTP requests per 1,000 new messages (batched); "
    "peer: one `messages.get` each",
    "mailbox.upload_import_rate": "50,000-email Takeout mbox, sign-up to imported, over HTTP "
    "(tus upload, Celery import)",
    "mailbox.worker_peak_rss": "the worker's peak memory during that import",
    "mailbox.search": "median full-text search time with this many emails in the index",
    "bench.total_seconds": "the whole `make bench` run",
}


def meaning(name: str) -> str:
    """The longest entry of ``MEANINGS`` that ``name`` starts with, or nothing."""
    matches = [key for key in MEANINGS if name.startswith(key)]
    return MEANINGS[max(matches, key=len)] if matches else ""


def _cell(value: float | int | None, unit: str) -> str:
    return "n/a" if value is None else f"{format_number(value)} {unit}".strip()


def render(document: dict[str, Any]) -> str:
    """The Markdown table (with the run's date and machine above it) of one results file."""
    machine = document.get("machine", {})
    load = ""
    if "load_before" in machine:
        load = (
            f", 1-minute load average {machine['load_before']} when it began (other work) and "
            f"{machine.get('load_after', '?')} when it ended (its own included)"
        )
    lines = [
        f"Latest run: {document.get('date', '?')} on {machine.get('cpus', '?')} CPUs, "
        f"{machine.get('platform', '?')}, Python {machine.get('python', '?')}{load}.",
        "",
        "| figure | Mailchat | peer or floor | aim | what it means |",
        "|---|---|---|---|---|",
    ]
    for raw in document.get("figures", []):
        figure = Figure(**raw)
        if figure.name.endswith(".seconds"):
            continue  # each benchmark's own duration: in the JSON, not the table
        peer = f"{_cell(figure.peer, figure.unit)} ({figure.peer_name})" if figure.peer_name else ""
        failed = figure.detail.get("error") or figure.detail.get("skipped")
        what = meaning(figure.name) + (f" — {failed}" if failed else "")
        lines.append(
            f"| `{figure.name}` | {_cell(figure.value, figure.unit)} | {peer} | {figure.aim} "
            f"| {what} |"
        )
    return "\n".join(lines) + "\n"


def replace_section(text: str, table: str) -> str:
    """``text`` with what lies between the markers replaced by ``table``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN} ... {END} section")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS_FILE, help="the results file to read")
    parser.add_argument("--readme", help="rewrite this file's table section instead of printing")
    args = parser.parse_args(argv)
    table = render(json.loads(Path(args.results).read_text()))
    if args.readme:
        path = Path(args.readme)
        path.write_text(replace_section(path.read_text(), table))
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``chat``: time to the first ``delta`` for 50 concurrent SSE clients, beside Elasticsearch's own.

Each client asks over ``GET /api/chat/stream`` (web → Redis → Celery worker →
search → event log → SSE) and notes when the first ``delta`` arrives; the
``done`` event carries the worker's measured search time for that same
question (``elasticsearch_seconds``). Their difference, question by question,
is what the pipeline itself costs: queueing, the task hop, composing, the
event log and the relay. The issue's aim is a pipeline p99 of at most 50 ms.

With 50 clients asking back to back and ``WORKER_CONCURRENCY`` worker
processes in front of one search server, most of that cost is waiting for a
free worker. The stream ids say when the web appended the question and when
the worker appended ``search`` (right after searching), so the wait is split
out (``queue_wait``) and what remains (``pipeline_unqueued``) is the
pipeline's own work per question.

The same questions asked by one client, one at a time (``one_client``), give the
pipeline's cost with nothing queued and nothing else competing for the cores: what
a question costs on top of its search when the machine is not saturated.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.results import Figure

CLIENTS = 50
QUESTIONS_ASKED = 200
ONE_CLIENT_QUESTIONS = 100  # enough that p99 is not the largest but one
QUESTIONS = ["interviews", "offer letter", "receipt", "recruiter", "newsletter", "photos"]
TIMEOUT_SECONDS = 60.0  # one question's bound; the whole run is QUESTIONS_ASKED / CLIENTS of them
AIM_PIPELINE_P99 = "<= 50 ms"
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
ONE_CLIENT_PERCENTILES = (("p50", 0.5), ("p99", 0.99))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; the benchmarks' one definition."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Timing:
    """One question's times, in seconds: on the client's clock, and from the stream ids
    (a Redis Streams id starts with the server's milliseconds; one machine, one clock)."""

    first_delta: float  # asked -> first delta received
    elasticsearch: float  # the worker's search time for this question (from ``done``)
    queue_wait: float  # question appended -> search event appended, minus the search


def _id_seconds(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000


def ask(base: str, token: str, question: str) -> Timing:
    """Ask one question over SSE and time it."""
    url = f"{base}/api/chat/stream?q={urllib.parse.quote_plus(question)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    first_delta = 0.0
    ids: dict[str, str] = {}
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        event, entry_id = "", ""
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("id: "):
                entry_id = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                ids.setdefault(event, entry_id)
                if event == "delta" and not first_delta:
                    first_delta = time.perf_counter() - started
                elif event in ("done", "error"):
                    data = json.loads(line[6:])["data"]
                    if event == "error" or not first_delta:
                        raise RuntimeError(f"question ended with {event} {data.get('code', '')}")
                    es = float(data["elasticsearch_seconds"])
                    waited = _id_seconds(ids["search"]) - _id_seconds(ids["question"]) - es
                    return Timing(first_delta, es, max(0.0, waited))
    raise RuntimeError("stream ended without done")


def measure(base: str, token: str) -> list[Timing]:
    """Every question's timing, ``CLIENTS`` asking at once, ``QUESTIONS_ASKED`` in all."""
    for question in QUESTIONS:  # warm up: worker processes, connections, caches
        ask(base, token, question)
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(
            pool.map(
                lambda n: ask(base, token, QUESTIONS[n % len(QUESTIONS)]), range(QUESTIONS_ASKED)
            )
        )


def measure_one_client(base: str, token: str) -> list[Timing]:
    """``ONE_CLIENT_QUESTIONS`` questions, each asked once the previous one is answered."""
    return [ask(base, token, QUESTIONS[n % len(QUESTIONS)]) for n in range(ONE_CLIENT_QUESTIONS)]


def one_client_figures(timings: list[Timing]) -> list[Figure]:
    """The pipeline's cost (first delta minus Elasticsearch time) with one client, in ms."""
    return _by_percentile(
        "chat.one_client_pipeline",
        [t.first_delta - t.elasticsearch for t in timings],
        ONE_CLIENT_PERCENTILES,
        detail={"clients": 1, "questions": len(timings)},
        peer=([t.elasticsearch for t in timings], "Elasticsearch time at that percentile"),
    )


def _ms(values: list[float], fraction: float) -> float:
    return round(percentile(values, fraction) * 1000, 1)


def _by_percentile(
    name: str,
    values: list[float],
    percentiles: tuple[tuple[str, float], ...],
    *,
    detail: dict[str, int],
    peer: tuple[list[float], str] | None = None,
    aim_at_p99: str = "",
) -> list[Figure]:
    """One figure per percentile of ``values`` (seconds, shown in ms), each beside the same
    percentile of the peer's values when there is a peer."""
    return [
        Figure(
            f"{name}_{label}",
            _ms(values, fraction),
            "ms",
            peer=None if peer is None else _ms(peer[0], fraction),
            peer_name="" if peer is None else peer[1],
            aim=aim_at_p99 if label == "p99" else "",
            detail=detail,
        )
        for label, fraction in percentiles
    ]


def figures(timings: list[Timing]) -> list[Figure]:
    """First delta beside Elasticsearch's time, the pipeline's share, and that share split into
    waiting for a worker and the rest (task, composing, event log, relay), in ms."""
    es = [t.elasticsearch for t in timings]
    detail = {"clients": CLIENTS, "questions": len(timings)}
    out = _by_percentile(
        "chat.first_delta",
        [t.first_delta for t in timings],
        PERCENTILES,
        detail=detail,
        peer=(es, "Elasticsearch alone"),
    )
    out += _by_percentile(
        "chat.pipeline",
        [t.first_delta - t.elasticsearch for t in timings],
        PERCENTILES,
        detail=detail,
        aim_at_p99=AIM_PIPELINE_P99,
    )
    out += _by_percentile(
        "chat.queue_wait", [t.queue_wait for t in timings], PERCENTILES, detail=detail
    )
    out += _by_percentile(
        "chat.pipeline_unqueued",
        [t.first_delta - t.elasticsearch - t.queue_wait for t in timings],
        PERCENTILES,
        detail=detail,
        aim_at_p99=AIM_PIPELINE_P99,
    )
    return out


def run(base: str, token: str) -> list[Figure]:
    return figures(measure(base, token)) + one_client_figures(measure_one_client(base, token))

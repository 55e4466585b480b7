"""A chaos run's history, and the checker that reads it (the way Jepsen does).

While faults are injected, every party appends what it did to one JSON-lines
file: a producer records each message it *sent* and, once the system said
yes, that it was *acked*; each client records that it *follows* a stream and
every message it *received*, with the stream position it arrived at. The
checker then reads the file alone, with no knowledge of the run, and reports
three kinds of anomaly:

- lost: acknowledged on a stream, never received by a client following it;
- doubled: received more than once by the same client;
- out of order: a client received a message at a stream position lower than
  one it had already received.

A message sent but never acknowledged is *indeterminate* (the fault may have
hit before or after the write): receiving it is fine, missing it is fine.
A received message that was never sent at all is reported as *phantom*.

Besides messages, a history keeps what makes a run judgeable: the *faults*
injected (a run whose history holds none proved nothing), each client's
*resumed* (it reconnected and went on from a position), and every *request*
a load generator made with its outcome (a failed one is an anomaly too:
"0 failed requests" is a claim the checker reads, not one the scenario makes).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any


class Op(StrEnum):
    SENT = "sent"
    ACKED = "acked"
    FOLLOWS = "follows"
    RECEIVED = "received"
    FAULT = "fault"
    RESUMED = "resumed"
    REQUEST = "request"


def stream_position(entry_id: str) -> tuple[int, ...]:
    """A Redis Streams id ("1700000000000-3") as a sortable tuple; other ids sort as given."""
    try:
        return tuple(int(part) for part in entry_id.split("-"))
    except ValueError:
        return ()


class History:
    """An append-only JSON-lines history, safe to share between threads of one process.

    Separate processes write separate files and ``check`` reads them together.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def _append(self, op: Op, **fields: Any) -> None:
        line = json.dumps({"op": str(op), "t": time.time(), **fields}, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def sent(self, stream: str, message: str) -> None:
        self._append(Op.SENT, stream=stream, message=message)

    def acked(self, stream: str, message: str) -> None:
        self._append(Op.ACKED, stream=stream, message=message)

    def follows(self, client: str, stream: str) -> None:
        self._append(Op.FOLLOWS, client=client, stream=stream)

    def received(self, client: str, stream: str, message: str, position: str) -> None:
        self._append(Op.RECEIVED, client=client, stream=stream, message=message, position=position)

    def fault(self, kind: str, target: str, **detail: Any) -> None:
        """A fault injected (``kill``, ``restart``, ``stop``, ``sigterm``...) and what it hit."""
        self._append(Op.FAULT, kind=kind, target=target, **detail)

    def resumed(self, client: str, stream: str, after: str) -> None:
        """A client reconnected and asked for ``stream`` after ``after``."""
        self._append(Op.RESUMED, client=client, stream=stream, after=after)

    def request(self, client: str, what: str, status: int, ok: bool, detail: str = "") -> None:
        """One request of a load generator; ``ok`` says whether its answer was a right one
        (a 503 + Retry-After while a server is down is right; a 500 or a reset never is)."""
        self._append(
            Op.REQUEST, client=client, what=what, status=status, ok=ok, detail=detail[:200]
        )

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Verdict:
    """What the checker found; ``ok`` when nothing acknowledged was lost, doubled or reordered."""

    acked: int = 0
    received: int = 0
    indeterminate: int = 0
    lost: list[dict[str, str]] = field(default_factory=list)
    doubled: list[dict[str, Any]] = field(default_factory=list)
    out_of_order: list[dict[str, str]] = field(default_factory=list)
    phantom: list[dict[str, str]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    resumes: dict[str, int] = field(default_factory=dict)  # client -> times it resumed
    requests: int = 0
    failed_requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.doubled or self.out_of_order or self.phantom or self.failed_requests
        )

    def summary(self) -> str:
        text = (
            f"acked {self.acked}, received {self.received}, indeterminate {self.indeterminate}; "
            f"lost {len(self.lost)}, doubled {len(self.doubled)}, "
            f"out of order {len(self.out_of_order)}, phantom {len(self.phantom)}"
        )
        if self.requests:
            text += f"; requests {self.requests}, failed {len(self.failed_requests)}"
        if self.faults:
            text += f"; faults {len(self.faults)}, resumes {sum(self.resumes.values())}"
        return text


def read(*paths: Path | str) -> list[dict[str, Any]]:
    """Every record of the given history files, in time order (a torn last line is skipped)."""
    records = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a writer killed mid-line: the op it was writing is indeterminate
    records.sort(key=lambda record: record["t"])
    return records


def check(records: list[dict[str, Any]]) -> Verdict:
    """Judge a history: lost, doubled, out of order and phantom messages, failed requests."""
    sent: dict[str, set[str]] = defaultdict(set)
    acked: dict[str, set[str]] = defaultdict(set)
    follows: dict[str, set[str]] = defaultdict(set)  # client -> streams
    arrivals: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for record in records:
        op = record["op"]
        if op == Op.SENT:
            sent[record["stream"]].add(record["message"])
        elif op == Op.ACKED:
            acked[record["stream"]].add(record["message"])
        elif op == Op.FOLLOWS:
            follows[record["client"]].add(record["stream"])
        elif op == Op.RECEIVED:
            key = (record["client"], record["stream"])
            arrivals[key].append((record["message"], record["position"]))
    verdict = _context(
        records,
        Verdict(
            acked=sum(len(messages) for messages in acked.values()),
            received=sum(len(got) for got in arrivals.values()),
            indeterminate=sum(len(sent[s] - acked[s]) for s in sent),
        ),
    )
    for client, streams in sorted(follows.items()):
        for stream in sorted(streams):
            got = arrivals.get((client, stream), [])
            seen = {message for message, _ in got}
            for message in sorted(acked[stream] - seen):
                verdict.lost.append({"client": client, "stream": stream, "message": message})
    for (client, stream), got in sorted(arrivals.items()):
        counts = Counter(message for message, _ in got)
        for message, times in sorted(counts.items()):
            if times > 1:
                verdict.doubled.append(
                    {"client": client, "stream": stream, "message": message, "times": times}
                )
            if message not in sent[stream] and message not in acked[stream]:
                verdict.phantom.append({"client": client, "stream": stream, "message": message})
        highest: tuple[int, ...] = ()
        for message, position in got:
            at = stream_position(position)
            if at and highest and at < highest:
                verdict.out_of_order.append(
                    {"client": client, "stream": stream, "message": message, "position": position}
                )
            highest = max(highest, at)
    return verdict


def _context(records: list[dict[str, Any]], verdict: Verdict) -> Verdict:
    """The faults, resumes and requests of a history, beside its messages."""
    resumes: Counter[str] = Counter()
    for record in records:
        op = record["op"]
        if op == Op.FAULT:
            verdict.faults.append({k: v for k, v in record.items() if k != "op"})
        elif op == Op.RESUMED:
            resumes[record["client"]] += 1
        elif op == Op.REQUEST:
            verdict.requests += 1
            if not record["ok"]:
                verdict.failed_requests.append({k: v for k, v in record.items() if k != "op"})
    verdict.resumes = dict(resumes)
    return verdict

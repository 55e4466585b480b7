"""The figures ``make bench`` prints and writes to ``bench-results.json``.

Every benchmark returns ``Figure`` records; ``report`` prints each as one
``name: value unit`` line (with its peer or floor beside it, measured in the
same run) and writes them all, with the date and the machine, to JSON. One
shape for every benchmark, so the README table and any comparison script read
the same file.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_FILE = "bench-results.json"


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``peer`` is what the same measure gave the peer or the floor."""

    name: str  # dotted, benchmark first: "ws_idle.kib_per_socket"
    value: float | int | None
    unit: str
    peer: float | int | None = None
    peer_name: str = ""  # "Flask-SocketIO 5.x", "helpers.bulk", "Elasticsearch alone"
    aim: str = ""  # the aim in words ("<= 40 KiB"), empty when there is none
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        shown = "n/a" if self.value is None else format_number(self.value)
        text = f"{self.name}: {shown} {self.unit}".rstrip()
        if self.peer_name:
            peer = "n/a" if self.peer is None else format_number(self.peer)
            text += f" (vs {self.peer_name}: {peer} {self.unit})".replace("  ", " ")
        if self.aim:
            text += f" [aim {self.aim}]"
        return text


def format_number(value: float | int) -> str:
    """Integers as they are, else three significant digits (one decimal from 10 up)."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def machine(load_before: float | None = None) -> dict[str, Any]:
    """The machine, and how busy it was: ``load_before`` is the 1-minute load average
    when the run began (other work), ``load_after`` the same as it ended (the run's own
    load included)."""
    found: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_after": round(os.getloadavg()[0], 2),
    }
    if load_before is not None:
        found["load_before"] = round(load_before, 2)
    return found


def report(
    figures: list[Figure], path: Path | str = RESULTS_FILE, load_before: float | None = None
) -> None:
    """Print one line per figure and write them all to ``path``."""
    for figure in figures:
        print(figure.line())
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(load_before),
        "figures": [asdict(figure) for figure in figures],
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n")

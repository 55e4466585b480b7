"""``make chaos``: every scenario at full size on fresh local servers; exit 1 on any anomaly.

``python -m bench.chaos [--small] [scenario ...]``: ``--small`` runs the sizes
the test suite uses; naming scenarios runs only those. Each scenario's
history is kept in ``chaos-results/<UTC time>/`` and the checker's figures in
``chaos-results.json`` (bench/results.py's format).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos import redis_restart, search_down, web_sigterm, workers_killed
from bench.chaos.harness import Result, chaos_servers
from bench.results import Figure, report
from devtools.run import PROJECT_ROOT

SCENARIOS: dict[str, Any] = {
    module.NAME: module for module in (workers_killed, redis_restart, web_sigterm, search_down)
}
RESULTS_DIR = PROJECT_ROOT / "chaos-results"
RESULTS_FILE = PROJECT_ROOT / "chaos-results.json"


def figures(result: Result, seconds: float) -> list[Figure]:
    verdict, name = result.verdict, f"chaos.{result.name}"
    found = [
        Figure(f"{name}.ok", int(result.ok), "", aim="1", detail={"problems": result.problems}),
        Figure(f"{name}.acked", verdict.acked, "messages"),
        Figure(f"{name}.received", verdict.received, "messages"),
        Figure(f"{name}.faults", len(verdict.faults), "faults"),
    ]
    for kind in ("lost", "doubled", "out_of_order", "phantom", "failed_requests"):
        found.append(Figure(f"{name}.{kind}", len(getattr(verdict, kind)), "", aim="0"))
    found.append(Figure(f"{name}.seconds", round(seconds, 1), "s", detail=result.figures))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--small", action="store_true", help="the test suite's sizes")
    parser.add_argument("scenarios", nargs="*", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    keep = RESULTS_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    keep.mkdir(parents=True, exist_ok=True)
    results: list[Figure] = []
    anomalies = 0
    for name in chosen:
        module: Any = SCENARIOS[name]
        params = module.SMALL if args.small else module.Params()
        print(f"== {name}: {params}", flush=True)
        with (
            tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp,
            chaos_servers(Path(tmp), f"mailchat-chaos-{name}:") as settings,
        ):
            started = time.monotonic()
            run: Callable[..., Result] = module.run
            result = run(settings, Path(tmp), params)
            seconds = time.monotonic() - started
            shutil.copy(result.history, keep / result.history.name)
            result.history = keep / result.history.name
            logs = keep / f"{name}-logs"  # every process's log, to read an anomaly afterwards
            logs.mkdir(exist_ok=True)
            for log in Path(tmp).rglob("*.log"):
                shutil.copy(log, logs / f"{log.parent.name}-{log.name}")
        print("\n".join(result.lines()), flush=True)
        anomalies += not result.ok
        results += figures(result, seconds)
    print()
    report(results, RESULTS_FILE)
    print(f"histories in {keep}; {anomalies} scenario(s) with anomalies")
    return 1 if anomalies else 0


if __name__ == "__main__":
    sys.exit(main())

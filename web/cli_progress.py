"""Progress of ``mail import-mbox``: a tqdm bar on a terminal, plain lines otherwise.

tqdm (a well-kept library) draws the bar: emails, emails per second and the
time left. The number of emails in an mbox is not known until it is read, so
the total is estimated from the share of bytes read so far and corrected
after every batch. Piped into a file or a CI log, a bar's carriage returns
are noise: then one plain line every few seconds says the same.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from shared.index.writer import ImportStats

PLAIN_EVERY_SECONDS = 5.0


class ImportProgress:
    """``on_batch_indexed`` for ``import_messages``: shows how far an mbox import got."""

    def __init__(self, path: Path, stream: IO[str] | None = None) -> None:
        self.size = max(1, os.path.getsize(path))
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last_line = 0.0
        self.bar: Any = None
        if self.stream.isatty():
            self.bar = tqdm(total=None, unit=" emails", file=self.stream, dynamic_ncols=True)

    def estimate(self, stats: ImportStats) -> int:
        offset = stats.cursor if isinstance(stats.cursor, int) else 0
        return max(stats.seen, round(stats.seen * self.size / max(1, offset)))

    def __call__(self, stats: ImportStats) -> None:
        total = self.estimate(stats)
        if self.bar is not None:
            self.bar.total = total
            self.bar.update(stats.seen - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last_line < PLAIN_EVERY_SECONDS and self.last_line:
            return
        self.last_line = now
        self.stream.write(self.line(stats, total, now) + "\n")
        self.stream.flush()

    def line(self, stats: ImportStats, total: int, now: float) -> str:
        rate = stats.seen / max(0.001, now - self.started)
        left = (total - stats.seen) / rate if rate else 0.0
        return (
            f"imported {stats.seen:,} of ~{total:,} emails, {rate:,.0f} emails/s, "
            f"about {left:,.0f} s left"
        )

    def close(self, stats: ImportStats) -> None:
        if self.bar is not None:
            self.bar.total = stats.seen
            self.bar.update(stats.seen - self.bar.n)
            self.bar.close()
        else:
            self.stream.write(self.line(stats, stats.seen, time.monotonic()) + "\n")
            self.stream.flush()

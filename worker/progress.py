"""What ``python -m worker --local`` tells its operator: progress while it runs, a summary at the end.

The worker processes count what they handled in shared counters (:class:`Tally`); the runner
turns those and the queue's own counts into a progress bar on a terminal (shards done / total,
rate, ETA) or a plain line now and then elsewhere, and ends with the runs' counts per status and
every dead-lettered message of those runs with its reason.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from shared.deadletters import release, sweep
from shared.results import ShardStatus, plural
from shared.runstatus import RunKind, RunStatusStore

__all__ = ["Progress", "Tally", "summary_lines"]

PLAIN_LINE_SECONDS = 15  # off a terminal, one progress line this often (and when work ends)
BAR_WIDTH = 30


class Tally:
    """Counters the worker processes share with the runner (multiprocessing values)."""

    def __init__(self, ctx: Any) -> None:
        self.done = ctx.Value("q", 0)  # records the handler finished (deleted from the queue)
        self.retried = ctx.Value("q", 0)  # records left for redelivery
        self.run_ids = ctx.Queue()  # each run id a worker process met, once per process

    def add(self, done: int, retried: int) -> None:
        with self.done.get_lock():
            self.done.value += done
        with self.retried.get_lock():
            self.retried.value += retried

    def runs(self) -> set[str]:
        found = set()
        while not self.run_ids.empty():
            found.add(self.run_ids.get_nowait())
        return found


class Progress:
    """Shards done out of done + still queued, with the rate and the time left."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0
        self.shown = False

    def line(self, done: int, queued: int) -> str:
        total = done + queued
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"ETA {queued / rate:.0f} s" if rate > 0 and queued else "ETA -"
        filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} shards, {rate:.2f}/s, {eta}"

    def update(self, done: int, queued: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.out.write("\r" + self.line(done, queued) + ("\n" if final else ""))
            self.out.flush()
            self.shown = not final
        elif final or now - self.last_line >= PLAIN_LINE_SECONDS:
            print(self.line(done, queued), file=self.out, flush=True)
            self.last_line = now

    def clear(self) -> None:
        """End the bar's line before other output."""
        if self.shown:
            self.out.write("\n")
            self.shown = False


def summary_lines(runs: RunStatusStore, sqs: Any, dead_letter_queue_url: str, run_ids: set[str]) -> list[str]:
    """Each run's counts per status, and every message of those runs in the DLQ with its reason."""
    lines = []
    for run_id in sorted(run_ids):
        run = runs.get_run(run_id)
        if run is None:
            continue
        counts = {s: run.counts.get(s, 0) for s in ShardStatus if s.finished}
        running = runs.count(run_id, ShardStatus.RUNNING)
        pending = max(run.shards - sum(counts.values()) - running, 0)
        shown = ", ".join(f"{n} {s}" for s, n in {**counts, "RUNNING": running, "PENDING": pending}.items() if n)
        item = "granule" if run.kind is RunKind.INDEXES else "shard"
        lines.append(f"run {run_id}: {plural(run.shards, item)}: {shown or 'none finished'}")
    letters = sweep(sqs, dead_letter_queue_url, hold_seconds=30)
    release(sqs, dead_letter_queue_url, letters)
    mine = [d for d in letters if d.run_id in run_ids or d.run_id is None]
    if mine:
        lines.append(
            f"dead-lettered: {plural(len(mine), 'message')} (python -m producer redrive after fixing the cause)"
        )
    for d in mine:
        where = f"shard {d.shard_key} of run {d.run_id}" if d.run_id else "a message that is not a shard message"
        lines.append(f"  {where}: {d.reason or 'dead-lettered by the queue after its last receive'}")
    return lines

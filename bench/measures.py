"""What the benchmarks measure and report the same way: a process's CPU time, one run per
emulator (with some of its fixes left out), and the JSON line a benchmark ends with."""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far; NaN where /proc is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def add_emulator_options(parser: argparse.ArgumentParser) -> None:
    """``--without-fix NAME`` (repeatable) and ``--json PATH``: the options of a benchmark run on
    bare emulators (:func:`per_emulator`)."""
    parser.add_argument(
        "--without-fix",
        action="append",
        default=[],
        metavar="NAME",
        help="start the emulator without this fix of its (repeatable; see python -m producer.stack.emulator --help)",
    )
    parser.add_argument("--json", type=Path, help="also write the final JSON object to this file")


def per_emulator(
    runs: dict[str, list[str]], work: Callable[[str, int], dict], report: Callable[[str, dict], str]
) -> dict[str, dict]:
    """``work(endpoint, pid)`` on a bare emulator of its own (nothing deployed) for each entry of
    ``runs`` (a name: the emulator's fixes it leaves out), printing each run's ``report`` line."""
    from producer.stack.lifecycle import start_emulator

    results = {}
    for name, without in runs.items():
        with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
            endpoint, pid = start_emulator(Path(tmp), without_fixes=without)
            try:
                results[name] = work(endpoint, pid)
            finally:
                os.killpg(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
        print(report(name, results[name]), flush=True)
    return results


def emit(figures: dict, path: Path | None) -> None:
    """Print every figure as one JSON line (a benchmark's last), and write it to ``path`` too."""
    line = json.dumps(figures, separators=(",", ":"))
    if path:
        path.write_text(line + "\n")
    print(line)

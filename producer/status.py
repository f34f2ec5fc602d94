"""``python -m producer status``: what happened to every shard of a run, from DynamoDB (queries only)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import boto3

from producer.prices import lambda_cost
from shared.deadletters import DeadLetter, release, sweep
from shared.deployed import load_stack
from shared.errors import InputError, outcome_code
from shared.results import FINISHED, ShardStatus
from shared.runstatus import RunKind, RunRecord, RunStatusStore, ShardRecord

PEEK_HOLD_SECONDS = 30  # messages stay hidden at most this long if status dies mid-peek
PROBLEMS = (ShardStatus.FAILED, ShardStatus.PARTIAL)
ITEM_NOUN = {RunKind.SHARDS: "shard", RunKind.INDEXES: "granule"}  # what a run's items are
ORDER = tuple(ShardStatus)  # as declared: unfinished first, then the finished ones
UNFINISHED = tuple(s for s in ShardStatus if not s.finished)


def read_run(runs: RunStatusStore, run_id: str) -> RunRecord:
    """The run's record with its counts (the run item and its counter items)."""
    run = runs.get_run(run_id)
    if run is None:
        raise InputError(f"no run {run_id} in table {runs.table}")
    return run


def run_report(runs: RunStatusStore, run: RunRecord, dead_letters: list[DeadLetter] = ()) -> dict:
    """The run's counts and problems: besides the run's record (:func:`read_run`), a count of its
    running shards and its FAILED and PARTIAL shards, a few small reads whatever the run's size.
    ``dead_letters`` (the DLQ's messages) adds this run's, so a shard whose failure could not be
    written to its record is still shown, with its reason."""
    run_id = run.run_id
    counts = {s: run.counts.get(s, 0) for s in ORDER}
    counts[ShardStatus.RUNNING] = runs.count(run_id, ShardStatus.RUNNING)
    counts[ShardStatus.PENDING] = max(run.shards - sum(counts.values()), 0)
    created = datetime.fromisoformat(run.created_at)
    dead = [d for d in dead_letters if d.run_id == run_id]
    stuck: set[int | None] = set()
    if dead:  # dead-lettered, but the record could not say so
        stuck = {d.shard_key for d in dead} & {s.shard_key for st in UNFINISHED for s in runs.shards(run_id, st)}
    done = counts[ShardStatus.PENDING] + counts[ShardStatus.RUNNING] <= len(stuck)
    end = datetime.fromisoformat(run.last_finished_at) if done and run.last_finished_at else datetime.now(UTC)
    seconds = run.compute_seconds
    return {
        "run_id": run.run_id,
        "kind": run.kind.value,
        # every shard message writes all of its run's windows: a window's progress is the run's
        "windows": window_labels(run.windows),
        "created_at": run.created_at,
        "store": run.store,
        "shards": run.shards,
        "counts": {str(k): v for k, v in counts.items()},
        "observations": run.observations,
        "elapsed_s": round((end - created).total_seconds(), 1),
        "finished": done,
        "compute_seconds": round(seconds, 1),
        "estimated_cost_usd": round(lambda_cost(seconds, run.memory_mb, run.shards), 4),
        "problems": [_problem(s) for st in PROBLEMS for s in runs.shards(run_id, st)],
        "dead_lettered": [
            {"shard_key": d.shard_key, "reason": d.reason, "recorded": d.shard_key not in stuck} for d in dead
        ],
    }


def window_labels(windows: list[dict]) -> list[str]:
    if not windows:
        return []
    from shared.windows import PlacedWindow  # numpy: only for a run that has windows

    return [PlacedWindow.model_validate(w).label for w in windows]


def _problem(shard: ShardRecord) -> dict:
    return {
        "shard_key": shard.shard_key,
        "status": str(shard.status),
        "attempts": shard.attempts,
        "error": shard.last_error,
        "granules_failed": [f.model_dump(mode="json") for f in shard.granules_failed],
    }


def progress_bar(report: dict, width: int = 40) -> str:
    total = max(report["shards"], 1)
    finished = sum(report["counts"][str(s)] for s in FINISHED)
    filled = int(width * finished / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{report['shards']}"


def format_report(report: dict) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in report["counts"].items() if v)
    item = ITEM_NOUN[RunKind(report["kind"])]
    lines = [
        f"run {report['run_id']} (created {report['created_at']}) -> {report['store']}",
        *([f"windows (each shard writes all of them): {'; '.join(report['windows'])}"] if report["windows"] else []),
        f"{progress_bar(report)}  {counts}",
        f"observations {report['observations']:,}; {'took' if report['finished'] else 'elapsed'} "
        f"{report['elapsed_s']:.0f} s; "
        f"compute {report['compute_seconds']:.0f} s; estimated cost ${report['estimated_cost_usd']:.4f}",
    ]
    for p in report["problems"]:
        lines.append(f"  {p['status']} {item} {p['shard_key']} (attempts {p['attempts']}): {p['error'] or ''}")
        lines += [f"      {g['granule']}: {g['kind']}: {g['reason']}" for g in p["granules_failed"]]
    if report["dead_lettered"]:
        lines.append(
            f"dead-letter queue: {len(report['dead_lettered'])} messages of this run "
            f"(python -m producer redrive --run-id {report['run_id']} after fixing the cause)"
        )
    for d in report["dead_lettered"]:
        note = "" if d["recorded"] else f" [not on its {item} record: DynamoDB refused the write]"
        lines.append(
            f"  DEAD-LETTERED {item} {d['shard_key']}{note}: "
            f"{d['reason'] or 'dead-lettered by the queue after its last receive'}"
        )
    return "\n".join(lines)


def format_runs(records: list[RunRecord]) -> str:
    if not records:
        return "no runs"
    header = ("RUN", "CREATED", "SHARDS", "DONE", "FAILED", "STORE")
    rows = [
        (
            r.run_id,
            r.created_at,
            str(r.shards),
            str(sum(r.counts.values())),
            str(r.counts.get(ShardStatus.FAILED, 0)),
            r.store,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    align = ("<", "<", ">", ">", ">")
    return "\n".join(
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)) + "  " + row[-1]
        for row in [header, *rows]
    )


def _dead_letters(sqs, queue_url: str) -> list[DeadLetter]:
    """The DLQ's messages (released at once), read only when it holds any."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]
    if not int(attributes.get("ApproximateNumberOfMessages", 0)):
        return []
    letters = sweep(sqs, queue_url, hold_seconds=PEEK_HOLD_SECONDS)
    release(sqs, queue_url, letters)
    return letters


def status(args) -> int:
    stack = load_stack(args.stack)
    runs = RunStatusStore(stack.run_table)
    if not args.run_id:
        records = runs.recent_runs(args.limit)
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=1) if args.json else format_runs(records))
        return 0
    sqs = boto3.client("sqs")
    run = read_run(runs, args.run_id)
    dead_letter_queue = (
        stack.index_dead_letter_queue_url if run.kind is RunKind.INDEXES else stack.dead_letter_queue_url
    )
    while True:
        report = run_report(runs, run, _dead_letters(sqs, dead_letter_queue))
        if args.json:
            print(json.dumps(report, indent=1))
        elif args.watch and sys.stdout.isatty():
            print("\033[2J\033[H" + format_report(report), flush=True)
        else:
            print(format_report(report), flush=True)
        if not args.watch or report["finished"]:
            break
        time.sleep(args.interval)
        run = read_run(runs, args.run_id)
    counts = report["counts"]
    return outcome_code(
        counts[str(ShardStatus.FAILED)] + len(report["dead_lettered"]), counts[str(ShardStatus.PARTIAL)]
    )

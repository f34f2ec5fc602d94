"""``python -m worker``: process shards locally, or run the queue locally like Lambda would."""

from __future__ import annotations

import argparse
import sys

from shared.catalog import load_catalog
from shared.config import load_config
from shared.errors import InputError, outcome_code, run_command
from shared.results import ShardStatus

DEFAULT_LOG_FILE = "worker.log"
QUEUES = ("shards", "indexes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description=(
            "Aggregate ATL06 shards of a catalog into a Zarr store on this machine (--catalog, --store), "
            "or act as the stack's SQS event source mapping and run the real Lambda handler locally (--local)."
        ),
    )
    parser.add_argument("--catalog", help="shard map JSON (python -m producer catalog)")
    parser.add_argument("--store", help="output Zarr store: a local path or s3://bucket/prefix.zarr")
    parser.add_argument("--config", help="pipeline config YAML (default: the shipped ATL06 config)")
    parser.add_argument(
        "--shard", type=int, action="append", metavar="KEY", help="process only this shard (repeatable)"
    )
    parser.add_argument("--max-shards", type=int, metavar="N", help="process at most N shards")
    parser.add_argument(
        "--region",
        metavar="JSON",
        help="the store's cells: a JSON list of shard keys, or a catalog whose shards they are "
        "(default: an existing store's region, else this catalog's shards)",
    )
    parser.add_argument(
        "--windows",
        default="cycle",
        metavar="KIND|START/END,...",
        help="time windows: cycle (default), month, quarter, year, or explicit ranges START/END[,START/END...] "
        "(ISO dates, UTC); a run writes the windows its catalog's granules start in (for ranges: every range)",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="shards (or with --local, worker processes) at a time")
    local = parser.add_argument_group("queue worker (--local)")
    local.add_argument(
        "--local", action="store_true", help="poll the stack's shard queue and run the Lambda handler here"
    )
    local.add_argument(
        "--until-empty", action="store_true", help="exit when the queue and the work in flight are drained"
    )
    local.add_argument(
        "--visibility-timeout",
        type=int,
        metavar="S",
        help="receive with this visibility timeout instead of the queue's",
    )
    local.add_argument(
        "--log-file",
        default=DEFAULT_LOG_FILE,
        help="append the function's JSON log lines here, as CloudWatch Logs would keep them "
        "(default %(default)s; '-' for the terminal, which then shows no progress bar)",
    )
    local.add_argument(
        "--queue",
        choices=QUEUES,
        default="shards",
        help="the queue to work: shards (statistics) or indexes (python -m producer index) (default %(default)s)",
    )
    local.add_argument("--stack", help="stack name (default: $SHARD_QUEUE_STACK or icesat2-shard-queue)")
    args = parser.parse_args(argv)
    if not args.local and not (args.catalog and args.store):
        parser.error("--catalog and --store are required (or --local to work the queue)")
    return args


def run_queue(args: argparse.Namespace) -> int:
    from shared.deployed import load_stack
    from worker.progress import Progress
    from worker.runner import read_mapping, run

    stack = load_stack(args.stack)
    mapping = read_mapping(stack.index_function_name if args.queue == "indexes" else stack.function_name)
    to_terminal = args.log_file == "-"
    return run(
        mapping,
        args.workers,
        args.until_empty,
        args.visibility_timeout,
        log=lambda line: print(line, flush=True),
        log_path=None if to_terminal else args.log_file,
        progress=None if to_terminal else Progress(sys.stdout),
    )


def process_catalog(args: argparse.Namespace) -> int:
    from shared.region import read_shard_keys
    from shared.store import prepare_store
    from shared.windows import WindowSpec
    from worker.local import run_local

    try:
        spec = WindowSpec.parse(args.windows)
    except ValueError as exc:
        raise InputError(f"--windows: {' '.join(str(exc).split())}") from None
    shard_map = load_catalog(args.catalog)
    config = load_config(args.config)
    region = read_shard_keys(args.region) if args.region else None
    plan = prepare_store(args.store, shard_map, shard_map.select(args.shard, args.max_shards), config, spec, region)
    if plan.outside:
        print(f"{len(plan.outside)} shards of the catalog lie outside the store's region: not processed")
    keys = plan.keys
    print(f"windows: {', '.join(w.label for w in plan.windows) or 'none'}")
    counts: dict[str, int] = {}
    observations = 0
    for result in run_local(shard_map, keys, config, args.store, plan.region, plan.windows, args.workers):
        print(result.summary(), flush=True)
        counts[result.status] = counts.get(result.status, 0) + 1
        observations += result.observations
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{len(keys)} shards: {summary or 'none'}; {observations} observations; store {args.store}")
    return outcome_code(counts.get(ShardStatus.FAILED, 0), counts.get(ShardStatus.PARTIAL, 0))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(run_queue if args.local else process_catalog, args)


if __name__ == "__main__":
    sys.exit(main())

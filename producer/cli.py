"""``python -m producer``: the operator's command line.

``python -m producer --catalog catalog.json`` submits a run; the subcommands build catalogs,
report run status, redrive the dead-letter queue and manage the embedded stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from shared.errors import InputError, run_command


def catalog_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "catalog",
        help="build a shard map (catalog JSON)",
        description="Build a shard map: offline from granule files (--granules), or from NASA CMR (--short-name ...).",
    )
    p.add_argument("--output", help="where to write the catalog JSON (required unless --dry-run)")
    p.add_argument("--config", help="pipeline config YAML (beams and coordinate datasets)")
    p.add_argument("--granules", metavar="DIR_OR_S3_PREFIX", help="read these granules' coordinates (offline)")
    cmr = p.add_argument_group("NASA CMR search")
    cmr.add_argument("--short-name", default="ATL06", help="the CMR collection short name (default ATL06)")
    cmr.add_argument("--version", default="006", help="the collection version (default 006)")
    cmr.add_argument("--cycle", type=int, help="ICESat-2 cycle, selected by the granules' own cycle field")
    cmr.add_argument("--start-date", help="YYYY-MM-DD")
    cmr.add_argument("--end-date", help="YYYY-MM-DD")
    cmr.add_argument(
        "--polygon",
        help=(
            "GeoJSON region file (Polygon, MultiPolygon, Feature, FeatureCollection), or the shipped "
            "'antarctica_basins'"
        ),
    )
    cmr.add_argument("--bbox", help="W,S,E,N in degrees")
    cmr.add_argument("--dry-run", action="store_true", help="print the query and exit")
    p.set_defaults(func=run_catalog)


def run_catalog(args: argparse.Namespace) -> int:
    if not args.output and not args.dry_run:
        raise InputError("--output is required (or --dry-run)")
    if args.granules:
        from producer.granule_catalog import build_from_granules, build_report, require_usable
        from shared.config import load_config

        shard_map = build_from_granules(args.granules, load_config(args.config))
        for line in build_report(shard_map):
            print(line, file=sys.stderr)
        require_usable(shard_map, args.granules)
        shard_map.save(args.output)
        totals = shard_map.metadata.totals
        print(
            f"{totals.shards} shards, {totals.granules} granules, {totals.granule_shard_pairs} granule-shard "
            f"pairs -> {args.output}"
        )
        return 0
    from producer import cmr

    return cmr.main(args)


def add_stack_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", help="CloudFormation stack name (default: $SHARD_QUEUE_STACK or icesat2-shard-queue)")


def add_credentials_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--credentials-file",
        metavar="FILE",
        help="JSON with accessKeyId/secretAccessKey/sessionToken/expiration (default: NASA Earthdata login)",
    )


def submit_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="shard map JSON")
    p.add_argument("--store", help="output Zarr store (default: s3://<stack bucket>/<prefix><run id>.zarr)")
    p.add_argument("--config", help="pipeline config YAML (default: the shipped ATL06 config)")
    p.add_argument("--shard", type=int, action="append", metavar="KEY", help="submit only this shard (repeatable)")
    p.add_argument("--max-shards", type=int, metavar="N", help="submit at most N shards")
    p.add_argument(
        "--windows",
        default="cycle",
        metavar="KIND|START/END,...",
        help="time windows: cycle (default), month, quarter, year, or explicit ranges START/END[,START/END...] "
        "(ISO dates, UTC); a run writes the windows its catalog's granules start in (for ranges: every range), "
        "adding them to an existing store's time axis",
    )
    p.add_argument(
        "--region",
        metavar="NAME_OR_GEOJSON",
        help="the store's cells: the order-6 shards of a packaged region (antarctica_basins), a .geojson polygon "
        "file, or a JSON list of shard keys (or a catalog) (default: an existing store's region, else the "
        "catalog's shards)",
    )
    p.add_argument("--run-id", help="run id; re-submitting an existing run id only sends its PENDING shards")
    p.add_argument("--output-creds", metavar="FILE", help="credentials JSON for an external output store")
    p.add_argument(
        "--seconds-per-shard",
        type=float,
        help="for the cost estimate (default: measured on the most recent finished run, else 60 s assumed)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; store and send nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_credentials_options(p)
    add_stack_option(p)


def run_submit(args: argparse.Namespace) -> int:
    from producer.submit import submit

    return submit(args)


# Commands import their modules when run, so `--help` and `catalog` start fast.
def run_status(args: argparse.Namespace) -> int:
    from producer.status import status

    return status(args)


def run_redrive(args: argparse.Namespace) -> int:
    from producer.redrive import redrive

    return redrive(args)


def run_resubmit(args: argparse.Namespace) -> int:
    from producer.redrive import resubmit

    return resubmit(args)


def index_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="build the catalog's missing or stale granule indexes (queue work)",
        description=(
            "One message per granule whose index is missing or no longer matches its granule, to the stack's "
            "index queue; a later submit points each granule at its index, so workers read no HDF5 metadata."
        ),
    )
    p.add_argument("--catalog", required=True, help="shard map JSON (offline or CMR)")
    p.add_argument("--config", help="pipeline config YAML (default: the shipped ATL06 config)")
    p.add_argument("--run-id", help="run id of the index run; again: only its PENDING granules are sent")
    add_credentials_options(p)
    add_stack_option(p)
    p.set_defaults(func=run_index)


def run_index(args: argparse.Namespace) -> int:
    from producer.indexes import index

    return index(args)


def open_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "open",
        help="one level and time range of a store, as an xarray Dataset",
        description="Print the windows and the Dataset of one level of a store (local path or s3://).",
    )
    p.add_argument("store", help="the Zarr store: a local path or s3://bucket/prefix.zarr")
    p.add_argument("--level", type=int, help="HEALPix order, from the shard order to the child order (default: finest)")
    p.add_argument("--start", help="first window start to include (YYYY-MM-DD)")
    p.add_argument("--end", help="last window start to include (YYYY-MM-DD)")
    p.set_defaults(func=run_open)


def run_open(args: argparse.Namespace) -> int:
    from producer.opening import run_open

    return run_open(args)


def status_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="recent runs, or one run's shards",
        description="Run status from the run table (queries, never scans).",
    )
    p.add_argument("run_id", nargs="?", help="a run id (default: list recent runs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="refresh until every shard has finished")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch")
    p.add_argument("--limit", type=int, default=20, help="how many recent runs to list")
    add_stack_option(p)
    p.set_defaults(func=run_status)


def redrive_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "redrive",
        help="move dead-lettered shards back to the queue",
        description="Move DLQ messages back to the shard queue and put their shards back to PENDING.",
    )
    p.add_argument("--run-id", help="only this run's messages")
    p.add_argument(
        "--refresh-credentials",
        action="store_true",
        help="re-put the credentials parameter first (it is refreshed anyway when expired)",
    )
    add_credentials_options(p)
    add_stack_option(p)
    p.set_defaults(func=run_redrive)


def resubmit_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resubmit",
        help="re-enqueue shards of a run from its records",
        description="Re-enqueue shards from the run records (when their DLQ messages are gone).",
    )
    p.add_argument("run_id")
    p.add_argument(
        "--status", default="FAILED,PARTIAL", help="comma-separated statuses to resubmit (default FAILED,PARTIAL)"
    )
    p.add_argument("--refresh-credentials", action="store_true", help="re-put the credentials parameter first")
    add_credentials_options(p)
    add_stack_option(p)
    p.set_defaults(func=run_resubmit)


def run_stack(args: argparse.Namespace) -> int:
    from producer.stack import stack_command

    return stack_command(args)


def stack_parser(sub: argparse._SubParsersAction) -> None:
    from producer.stack.emulator import add_s3_delay_options  # standard library only: cheap

    p = sub.add_parser(
        "stack",
        help="the embedded stack (AWS emulator on this machine)",
        description="Run template.yaml in an AWS emulator on loopback: no AWS account needed.",
    )
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=(
            "where the emulator's state file and log go (default: $SHARD_QUEUE_STATE_DIR, else .stack in "
            "the project root)"
        ),
    )
    add_stack_option(p)
    delays = p.add_argument_group("S3 latency (stack up; for benchmarks: the emulator answers S3 in ~1 ms on loopback)")
    add_s3_delay_options(delays)
    p.set_defaults(func=run_stack)


SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "stack": stack_parser,
    "catalog": catalog_parser,
    "index": index_parser,
    "open": open_parser,
    "status": status_parser,
    "redrive": redrive_parser,
    "resubmit": resubmit_parser,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Submit a run: python -m producer --catalog catalog.json [options]. Or one of the commands below.",
        epilog="Submit options: python -m producer submit --help",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    submit_parser(
        sub.add_parser(
            "submit",
            help="submit a run (the default command)",
            description="Submit one SQS message per shard of a catalog.",
        )
    )
    for add in SUBCOMMANDS.values():
        add(sub)
    if argv and argv[0].startswith("--") and argv[0] not in ("--help", "-h"):
        argv = ["submit", *argv]  # `python -m producer --catalog ...` submits
    args = parser.parse_args(argv)
    if args.command == "submit":
        args.func = run_submit
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args.func, args)

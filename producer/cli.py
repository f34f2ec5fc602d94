"""``python -m producer``: the operator's command line.

``python -m producer --catalog catalog.json`` submits a run; the subcommands build catalogs,
report run status, redrive the dead-letter queue and manage the embedded stack.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from shared.errors import ShardQueueError


def catalog_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "catalog",
        help="build a shard map (catalog JSON)",
        description="Build a shard map: offline from granule files (--granules), or from NASA CMR (--short-name ...).",
    )
    p.add_argument("--output", required=True, help="where to write the catalog JSON")
    p.add_argument("--config", help="pipeline config YAML (beams and coordinate datasets)")
    p.add_argument("--granules", metavar="DIR_OR_S3_PREFIX", help="read these granules' coordinates (offline)")
    cmr = p.add_argument_group("NASA CMR search")
    cmr.add_argument("--short-name", default="ATL06")
    cmr.add_argument("--version", default="006")
    cmr.add_argument("--cycle", type=int, help="ICESat-2 cycle, selected by the granules' own cycle field")
    cmr.add_argument("--start-date", help="YYYY-MM-DD")
    cmr.add_argument("--end-date", help="YYYY-MM-DD")
    cmr.add_argument("--polygon", help="GeoJSON region (Polygon, MultiPolygon, Feature, FeatureCollection)")
    cmr.add_argument("--bbox", help="W,S,E,N in degrees")
    cmr.add_argument("--dry-run", action="store_true", help="print the query and exit")
    p.set_defaults(func=run_catalog)


def run_catalog(args: argparse.Namespace) -> int:
    if args.granules:
        from producer.granule_catalog import build_from_granules
        from shared.config import load_config

        shard_map = build_from_granules(args.granules, load_config(args.config))
        shard_map.save(args.output)
        for bad in shard_map.metadata.model_extra.get("unreadable_granules", []):
            print(f"warning: skipped {bad['reason']}", file=sys.stderr)
        totals = shard_map.metadata.totals
        print(f"{totals.shards} shards, {totals.granules} granules, {totals.granule_shard_pairs} granule-shard pairs -> {args.output}")
        return 0
    from producer import cmr

    return cmr.main(args)


SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "catalog": catalog_parser,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m producer", description=__doc__.split("\n\n")[0].strip("`"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ShardQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

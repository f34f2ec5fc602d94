"""``python -m worker``: process shards locally, or run the queue locally like Lambda would."""

from __future__ import annotations

import argparse
import sys

from shared.catalog import load_catalog
from shared.config import load_config
from shared.errors import ShardQueueError
from shared.results import ShardStatus


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="Aggregate ATL06 shards of a catalog into a Zarr store on this machine.",
    )
    parser.add_argument("--catalog", required=True, help="shard map JSON (python -m producer catalog)")
    parser.add_argument("--store", required=True, help="output Zarr store: a local path or s3://bucket/prefix.zarr")
    parser.add_argument("--config", help="pipeline config YAML (default: the shipped ATL06 config)")
    parser.add_argument("--shard", type=int, action="append", metavar="KEY", help="process only this shard (repeatable)")
    parser.add_argument("--max-shards", type=int, metavar="N", help="process at most N shards")
    parser.add_argument("--workers", type=int, metavar="N", help="shards processed at a time (default: CPU count)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from worker.local import run_local
    from worker.store import create_template

    try:
        shard_map = load_catalog(args.catalog)
        config = load_config(args.config)
        keys = shard_map.select(args.shard, args.max_shards)
        create_template(args.store, shard_map.shard_keys, config, shard_map.grid_signature, {"catalog": shard_map.metadata.model_dump(mode="json")})
        counts: dict[str, int] = {}
        observations = 0
        for result in run_local(shard_map, keys, config, args.store, args.workers):
            print(result.summary(), flush=True)
            counts[result.status] = counts.get(result.status, 0) + 1
            observations += result.observations
    except ShardQueueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{len(keys)} shards: {summary or 'none'}; {observations} observations; store {args.store}")
    return 1 if counts.get(ShardStatus.FAILED) else 0


if __name__ == "__main__":
    sys.exit(main())

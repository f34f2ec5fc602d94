"""Process one shard with one read strategy, in a process of its own, and report what it cost.

    python -m bench.run --strategy reader --catalog shard.json --shard KEY --stats out.npz

Run by ``python -m bench`` once per strategy so that each one's peak memory (VmHWM of this
process: the interpreter, the imports and the shard's work) is its own. The environment
points boto3 (and so h5coro) at the emulator. Prints one JSON object on stdout.

Strategies:
  baseline        whole latitude/longitude per beam, then a hyperslice of the values (bench.baseline)
  reader          the project's worker (worker.shard.process_shard), catalog without segments
  reader_segments the same worker, with the per-beam segments the offline catalog records
  reader_catalog  the same worker, with the segments and the chunks the offline catalog records
  reader_index    the same worker, the catalog without segments (e.g. CMR) plus a reference to
                  each granule's index (built beforehand under --index-root)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import UTC, datetime

import numpy as np

from shared.windows import TimeWindow

STRATEGIES = ("baseline", "reader", "reader_segments", "reader_catalog", "reader_index")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): VmHWM, which starts afresh at exec.

    (``ru_maxrss`` would not do: Linux carries the parent's peak across fork and exec, so every
    strategy would inherit the benchmark driver's.) Falls back to ru_maxrss without /proc.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ALL_TIME = TimeWindow(start=datetime(2018, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--strategy", choices=STRATEGIES, required=True)
    parser.add_argument("--catalog", required=True, help="shard map JSON")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--stats", required=True, help="where to save the shard's statistics (.npz)")
    parser.add_argument("--local-dir", help="read the granules from this folder instead of S3 (same names)")
    parser.add_argument("--index-root", help="where the granule indexes are (reader_index): s3://... or a folder")
    args = parser.parse_args(argv)

    from bench import baseline
    from shared.catalog import load_catalog
    from shared.config import load_config
    from shared.granules import ReadContext, S3RangeReader, ShardGeometry, index_location
    from worker.aggregate import aggregate
    from worker.shard import process_shard

    config = load_config()
    shard_map = load_catalog(args.catalog)
    grid = shard_map.grid_signature
    granules = shard_map.shards[args.shard]
    if args.strategy in ("baseline", "reader", "reader_index"):
        granules = [g.model_copy(update={"segments": None, "chunks": None}) for g in granules]
    if args.strategy == "reader_index":
        if not args.index_root:
            parser.error("reader_index needs --index-root")
        granules = [g.model_copy(update={"index": index_location(args.index_root, g.id)}) for g in granules]
    elif args.strategy == "reader_segments":
        granules = [g.model_copy(update={"chunks": None}) for g in granules]
    if args.local_dir:
        granules = [g.model_copy(update={"s3": None, "path": f"{args.local_dir}/{g.id}"}) for g in granules]
    context = ReadContext(s3=None if args.local_dir else S3RangeReader())
    rss_ready = _peak_rss_mb()  # interpreter and imports, before any shard work

    captured: dict[str, np.ndarray] = {}
    strategies: dict[str, int] = {}  # granules read per read strategy (a stale index would show here)
    cpu0, wall0 = _cpu(), time.perf_counter()
    if args.strategy == "baseline":
        points = baseline.read_shard(
            granules, ShardGeometry.of(args.shard, grid), config, context, context.granules_in_flight
        )
        captured.update(aggregate(points.cell, points.h, points.sigma, config, grid.children_per_shard))
        observations, failed = len(points), 0
    else:
        # one window holding every point, order 12: the statistics the baseline computes
        result = process_shard(
            args.shard,
            granules,
            config,
            grid,
            [ALL_TIME],
            lambda s: captured.update({k: v[0] for k, v in s[12].items()}),
            context,
        )
        observations, failed, strategies = result.observations, len(result.granules_failed), result.strategies
        if failed:
            print(f"warning: {failed} granules failed: {result.granules_failed[:3]}", file=sys.stderr)
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0

    np.savez(args.stats, **captured)
    print(
        json.dumps(
            {
                "strategy": args.strategy,
                "source": "local files" if args.local_dir else "s3",
                "granules": len(granules),
                "granules_failed": failed,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": _peak_rss_mb(),
                "rss_before_work_mb": rss_ready,
                "requests": context.stats.requests,
                "bytes": context.stats.bytes,
                "observations": observations,
                "observations_per_s": observations / wall if wall > 0 else None,
                "read_by": strategies,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

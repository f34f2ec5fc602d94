"""One shard, start to finish: read its granules, aggregate, write, report what happened."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from shared.catalog import GranuleRef, unique_granules
from shared.config import PipelineConfig
from shared.granules import GranuleReadError, Points, ReadContext, ShardGeometry, choose_strategy
from shared.grid import GridSignature
from shared.results import FailureKind, GranuleFailure, ShardResult, ShardStatus
from shared.windows import TimeWindow, window_index
from worker.aggregate import StatsByLevel, aggregate_levels
from worker.control import DeadlineReached

ShardWriter = Callable[[StatsByLevel], None]
StopCheck = Callable[[], bool]


def _never() -> bool:
    return False


def read_shard(
    granules: list[GranuleRef],
    geometry: ShardGeometry,
    config: PipelineConfig,
    context: ReadContext,
    should_stop: StopCheck = _never,
) -> tuple[list[Points], list[GranuleFailure], dict[str, int]]:
    """Read every granule, ``context.granules_in_flight`` at a time (the work is waiting on byte
    ranges and zlib, which release the GIL); each failure is recorded with its reason, never
    dropped. Also returns how many granules each read strategy read."""

    def one(granule: GranuleRef) -> tuple[str, Points] | GranuleFailure:
        if should_stop():
            raise DeadlineReached(f"stopped before reading {granule.id}: the invocation deadline is near")
        try:  # the name of what read it: a granule index found stale falls back, and says so
            return choose_strategy(granule, config).read_named(granule, geometry, config, context)
        except GranuleReadError as exc:
            return GranuleFailure(granule=granule.id, kind=exc.kind, reason=exc.reason)

    with ThreadPoolExecutor(max_workers=max(1, min(context.granules_in_flight, len(granules)))) as pool:
        outcomes = list(pool.map(one, granules))
    read = [o for o in outcomes if not isinstance(o, GranuleFailure)]
    return (
        [points for _, points in read],
        [o for o in outcomes if isinstance(o, GranuleFailure)],
        dict(Counter(name for name, _ in read)),
    )


def process_shard(
    shard_key: int,
    granules: list[GranuleRef],
    config: PipelineConfig,
    grid: GridSignature,
    windows: list[TimeWindow],
    write: ShardWriter,
    context: ReadContext | None = None,
    should_stop: StopCheck = _never,
) -> ShardResult:
    """Aggregate one shard and hand its statistics to ``write`` (unless nothing could be read):
    per level, one row per entry of ``windows`` (sorted). Each granule is read once; its points
    go to the window their own time falls in, and points in none of ``windows`` are not counted.

    A granule that fails makes the shard PARTIAL (or FAILED when none could be read);
    the failures travel in the result with their reasons. ``should_stop`` is asked before each
    granule and before writing; when it says so, :class:`DeadlineReached` is raised and nothing
    has been written. A granule id listed more than once is read once.
    """
    started = time.perf_counter()
    context = context or ReadContext()
    granules, _ = unique_granules(granules)  # every path (catalog, message, S3 list) ends here: never count one twice
    parts, failures, strategies = read_shard(
        granules, ShardGeometry.of(shard_key, grid, windows), config, context, should_stop=should_stop
    )
    points = Points.concat(parts)
    window = window_index(points.time, windows)
    points = Points(*(getattr(points, name)[window >= 0] for name in ("cell", "h", "sigma", "time")))
    window = window[window >= 0]
    status = ShardResult.status_for(len(parts), failures, len(points))
    stats = aggregate_levels(points.cell, points.h, points.sigma, window, config, grid, len(windows))
    if status != ShardStatus.FAILED:
        if should_stop():
            raise DeadlineReached("stopped before writing: the invocation deadline is near")
        write(stats)
    error = None
    if failures:
        error = f"{len(failures)} of {len(granules)} granules could not be read"
        if any(f.kind == FailureKind.DENIED for f in failures):
            error += "; S3 credentials expired or were refused: refresh them and redrive"
    return ShardResult(
        shard_key=shard_key,
        status=status,
        granules_read=len(parts),
        granules_failed=failures,
        observations=len(points),
        cells_with_data=int(np.count_nonzero(np.bincount(points.cell, minlength=grid.children_per_shard))),
        duration_s=time.perf_counter() - started,
        bytes_fetched=context.stats.bytes,
        requests=context.stats.requests,
        strategies=strategies,
        error=error,
    )

"""Process shards of a catalog on this machine, several at a time: the "test locally first" path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from shared.catalog import GranuleRef, ShardMap
from shared.config import PipelineConfig
from shared.granules import ReadContext, S3RangeReader
from shared.grid import GridSignature
from shared.results import ShardResult, ShardStatus
from shared.store import shard_position, write_shard
from shared.windows import PlacedWindow
from worker.shard import process_shard


@dataclass(frozen=True)
class LocalJob:
    """What one shard's process needs, and no more: a job carries its own granules, never the
    whole catalog (pickled into every process, a continental catalog cost more than the shard)."""

    shard_key: int
    shard_index: int  # its position in the store's region
    granules: list[GranuleRef]
    grid: GridSignature
    windows: list[PlacedWindow]  # the windows it writes, with their positions in the store's time axis


def run_one(job: LocalJob, config: PipelineConfig, store: str) -> ShardResult:
    needs_s3 = any(g.s3 for g in job.granules)
    context = ReadContext(s3=S3RangeReader() if needs_s3 else None)
    try:
        write = partial(write_shard, store, job.shard_index, [w.index for w in job.windows])
        return process_shard(job.shard_key, job.granules, config, job.grid, job.windows, write, context)
    except Exception as exc:  # a shard that cannot be written is FAILED, the others go on
        return ShardResult(shard_key=job.shard_key, status=ShardStatus.FAILED, error=" ".join(str(exc).split()))


def run_local(
    shard_map: ShardMap,
    keys: list[int],
    config: PipelineConfig,
    store: str,
    region: list[int],
    windows: list[PlacedWindow],
    workers: int | None = None,
) -> Iterator[ShardResult]:
    """Yield each shard's result as it finishes. Shards run in separate processes (CPU-bound).
    ``region`` (sorted shard keys) places each shard in the store, ``windows`` are those it writes."""
    grid = shard_map.grid_signature
    jobs = [LocalJob(k, shard_position(region, k), shard_map.shards[k], grid, windows) for k in keys]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        for job in jobs:
            yield run_one(job, config, store)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_one, job, config, store) for job in jobs]
        for future in as_completed(futures):
            yield future.result()

"""Offline shard map: read each granule's coordinates once and record which shards it touches.

Besides the granule list per shard, it records per beam the index range ``[start, stop)`` that
holds the shard's points, so a worker reads only that slice of each beam (a granule crosses
~30 shards; without the ranges every shard would read the whole coordinate arrays again).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np

from shared.catalog import GranuleRef, ShardMap
from shared.config import PipelineConfig
from shared.errors import CatalogError
from shared.grid import DEFAULT_GRID, GridSignature, shard_keys_of
from worker.granule_io import GranuleReadError, ReadContext, S3RangeReader, split_s3_url
from worker.reader import GranuleReader


def list_granules(source: str) -> list[str]:
    """Granule locations under a local folder or an ``s3://bucket/prefix``, sorted."""
    if source.startswith("s3://"):
        bucket, prefix = split_s3_url(source if "/" in source.removeprefix("s3://") else source + "/")
        client = boto3.client("s3")
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("*")):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".h5")]
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]
    root = Path(source)
    if root.is_file():
        return [str(root.resolve())]
    if not root.is_dir():
        raise CatalogError(f"granule source {source} is neither a folder, a file nor an s3:// prefix")
    return [str(p.resolve()) for p in sorted(root.glob("*.h5"))]


def beam_segments(lat: np.ndarray, lon: np.ndarray, grid: GridSignature) -> dict[int, tuple[int, int]]:
    """Per shard touched by one beam: the index range holding its points."""
    keys = shard_keys_of(lat, lon, grid.parent_order)
    order = np.argsort(keys, kind="stable")
    unique, first = np.unique(keys[order], return_index=True)
    bounds = np.append(first, keys.size)
    return {
        int(key): (int(order[bounds[i] : bounds[i + 1]].min()), int(order[bounds[i] : bounds[i + 1]].max()) + 1)
        for i, key in enumerate(unique)
    }


def granule_shards(location: str, config: PipelineConfig, grid: GridSignature, context: ReadContext) -> dict[int, GranuleRef]:
    """The granule as each shard it touches needs it: per beam, the index range holding the
    shard's points and where the chunks of every dataset over that range are stored."""
    name = location.rsplit("/", 1)[-1]
    ref = GranuleRef(id=name, **({"s3": location} if location.startswith("s3://") else {"path": location}))
    try:
        reader = GranuleReader(ref, config, context)
        try:
            coordinates = reader.whole_coordinates()
            shards: dict[int, dict[str, tuple[int, int]]] = {}
            for beam, (lat, lon, ok) in coordinates.items():
                index = np.flatnonzero(ok)  # points without valid coordinates belong to no shard
                for key, (start, stop) in beam_segments(lat[ok], lon[ok], grid).items():
                    shards.setdefault(key, {})[beam] = (int(index[start]), int(index[stop - 1]) + 1)
            return {key: ref.model_copy(update={"segments": segments, "chunks": reader.recorded_chunks(segments) or None})
                    for key, segments in shards.items()}
        finally:
            reader.close()
    except GranuleReadError as exc:
        raise CatalogError(f"cannot read granule {location}: {exc}") from None


def build_from_granules(source: str, config: PipelineConfig, grid: GridSignature = DEFAULT_GRID, threads: int = 8) -> ShardMap:
    locations = list_granules(source)
    if not locations:
        raise CatalogError(f"no .h5 granules found in {source}")
    context = ReadContext(s3=S3RangeReader() if source.startswith("s3://") else None)

    def scan(location: str) -> dict[int, GranuleRef] | str:
        try:
            return granule_shards(location, config, grid, context)
        except CatalogError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        per_granule = list(pool.map(scan, locations))
    shards: dict[int, list[GranuleRef]] = {}
    unreadable = [{"granule": loc, "reason": r} for loc, r in zip(locations, per_granule) if isinstance(r, str)]
    for touched in per_granule:
        if isinstance(touched, str):
            continue  # recorded in the metadata, printed by the CLI
        for key, ref in touched.items():
            shards.setdefault(key, []).append(ref)
    if len(unreadable) == len(locations):
        raise CatalogError(f"none of the {len(locations)} granules in {source} could be read; first: {unreadable[0]['reason']}")
    metadata = {
        "source": "granules",
        "short_name": config.product,
        "granule_source": source,
        "granules_scanned": len(locations),
        "unreadable_granules": unreadable,
    }
    return ShardMap.build(shards, metadata, grid)

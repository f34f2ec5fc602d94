"""Offline shard map: read each granule's coordinates once and record which shards it touches.

Besides the granule list per shard, it records per beam the index range ``[start, stop)`` that
holds the shard's points, so a worker reads only that slice of each beam (a granule crosses
~30 shards; without the ranges every shard would read the whole coordinate arrays again).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from shared.catalog import GranuleRef, ShardMap, UnreadableGranule
from shared.config import PipelineConfig
from shared.errors import CatalogError
from shared.granules import GranuleReadError, GranuleSurvey, ReadContext, S3RangeReader, split_s3_url
from shared.granules.points import shard_segments
from shared.grid import DEFAULT_GRID, GridSignature

GRANULE_SUFFIX = ".h5"


def list_entries(source: str) -> list[str]:
    """Every object under an ``s3://bucket/prefix``, or every entry of a local folder (a file: itself), sorted."""
    if source.startswith("s3://"):
        bucket, prefix = split_s3_url(source if "/" in source.removeprefix("s3://") else source + "/")
        client = boto3.client("s3")
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("*")):
            keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]  # not folder markers
        return [f"s3://{bucket}/{k}" for k in sorted(keys)]
    root = Path(source)
    if root.is_file():
        return [str(root.resolve())]
    if not root.is_dir():
        raise CatalogError(f"granule source {source} is neither a folder, a file nor an s3:// prefix")
    return [str(p.resolve()) for p in sorted(root.iterdir())]


def not_a_granule(location: str) -> str | None:
    """Why an entry of the source is not even tried as a granule; None for a candidate."""
    if not location.startswith("s3://") and Path(location).is_dir():
        return "a folder: granules are not searched in subfolders"
    if not location.endswith(GRANULE_SUFFIX):
        return f"not a {GRANULE_SUFFIX} file"
    return None


def list_granules(source: str) -> list[str]:
    """Granule locations under a local folder or an ``s3://bucket/prefix``, sorted."""
    return [loc for loc in list_entries(source) if not_a_granule(loc) is None]


class UnusableGranule(CatalogError):
    """One granule the catalog cannot use; the others are catalogued. ``reason`` is one line."""

    def __init__(self, location: str, reason: str):
        self.location = location
        self.reason = " ".join(reason.split())
        super().__init__(f"{location}: {self.reason}")

    def record(self) -> UnreadableGranule:
        return UnreadableGranule(id=granule_id(self.location), location=self.location, reason=self.reason)


def exception_name(exc: BaseException) -> str:
    """``struct.error`` rather than a bare ``error``; builtins by their plain name."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def granule_id(location: str) -> str:
    return location.rsplit("/", 1)[-1]


def granule_shards(
    location: str, config: PipelineConfig, grid: GridSignature, context: ReadContext
) -> dict[int, GranuleRef]:
    """The granule as each shard it touches needs it: per beam, the index range holding the
    shard's points and where the chunks of every dataset over that range are stored.

    The boundary of reading one granule: whatever goes wrong in it (h5coro's parser meeting a
    truncated file raises struct.error, a Rust extension panics) becomes :class:`UnusableGranule`.
    """
    try:
        return _granule_shards(location, config, grid, context)
    except UnusableGranule:
        raise
    except GranuleReadError as exc:
        reason = exc.reason.removeprefix(f"{location}: ").removeprefix(f"{granule_id(location)}: ")
        raise UnusableGranule(location, reason) from None
    except Exception as exc:  # the reader's parser (h5coro) failing on bytes it did not expect
        reason = f"cannot parse its HDF5 structure ({exception_name(exc)}: {exc}): truncated or damaged?"
        raise UnusableGranule(location, reason) from None
    except BaseException as exc:  # pyo3's PanicException is a BaseException; interrupts still stop the build
        if type(exc).__name__ != "PanicException":
            raise
        raise UnusableGranule(location, f"the grid library failed on its coordinates (panic: {exc})") from None


def _granule_shards(
    location: str, config: PipelineConfig, grid: GridSignature, context: ReadContext
) -> dict[int, GranuleRef]:
    where = {"s3": location} if location.startswith("s3://") else {"path": location}
    ref = GranuleRef(id=granule_id(location), **where)
    with GranuleSurvey(ref, config, context) as survey:
        coordinates = survey.coordinates()
        if not coordinates:  # e.g. an HDF5 file of another layout: a silent "no shards" would hide it
            raise UnusableGranule(
                location,
                f"not a native {config.product} granule: no beam has "
                f"/<beam>/{config.group}/{config.latitude} ({', '.join(config.beams)})",
            )
        shards = shard_segments(coordinates, grid)
        return {
            key: ref.model_copy(update={"segments": segments, "chunks": survey.chunk_records(segments) or None})
            for key, segments in shards.items()
        }


def build_from_granules(source: str, config: PipelineConfig, grid: GridSignature = DEFAULT_GRID) -> ShardMap:
    """The shard map of every granule under ``source``, read ``granules_in_flight`` at a time (the
    read layer's one concurrency setting). Whatever cannot be used is listed in its
    ``unreadable`` with the reason; the map may have no shard at all (see :func:`require_usable`)."""
    entries = list_entries(source)
    if not entries:
        raise CatalogError(f"no files found in {source}")
    skipped = [UnusableGranule(loc, why).record() for loc in entries if (why := not_a_granule(loc))]
    locations = [loc for loc in entries if not_a_granule(loc) is None]
    context = ReadContext(s3=S3RangeReader() if source.startswith("s3://") else None)

    def scan(location: str) -> dict[int, GranuleRef] | UnreadableGranule:
        try:
            return granule_shards(location, config, grid, context)
        except UnusableGranule as exc:
            return exc.record()

    with ThreadPoolExecutor(max_workers=context.granules_in_flight) as pool:
        per_granule = list(pool.map(scan, locations))
    unreadable = skipped + [r for r in per_granule if isinstance(r, UnreadableGranule)]
    shards: dict[int, list[GranuleRef]] = {}
    for touched in per_granule:
        if isinstance(touched, dict):
            for key, ref in touched.items():
                shards.setdefault(key, []).append(ref)
    metadata = {
        "source": "granules",
        "short_name": config.product,
        "granule_source": source,
        "granules_scanned": len(locations),
        "granules_unreadable": len(unreadable),
        "granules_without_points": sum(1 for t in per_granule if t == {}),
    }
    return ShardMap.build(shards, metadata, grid, unreadable)


def build_report(shard_map: ShardMap) -> list[str]:
    """Lines for the operator (stderr): one warning per skipped entry, then how many granules
    were read but have no point in any shard (not an error: they are simply in no shard)."""
    lines = [f"warning: skipped {u.location}: {u.reason}" for u in shard_map.unreadable]
    extra = shard_map.metadata.model_extra or {}
    if extra.get("granules_without_points"):
        lines.append(
            f"{extra['granules_without_points']} of {extra['granules_scanned']} granules scanned "
            "have no valid point in any shard: they are in no shard"
        )
    return lines


def require_usable(shard_map: ShardMap, source: str) -> None:
    """Refuse to write a catalog with no shard: no granule under ``source`` could be used."""
    if shard_map.shard_keys:
        return
    extra = shard_map.metadata.model_extra or {}
    why = [f"{len(shard_map.unreadable)} skipped (see the warnings above)"] if shard_map.unreadable else []
    if extra.get("granules_without_points"):
        why.append(f"{extra['granules_without_points']} with no valid point in any shard")
    raise CatalogError(f"no granule in {source} could be used: {', '.join(why) or 'none found'}")

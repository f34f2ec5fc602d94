"""A granule through each way a worker can read it, checked against the independent computation."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from producer.granule_catalog import granule_shards
from shared.catalog import GranuleRef
from shared.config import load_config
from shared.granules import GranuleIndex, ReadContext, build_index, index_location, write_index
from shared.granules.strategies import (
    CATALOG_SEGMENTS,
    GRANULE_INDEX,
    LATITUDE_SEARCH,
    RECORDED_CHUNKS,
    has_recorded_chunks,
)
from shared.grid import DEFAULT_GRID, child_cell_ids, parent_of, shard_nested_id
from shared.results import ShardResult, ShardStatus
from tests.independent import expected_cells, kept_points
from tests.pipeline import ALL_TIME
from tests.test_real_data import assert_cells_match
from worker.shard import process_shard

# no catalog entry (the latitude search), the catalog's segments only, the whole entry (recorded chunks)
READ_PATHS = ("search", "segments", "catalog")


def strategy_for(ref: GranuleRef, how: str) -> str:
    """The read strategy read path ``how`` must run: a catalog entry without recorded chunks
    (a contiguous dataset has none) is read by its segments."""
    if how == "search":
        return LATITUDE_SEARCH.name
    return (
        RECORDED_CHUNKS.name if how == "catalog" and has_recorded_chunks(ref, load_config()) else CATALOG_SEGMENTS.name
    )


def as_read(ref: GranuleRef, how: str) -> GranuleRef:
    """The granule as a worker gets it through read path ``how`` (one of :data:`READ_PATHS`)."""
    if how == "search":
        return GranuleRef(id=ref.id, s3=ref.s3, path=ref.path)
    return ref.model_copy(update={"chunks": None}) if how == "segments" else ref


def cataloged(path: Path) -> dict[int, GranuleRef]:
    """Every shard the granule touches, and its catalog entry there."""
    return granule_shards(str(path), load_config(), DEFAULT_GRID, ReadContext())


def indexed(path: Path, folder: Path) -> tuple[GranuleIndex, str]:
    """The granule's index, built and written under ``folder``, and where it is."""
    index = build_index(str(path), path.name, load_config(), DEFAULT_GRID, ReadContext())
    location = index_location(str(folder), path.name)
    write_index(index, location, ReadContext())
    return index, location


def index_strategy(index: GranuleIndex, shard_key: int) -> str:
    """What reads a shard through a current index: its chunks, or (beams the index could not
    record as chunks, e.g. contiguous datasets) the metadata over the index's ranges."""
    part = index.shard(shard_key)
    return GRANULE_INDEX.name if part.fully_recorded else f"{CATALOG_SEGMENTS.name} (index without chunks)"


def process(shard_key: int, granules: list[GranuleRef], context: ReadContext | None = None) -> tuple[ShardResult, dict]:
    """The shard processed as a worker does; returns its result and the statistics it wrote."""
    written: dict[str, np.ndarray] = {}

    def write(stats: dict[int, dict[str, np.ndarray]]) -> None:
        written.update({name: values[0] for name, values in stats[DEFAULT_GRID.child_order].items()})

    result = process_shard(shard_key, granules, load_config(), DEFAULT_GRID, [ALL_TIME], write, context)
    return result, written


def in_shard(expected: dict[int, dict], shard_key: int) -> dict[int, dict]:
    cells = np.fromiter(expected, np.uint64, len(expected))
    mine = parent_of(cells, DEFAULT_GRID.child_order, DEFAULT_GRID.parent_order) == np.uint64(
        shard_nested_id(shard_key)
    )
    return {int(c): expected[int(c)] for c in cells[mine]}


def assert_every_read_path_matches(path: Path, expected: dict[int, dict] | None = None) -> None:
    """Each shard of the granule, read each way (and through the granule's index), holds exactly
    the independent statistics of its cells, and the shards together hold every expected cell."""
    expected = expected_cells(kept_points(path)) if expected is None else expected
    covered: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="indexes-") as folder:
        index, location = indexed(path, Path(folder))
        refs = cataloged(path)
        assert set(index.shards) == set(refs), "the index and the catalog see different shards"
        for key, ref in refs.items():
            mine = in_shard(expected, key)
            covered |= set(mine)
            ways = [(how, as_read(ref, how), strategy_for(ref, how)) for how in READ_PATHS]
            ways.append(("index", GranuleRef(id=ref.id, path=ref.path, index=location), index_strategy(index, key)))
            for how, granule, strategy in ways:
                result, stats = process(key, [granule])
                assert result.status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY), f"{how}: {result.summary()}"
                assert result.strategies == {strategy: 1}, f"{how}: {result.summary()}"
                assert_cells_match(child_cell_ids(key), stats, mine)
    assert covered == set(expected), "cells missing from every shard the catalog lists"

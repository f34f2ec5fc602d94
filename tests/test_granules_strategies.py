"""One function chooses how a granule is read, and the worker reports which strategy read what."""

from __future__ import annotations

import numpy as np
import pytest

from producer.granule_catalog import granule_shards
from shared.catalog import GranuleRef
from shared.config import load_config
from shared.granules import (
    STRATEGIES,
    ReadContext,
    ShardGeometry,
    build_index,
    choose_strategy,
    index_location,
    read_points,
    write_index,
)
from shared.grid import DEFAULT_GRID
from shared.results import ShardResult, ShardStatus
from tests.conftest import GREENLAND
from tests.read_paths import process


@pytest.fixture(scope="module")
def entry(data_dir) -> tuple[int, GranuleRef]:
    """A Greenland shard and the catalog's entry of the granule there (segments and chunks)."""
    shards = granule_shards(str(data_dir / "atl06" / GREENLAND), load_config(), DEFAULT_GRID, ReadContext())
    key = max(shards, key=lambda k: sum(b - a for a, b in shards[k].segments.values()))
    return key, shards[key]


@pytest.fixture(scope="module")
def index_of(entry, tmp_path_factory) -> str:
    """Where the granule's index is (built and written to a folder)."""
    _, ref = entry
    location = index_location(str(tmp_path_factory.mktemp("indexes")), ref.id)
    write_index(build_index(ref.path, ref.id, load_config(), DEFAULT_GRID, ReadContext()), location, ReadContext())
    return location


def test_strategies_have_distinct_names():
    assert [s.name for s in STRATEGIES] == ["granule_index", "recorded_chunks", "catalog_segments", "latitude_search"]


def test_the_catalog_entry_decides_the_strategy(entry):
    config = load_config()
    _, ref = entry
    assert ref.segments and ref.chunks
    assert choose_strategy(ref, config).name == "recorded_chunks"
    assert choose_strategy(ref.model_copy(update={"chunks": None}), config).name == "catalog_segments"
    assert choose_strategy(GranuleRef(id=ref.id, path=ref.path), config).name == "latitude_search"
    # chunks recorded for some beams only: the segments, for all of them
    beam = next(iter(ref.chunks))
    partial = {b: c for b, c in ref.chunks.items() if b != beam} or None
    if len(ref.segments) > 1:
        assert choose_strategy(ref.model_copy(update={"chunks": partial}), config).name == "catalog_segments"
    # a catalog entry with no beam in the shard holds no chunks: its (empty) segments are read
    assert choose_strategy(GranuleRef(id=ref.id, path=ref.path, segments={}), config).name == "catalog_segments"
    # an index reference comes first, whatever else the entry holds
    assert choose_strategy(ref.model_copy(update={"index": "i.gz"}), config).name == "granule_index"
    assert choose_strategy(GranuleRef(id=ref.id, path=ref.path, index="i.gz"), config).name == "granule_index"


def test_every_strategy_reads_the_same_points(entry, index_of):
    key, ref = entry
    config, shard = load_config(), ShardGeometry.of(key, DEFAULT_GRID)
    variants = [
        GranuleRef(id=ref.id, path=ref.path, index=index_of),
        ref,
        ref.model_copy(update={"chunks": None}),
        GranuleRef(id=ref.id, path=ref.path),
    ]
    assert [choose_strategy(v, config).name for v in variants] == [s.name for s in STRATEGIES]
    expected = read_points(variants[0], shard, config, ReadContext())
    assert len(expected) > 0
    for variant in variants[1:]:
        got = choose_strategy(variant, config).read(variant, shard, config, ReadContext())
        for name in ("cell", "h", "sigma"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


def test_the_shard_result_counts_granules_per_strategy(entry, data_dir):
    key, ref = entry
    missing = GranuleRef(id="ATL06_gone.h5", path=str(data_dir / "atl06" / "ATL06_gone.h5"))
    search = GranuleRef(id="copy-" + ref.id, path=ref.path)  # the same file, no catalog help
    result, _ = process(key, [ref, search, missing])
    assert result.status == ShardStatus.PARTIAL and result.granules_read == 2
    assert result.strategies == {"recorded_chunks": 1, "latitude_search": 1}  # granules read, not failures
    assert "(1 by latitude_search, 1 by recorded_chunks)" in result.summary()


def test_the_handler_reports_granules_read_per_strategy_as_metrics():
    from worker import handler

    handler.metrics.clear_metrics()
    try:
        handler.count_reads(
            ShardResult(
                shard_key=1,
                status=ShardStatus.SUCCEEDED,
                strategies={"recorded_chunks": 3, "latitude_search": 1, "latitude_search (index stale)": 2},
            )
        )
        got = {name: m["Value"] for name, m in handler.metrics.metric_set.items()}
        assert got == {
            "GranulesReadRecordedChunks": [3.0],
            "GranulesReadLatitudeSearch": [1.0],
            "GranulesReadLatitudeSearchIndexStale": [2.0],  # a metric name: letters and digits only
        }
    finally:
        handler.metrics.clear_metrics()

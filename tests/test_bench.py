"""The benchmark's machinery (``python -m bench``), and the reader against its baseline.

No timing is asserted here: speed is what the benchmark reports, not what a test can promise.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.__main__ import main as bench_main
from bench.__main__ import same_statistics
from bench.data import InputSpec, granules
from shared.catalog import GranuleRef
from shared.config import load_config
from shared.granules import ReadContext, ShardGeometry, read_points
from shared.grid import DEFAULT_GRID, shard_keys_of


@pytest.fixture(scope="module")
def short_granules(tmp_path_factory):
    """Two short seeded granules through one shard (4 chunks a beam: the search has work to do)."""
    return granules(
        InputSpec(n_granules=2, n_segments=40_000), cache_dir=tmp_path_factory.mktemp("cache"), log=lambda *_: None
    )


def test_reader_with_and_without_segments_matches_the_baseline(short_granules):
    from bench import baseline
    from producer.granule_catalog import granule_shards

    config = load_config()
    shard_key = int(shard_keys_of(np.array([-75.5]), np.array([120.0]), 6)[0])
    shard = ShardGeometry.of(shard_key, DEFAULT_GRID)
    for path in short_granules:
        plain = GranuleRef(id=path.name, path=str(path))
        cataloged = granule_shards(str(path), config, DEFAULT_GRID, ReadContext())[shard_key]
        assert cataloged.chunks and set(cataloged.chunks) == set(cataloged.segments)
        expected = baseline.read_points(plain, shard, config, ReadContext())
        assert len(expected) > 1000
        for ref in (plain, cataloged.model_copy(update={"chunks": None}), cataloged):
            context = ReadContext()
            got = read_points(ref, shard, config, context)
            for name in ("cell", "h", "sigma"):  # same points in the same order
                np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
            assert 0 < context.stats.bytes < path.stat().st_size


def test_same_statistics(tmp_path):
    a = {"count": np.array([1, 0], np.int32), "h_min": np.array([1.0, np.nan], np.float32)}
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **a)
    np.savez(tmp_path / "c.npz", count=a["count"], h_min=np.array([1.5, np.nan], np.float32))
    assert same_statistics(tmp_path / "a.npz", tmp_path / "b.npz")[0]
    same, why = same_statistics(tmp_path / "a.npz", tmp_path / "c.npz")
    assert not same and "h_min" in why


@pytest.mark.integration
def test_quick_benchmark_end_to_end(tmp_path, capsys):
    """`python -m bench --quick`: emulator, catalog and index steps, five strategies in their own processes."""
    out = tmp_path / "bench.json"
    assert bench_main(["--quick", "--no-local", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report  # the last line printed
    assert report["all_identical"] is True
    assert set(report["strategies"]) == {"baseline", "reader", "reader_segments", "reader_catalog", "reader_index"}
    assert report["strategies"]["reader_index"]["read_by"] == {"granule_index": report["input"]["granules"]}
    step = report["index_step"]
    assert step["granules"] == report["input"]["granules"]
    assert step["wall_s_per_granule"] > 0 and step["requests_per_granule"] > 0 and step["bytes_per_granule"] > 0
    observations = {r["observations"] for r in report["strategies"].values()}
    assert len(observations) == 1 and observations.pop() > 0
    for figures in report["strategies"].values():
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "requests", "bytes", "observations_per_s", "emulator_cpu_s"):
            assert figures[key] > 0, key
    assert report["minimum"]["bytes"] > 0
    for name in ("reader", "reader_segments", "reader_catalog", "reader_index"):
        ratios = report["ratios"][name]
        assert {"bytes_vs_baseline", "bytes_vs_minimum", "wall_vs_baseline", "peak_rss_mb"} <= set(ratios)
        assert report["strategies"][name]["bytes"] >= report["minimum"]["bytes"]
    assert report["catalog_step"]["granules_in_shard"] == report["input"]["granules"]


@pytest.mark.parametrize(
    "name",
    [
        "processed_ATL06_20190416093911_02770303_002_01.h5",  # Greenland: northern hemisphere
        "processed_ATL06_20190613193602_11690305_002_01.h5",  # beams gt1l and gt1r absent
    ],
)
def test_reader_without_segments_on_real_granules(data_dir, name):
    """The latitude search (no catalog segments) keeps the baseline's points in every shard."""
    from bench import baseline
    from producer.granule_catalog import granule_shards

    config = load_config()
    path = str(data_dir / "atl06" / name)
    ref = GranuleRef(id=name, path=path)
    shards = granule_shards(path, config, DEFAULT_GRID, ReadContext())
    assert shards
    for shard_key in shards:
        shard = ShardGeometry.of(shard_key, DEFAULT_GRID)
        expected = baseline.read_points(ref, shard, config, ReadContext())
        got = read_points(ref, shard, config, ReadContext())
        for field in ("cell", "h", "sigma"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))

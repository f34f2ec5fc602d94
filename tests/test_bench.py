"""The benchmark's machinery (``python -m bench``) and the reader's latitude search it measures.

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
from shared.grid import DEFAULT_GRID, shard_keys_of
from shared.granules import ReadContext, ShardGeometry, read_points
from shared.granules.io import merge_ranges
from shared.granules.search import BandSearch

CHUNK = 1000


def search(lat: np.ndarray, lo: float, hi: float, chunk: int = CHUNK) -> tuple[BandSearch, int]:
    """Run a search against an in-memory latitude array; returns it and the rounds it took."""
    s = BandSearch(lat.size, chunk, lo, hi)
    rounds = 0
    while chunks := s.next_chunks():
        rounds += 1
        assert rounds <= s.n_chunks, "the search must finish"
        for k in chunks:
            assert k not in s.values, "a chunk is read once"
            a, b = s.bounds(k)
            s.add(k, lat[a:b])
    return s, rounds


def assert_finds_every_latitude_in_band(lat: np.ndarray, s: BandSearch) -> None:
    inside = np.flatnonzero((lat >= s.lo) & (lat <= s.hi))
    covered = np.zeros(lat.size, bool)
    for start, values in s.runs():
        np.testing.assert_array_equal(values, lat[start : start + values.size])  # the latitudes as read
        covered[start : start + values.size] = True
    assert covered[inside].all(), "a latitude inside the band was missed"


def descent(n: int, top: float, bottom: float) -> np.ndarray:
    return np.linspace(top, bottom, n)


def turning(n: int, start: float, extreme: float, end: float, at: float = 0.4) -> np.ndarray:
    """Latitude that goes from ``start`` to ``extreme`` (reached at fraction ``at``), then to ``end``."""
    x = np.arange(n) / (n - 1)
    first = start + (extreme - start) * (1 - (1 - x / at) ** 2)
    second = extreme + (end - extreme) * ((x - at) / (1 - at)) ** 2
    return np.where(x <= at, first, second)


@pytest.mark.parametrize(
    "lat,band",
    [
        (descent(15_500, -60.0, -87.0), (-76.2, -74.7)),  # monotonic, southward
        (descent(15_500, -87.0, -60.0), (-76.2, -74.7)),  # monotonic, northward
        (turning(15_500, -70.0, -88.0, -62.0), (-76.2, -74.7)),  # through the band twice
        (turning(15_500, -82.0, -88.0, -71.0), (-76.2, -74.7)),  # once, after the turn
        (turning(15_500, -70.0, -88.0, -62.0), (-88.1, -87.99)),  # the turning point itself
        (turning(15_500, 70.0, 88.0, 62.0), (74.7, 76.2)),  # northern hemisphere: a maximum
        (descent(15_500, -60.0, -70.0), (-76.2, -74.7)),  # never reaches the band
        (descent(15_500, 5.0, -5.0), (-0.5, 0.5)),  # a band across the equator: reads all
    ],
)
def test_search_finds_the_band_and_reads_less(lat, band):
    s, _ = search(lat, *band)
    assert_finds_every_latitude_in_band(lat, s)
    if not band[0] <= 0 <= band[1]:
        assert len(s.values) < s.n_chunks  # proof without reading everything


def test_search_reads_the_ends_and_the_band_of_a_monotonic_beam():
    lat = descent(15_500, -60.0, -87.0)
    s, rounds = search(lat, -76.2, -74.7)
    band_chunks = set(np.flatnonzero((lat >= -76.2) & (lat <= -74.7)) // CHUNK)
    assert set(s.values) <= band_chunks | {0, s.n_chunks - 1, *(k + d for k in band_chunks for d in (-1, 1))}
    assert rounds <= 4


def test_search_reads_everything_once_latitude_contradicts_the_assumption():
    x = np.linspace(0, 4 * np.pi, 15_500)
    wavy = -75.0 + 3.0 * np.sin(x)  # several turning points: not a ground track
    s, _ = search(wavy, -76.2, -74.7)
    assert s.read_all and len(s.values) == s.n_chunks
    assert_finds_every_latitude_in_band(wavy, s)


FILL64 = 3.4028234663852886e38


@pytest.mark.parametrize("bad", [np.nan, FILL64, 95.0, -np.inf])
@pytest.mark.parametrize(
    "lat,band,at",
    [
        (descent(15_500, -60.0, -87.0), (-76.2, -74.7), 9_500),  # in a chunk the search reads
        (turning(15_500, 70.0, 88.0, 62.0), (74.7, 76.2), 999),  # the end of the first chunk read
        (turning(15_500, -70.0, -88.0, -62.0), (-88.1, -87.5), None),  # the turning point itself
        (turning(15_500, -82.0, -88.0, -71.0), (-76.2, -74.7), 15_499),  # the beam's last point
    ],
)
def test_invalid_latitudes_are_gaps_not_evidence(lat, band, at, bad):
    """A NaN, the fill value or a latitude beyond the pole is no position of the track: the search
    still finds every valid latitude in the band (the fill value once hid a run of them) and still
    proves chunks away without reading everything."""
    lat = lat.copy()
    lat[int(np.argmin(lat)) if at is None else at] = bad
    s = BandSearch(lat.size, CHUNK, *band, fill=FILL64)
    while chunks := s.next_chunks():
        for k in chunks:
            s.add(k, lat[slice(*s.bounds(k))])
    assert_finds_every_latitude_in_band(lat, s)
    assert len(s.values) < s.n_chunks


def test_merge_ranges():
    assert merge_ranges([(10, 20), (0, 5), (20, 30), (100, 110)], gap=0) == [(0, 5), (10, 30), (100, 110)]
    assert merge_ranges([(0, 5), (10, 20)], gap=5) == [(0, 20)]
    assert merge_ranges([(0, 50), (10, 20)], gap=0) == [(0, 50)]


@pytest.fixture(scope="module")
def short_granules(tmp_path_factory):
    """Two short seeded granules through one shard (4 chunks a beam: the search has work to do)."""
    return granules(InputSpec(n_granules=2, n_segments=40_000), cache_dir=tmp_path_factory.mktemp("cache"), log=lambda *_: None)


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
    """`python -m bench --quick`: emulator, catalog step, four strategies in their own processes."""
    out = tmp_path / "bench.json"
    assert bench_main(["--quick", "--no-local", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report  # the last line printed
    assert report["all_identical"] is True
    assert set(report["strategies"]) == {"baseline", "reader", "reader_segments", "reader_catalog"}
    observations = {r["observations"] for r in report["strategies"].values()}
    assert len(observations) == 1 and observations.pop() > 0
    for figures in report["strategies"].values():
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "requests", "bytes", "observations_per_s", "emulator_cpu_s"):
            assert figures[key] > 0, key
    assert report["minimum"]["bytes"] > 0
    for name in ("reader", "reader_segments", "reader_catalog"):
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

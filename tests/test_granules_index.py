"""Granule indexes: built once per granule, read by every shard, and never trusted once the
granule has been replaced (real ATL06 files; S3 through an in-process moto server)."""

from __future__ import annotations

import gzip
import os
import shutil
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from producer.granule_catalog import granule_shards
from shared.catalog import GranuleRef
from shared.config import load_config
from shared.granules import (
    GranuleIndex,
    GranuleIndexError,
    ReadContext,
    S3RangeReader,
    ShardGeometry,
    build_index,
    index_is_current,
    index_location,
    read_index,
    write_index,
)
from shared.granules import index as index_module
from shared.granules.io import merge_ranges
from shared.granules.strategies import GRANULE_INDEX, INDEXES, IndexCache, read_named, recorded_ranges
from shared.grid import DEFAULT_GRID, child_cell_ids
from shared.results import ShardStatus
from shared.windows import TimeWindow, atlas_moment, window_index
from tests.conftest import GREENLAND
from tests.independent import BEAMS, declared_fill, expected_cells, kept_points
from tests.pipeline import assemble_native
from tests.read_paths import in_shard, indexed, process
from tests.test_real_data import assert_cells_match

NSIDC = "ATL06_20181013235645_02340114_209_01.h5"  # a complete granule structure
SMALL = "processed_ATL06_20190625191102_13520305_002_01.h5"  # 6-26 segments a beam
REAL = [GREENLAND, NSIDC, "processed_ATL06_20190613193602_11690305_002_01.h5", SMALL]


def config():
    return load_config()


def points_of(granule: GranuleRef, shard_key: int, context: ReadContext | None = None):
    return read_named(granule, ShardGeometry.of(shard_key, DEFAULT_GRID), config(), context or ReadContext())


def assert_same_points(a, b) -> None:
    for name in ("cell", "h", "sigma"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture
def granule(data_dir, tmp_path) -> Path:
    """A copy of the Greenland granule that a test may replace."""
    path = tmp_path / "granules" / GREENLAND
    path.parent.mkdir()
    shutil.copyfile(data_dir / "atl06" / GREENLAND, path)
    return path


@pytest.fixture
def indexed_granule(granule, tmp_path) -> tuple[GranuleIndex, GranuleRef]:
    index, location = indexed(granule, tmp_path / "indexes")
    return index, GranuleRef(id=granule.name, path=str(granule), index=location)


# -- what an index holds ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def antarctic(data_dir, tmp_path_factory) -> Path:
    """Real Antarctic values in the native layout: 4 beams of ~33,500 segments crossing many shards."""
    flat = sorted((data_dir / "atl06-flat-antarctic").glob("ATL06_20190101001723_00540210_*_gt*.h5"))
    return assemble_native(flat, tmp_path_factory.mktemp("native") / "ATL06_20190101001723_00540210_209_01.h5")


@pytest.mark.parametrize("name", [*REAL, "antarctic"])
def test_an_index_holds_what_the_catalog_records_per_shard(data_dir, antarctic, name):
    """Every shard's ranges and chunks from the index equal what the offline catalog inlines,
    and the whole index is a few kB."""
    path = antarctic if name == "antarctic" else data_dir / "atl06" / name
    index = build_index(str(path), path.name, config(), DEFAULT_GRID, ReadContext())
    refs = granule_shards(str(path), config(), DEFAULT_GRID, ReadContext())
    assert set(index.shards) == set(refs)
    for key, ref in refs.items():
        part = index.shard(key)
        assert part.segments == ref.segments and part.chunks == (ref.chunks or {})
    assert index.identity.size == path.stat().st_size
    assert index.identity.etag == f"mtime_ns:{path.stat().st_mtime_ns}"
    assert len(index.to_bytes()) < 4000
    assert GranuleIndex.from_bytes(index.to_bytes(), "here") == index
    if name == "antarctic":  # shards hold a part of a beam: the index gives each only its chunks
        assert len(refs) > 10
        beam, whole = next(iter(index.chunks.items()))
        held = [len(ref.chunks[beam]["h_li"].stored) for ref in refs.values() if beam in (ref.chunks or {})]
        assert held and min(held) < len(whole["h_li"].stored)


# -- reading through it ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL)
def test_reads_through_the_index_equal_independent_and_the_latitude_search(data_dir, tmp_path, name):
    path = data_dir / "atl06" / name
    index, location = indexed(path, tmp_path)
    expected = expected_cells(kept_points(path))
    covered: set[int] = set()
    for key in index.shards:
        through_index = GranuleRef(id=name, path=str(path), index=location)
        result, stats = process(key, [through_index])
        assert result.status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY) and result.strategies == {
            "granule_index": 1
        }, result.summary()
        mine = in_shard(expected, key)
        covered |= set(mine)
        assert_cells_match(child_cell_ids(key), stats, mine)
        searched = points_of(GranuleRef(id=name, path=str(path)), key)
        assert searched[0] == "latitude_search"
        assert_same_points(points_of(through_index, key)[1], searched[1])  # bit for bit, same order
    assert covered == set(expected)


def test_a_current_index_reads_no_hdf5_metadata(indexed_granule, monkeypatch):
    from shared.granules import strategies

    index, ref = indexed_granule

    def refuse(*args, **kwargs):
        raise AssertionError("the HDF5 metadata was read")

    monkeypatch.setattr(strategies, "H5File", refuse)
    for key in index.shards:
        name, points = points_of(ref, key)
        assert name == "granule_index"


def test_a_shard_the_index_does_not_list_is_empty(indexed_granule, data_dir):
    index, ref = indexed_granule
    other = build_index(str(data_dir / "atl06" / NSIDC), NSIDC, config(), DEFAULT_GRID, ReadContext())
    elsewhere = next(iter(other.shards))  # a shard of the South Pacific: no point of Greenland there
    assert elsewhere not in index.shards
    name, points = points_of(ref, elsewhere)
    assert name == "granule_index" and len(points) == 0


# -- a replaced granule --------------------------------------------------------------------------
def test_a_granule_replaced_by_another_file_is_not_read_by_its_old_index(indexed_granule, granule, data_dir):
    """Another granule's bytes under the same name (another size): the old index would point into
    them; it is not trusted, the shard is read by the latitude search and is right."""
    index, ref = indexed_granule
    shutil.copyfile(data_dir / "atl06" / SMALL, granule)
    assert not index_is_current(index, str(granule), ReadContext())
    expected = expected_cells(kept_points(granule))
    for key in index.shards:
        result, stats = process(key, [ref])
        assert result.strategies == {"latitude_search (index stale)": 1}, result.summary()
        assert_cells_match(child_cell_ids(key), stats, in_shard(expected, key))


def test_a_granule_rewritten_with_the_same_size_is_not_trusted(indexed_granule, granule):
    """Same size, another modification time (a rewrite): stale; the points are still right."""
    index, ref = indexed_granule
    key = max(index.shards, key=lambda k: sum(b - a for a, b in index.shards[k].values()))
    trusted = points_of(ref, key)
    assert trusted[0] == "granule_index"
    os.utime(granule, ns=(granule.stat().st_atime_ns, granule.stat().st_mtime_ns + 1_000_000_000))
    assert granule.stat().st_size == index.identity.size
    assert not index_is_current(index, str(granule), ReadContext())
    name, points = points_of(ref, key)
    assert name == "latitude_search (index stale)"
    assert_same_points(points, trusted[1])


def test_a_rebuilt_index_is_used_again(indexed_granule, granule):
    """The process's cache drops an index found stale, so the rebuilt one is read next time."""
    index, ref = indexed_granule
    key = next(iter(index.shards))
    assert points_of(ref, key)[0] == "granule_index"
    os.utime(granule, ns=(0, 10**18))
    assert points_of(ref, key)[0] == "latitude_search (index stale)"
    rebuilt = build_index(str(granule), granule.name, config(), DEFAULT_GRID, ReadContext())
    write_index(rebuilt, ref.index, ReadContext())
    assert index_is_current(rebuilt, str(granule), ReadContext())
    assert points_of(ref, key)[0] == "granule_index"


def test_a_granule_replaced_while_being_indexed_is_not_indexed(granule, monkeypatch):
    seen = iter([index_module.GranuleIdentity(size=1, etag="a"), index_module.GranuleIdentity(size=1, etag="b")])
    monkeypatch.setattr(index_module, "granule_identity", lambda location, context: next(seen))
    with pytest.raises(index_module.GranuleReadError, match="replaced while being indexed"):
        build_index(str(granule), granule.name, config(), DEFAULT_GRID, ReadContext())


def test_a_missing_granule_is_not_current(indexed_granule, granule):
    index, _ = indexed_granule
    assert index_is_current(index, str(granule), ReadContext())
    granule.unlink()
    assert not index_is_current(index, str(granule), ReadContext())


# -- a missing or corrupt index: the latitude search, named -------------------------------------
@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: path.unlink(), "missing"),
        (lambda path: path.write_bytes(b"not gzip at all"), "unreadable"),
        (lambda path: path.write_bytes(gzip.compress(b'{"format": 1, "granule_id": ')), "unreadable"),
        (lambda path: path.write_bytes(gzip.compress(b'{"format": 99}')), "unreadable"),
    ],
    ids=["missing", "not-gzip", "not-json", "another-format"],
)
def test_a_missing_or_corrupt_index_falls_back_to_the_latitude_search(indexed_granule, damage, problem, caplog):
    """An index is an optimisation: one that is absent or unreadable costs speed, never points.
    The fallback is named in the result and logged with the index's location."""
    index, ref = indexed_granule
    key = next(iter(index.shards))
    expected = points_of(GranuleRef(id=ref.id, path=ref.path), key)[1]
    INDEXES.clear()
    damage(Path(ref.index))
    name, points = points_of(ref, key)
    assert name == f"latitude_search (index {problem})"
    assert_same_points(points, expected)
    assert ref.index in caplog.text


def test_a_corrupt_index_is_a_clear_error_naming_its_location(indexed_granule):
    _, ref = indexed_granule
    Path(ref.index).write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(GranuleIndexError, match=f"granule index {ref.index} is not gzip-compressed"):
        read_index(ref.index, ReadContext())
    Path(ref.index).write_bytes(gzip.compress(b"[]"))
    with pytest.raises(GranuleIndexError, match=f"granule index {ref.index} is unreadable: .*rebuild it"):
        read_index(ref.index, ReadContext())


def test_an_index_of_another_granule_is_not_used(indexed_granule, data_dir, tmp_path):
    _, ref = indexed_granule
    _, other = indexed(data_dir / "atl06" / SMALL, tmp_path / "other")
    key = next(iter(read_index(ref.index, ReadContext()).shards))
    assert points_of(ref.model_copy(update={"index": other}), key)[0] == "latitude_search (index unreadable)"


# -- the store ------------------------------------------------------------------------------------
def test_index_locations():
    assert index_location("s3://out/run-1/indexes/", "G.h5") == "s3://out/run-1/indexes/G.h5.index.json.gz"
    assert index_location("s3://out/run-1/indexes", "G.h5") == "s3://out/run-1/indexes/G.h5.index.json.gz"
    assert index_location("some/folder", "G.h5") == os.path.join("some/folder", "G.h5.index.json.gz")
    for bad in ("", "a/b.h5", ".."):
        with pytest.raises(ValueError):
            index_location("root", bad)


def test_an_index_round_trips_through_a_folder(indexed_granule, tmp_path):
    index, _ = indexed_granule
    location = index_location(str(tmp_path / "new" / "folder"), index.granule_id)
    assert read_index(location, ReadContext()) is None
    write_index(index, location, ReadContext())
    write_index(index, location, ReadContext())  # replaced in place, the same bytes
    assert read_index(location, ReadContext()) == index
    assert os.listdir(tmp_path / "new" / "folder") == [os.path.basename(location)]  # no temporary left


def test_the_index_cache_is_bounded(indexed_granule, tmp_path):
    index, _ = indexed_granule
    cache = IndexCache(size=2)
    locations = [index_location(str(tmp_path / f"c{i}"), index.granule_id) for i in range(3)]
    for location in locations:
        write_index(index, location, ReadContext())
        assert cache.get(location, ReadContext()) == index
    context = ReadContext()
    cache.get(locations[2], context)
    assert context.stats.requests == 0  # held
    cache.get(locations[0], context)
    assert context.stats.requests == 1  # the oldest was dropped: read again


# -- S3 -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint():
    """An in-process moto S3 over HTTP (obstore speaks HTTP, it is not patched like boto3)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint):
    """A fresh bucket, a boto3 client and a ReadContext for it."""
    import boto3

    bucket = f"index-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-west-2")
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    credentials = {"accessKeyId": "testing", "secretAccessKey": "testing", "endpointUrl": s3_endpoint}
    return bucket, client, lambda: ReadContext(s3=S3RangeReader(credentials))


def test_an_index_round_trips_through_s3(s3, indexed_granule):
    bucket, client, context = s3
    index, _ = indexed_granule
    location = index_location(f"s3://{bucket}/run/indexes/", index.granule_id)
    assert read_index(location, context()) is None
    write_index(index, location, context())
    assert read_index(location, context()) == index
    client.put_object(Bucket=bucket, Key=location.split("/", 3)[3], Body=b"junk")
    with pytest.raises(GranuleIndexError, match=location):
        read_index(location, context())


def test_s3_reads_through_the_index_check_the_etag_at_no_extra_request(s3, data_dir, tmp_path):
    """On S3 the identity comes back with the chunk bytes: a shard read through a (cached) index
    makes exactly the requests of the catalog's recorded chunks; a granule replaced by one of the
    same size (another ETag) is not trusted, and its points are still right."""
    bucket, client, context = s3
    path = data_dir / "atl06" / GREENLAND
    key = f"atl06/{GREENLAND}"
    client.upload_file(str(path), bucket, key)
    location = f"s3://{bucket}/{key}"
    index = build_index(location, GREENLAND, config(), DEFAULT_GRID, context())
    assert index.identity.etag.strip('"') == client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    index_at = index_location(f"s3://{bucket}/indexes", GREENLAND)
    write_index(index, index_at, context())
    ref = GranuleRef(id=GREENLAND, s3=location, index=index_at)
    catalog = granule_shards(location, config(), DEFAULT_GRID, context())
    INDEXES.clear()
    points_of(ref, next(iter(index.shards)), context())  # the index is read once per process
    for shard_key, cataloged in catalog.items():
        through_index, by_catalog = context(), context()
        name, points = points_of(ref, shard_key, through_index)
        assert name == "granule_index"
        assert_same_points(points, points_of(cataloged, shard_key, by_catalog)[1])
        part = index.shard(shard_key)
        requests = len(merge_ranges(recorded_ranges(part.segments, part.chunks, config())))
        assert through_index.stats.requests == by_catalog.stats.requests == requests

    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the same size, other bytes: another ETag
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    assert not index_is_current(index, location, context())
    shard_key = next(iter(catalog))
    name, points = points_of(ref, shard_key, context())
    assert name == "latitude_search (index stale)"
    assert_same_points(points, points_of(GranuleRef(id=GREENLAND, s3=location), shard_key, context())[1])


def test_indexes_are_read_with_their_own_credentials(s3, indexed_granule):
    """ReadContext.index_s3 reads indexes (the run's output bucket on AWS), the granule reader
    reads granules: without it the granule reader reads both."""
    bucket, _, context = s3
    index, ref = indexed_granule
    location = index_location(f"s3://{bucket}/indexes", index.granule_id)
    write_index(index, location, context())
    refused = S3RangeReader({"accessKeyId": "x", "secretAccessKey": "y", "endpointUrl": "http://127.0.0.1:9"})
    both = ReadContext(s3=refused, index_s3=context().s3)
    assert both.for_indexes().s3 is both.index_s3 and both.for_indexes().stats is both.stats
    assert ReadContext(s3=refused).for_indexes().s3 is refused
    INDEXES.clear()
    name, _ = points_of(ref.model_copy(update={"index": location}), next(iter(index.shards)), both)
    assert name == "granule_index"  # the index came through index_s3, the local granule needs no S3


# -- times: a beam that no window divides is read without its times ------------------------------
@pytest.mark.parametrize("name", REAL)
def test_an_index_holds_each_beams_time_span(data_dir, name):
    """Per beam, the earliest and latest delta_time (h5py), where every time of the beam is data."""
    path = data_dir / "atl06" / name
    index = build_index(str(path), name, config(), DEFAULT_GRID, ReadContext())
    expected = {}
    with h5py.File(path) as f:
        for beam in BEAMS:
            if f"{beam}/land_ice_segments/delta_time" not in f:
                continue
            dataset = f[f"{beam}/land_ice_segments/delta_time"]
            t, fill = dataset[:], declared_fill(dataset)
            if t.size and np.isfinite(t).all() and (fill is None or (t != fill).all()):
                expected[beam] = (float(t.min()), float(t.max()))
    assert expected and index.time_spans == expected
    assert GranuleIndex.from_bytes(index.to_bytes(), "here").time_spans == expected


def test_a_beam_in_one_window_is_read_without_its_times(indexed_granule):
    index, ref = indexed_granule
    key = max(index.shards, key=lambda k: sum(stop - start for start, stop in index.shards[k].values()))
    spans = index.time_spans.values()
    around = TimeWindow(
        start=atlas_moment(min(s[0] for s in spans) - 60), end=atlas_moment(max(s[1] for s in spans) + 60)
    )
    GRANULE_INDEX.read(ref, ShardGeometry.of(key, DEFAULT_GRID), config(), ReadContext())  # the index, cached
    timed, untimed = ReadContext(), ReadContext()
    with_times = GRANULE_INDEX.read(ref, ShardGeometry.of(key, DEFAULT_GRID), config(), timed)
    without = GRANULE_INDEX.read(ref, ShardGeometry.of(key, DEFAULT_GRID, [around]), config(), untimed)
    assert len(with_times) > 100
    assert_same_points(with_times, without)
    assert (window_index(without.time, [around]) == 0).all()
    assert untimed.stats.requests < timed.stats.requests and untimed.stats.bytes < timed.stats.bytes
    assert (window_index(with_times.time, [around]) == 0).all()  # the times read agree


def test_a_window_edge_inside_a_beams_span_places_each_point_by_its_own_time(data_dir, tmp_path):
    """Two windows that cut the granule in two: each point goes where its own delta_time says
    (the independent computation, per window)."""
    from worker.shard import process_shard

    path = data_dir / "atl06" / GREENLAND
    index, location = indexed(path, tmp_path)
    points = kept_points(path)
    edge = atlas_moment(float(np.median(points["t"])))
    windows = [
        TimeWindow(start=atlas_moment(points["t"].min() - 60), end=edge),
        TimeWindow(start=edge, end=atlas_moment(points["t"].max() + 60)),
    ]
    geometry = ShardGeometry.of(next(iter(index.shards)), DEFAULT_GRID, windows)
    cut = [s for s in index.time_spans.values() if not geometry.one_window(s)]
    assert cut, "the edge falls inside a beam's time span"
    checked = 0
    for key in index.shards:
        written: dict[str, np.ndarray] = {}
        ref = GranuleRef(id=GREENLAND, path=str(path), index=location)
        result = process_shard(
            key, [ref], config(), DEFAULT_GRID, windows, lambda stats: written.update(stats[12]), ReadContext()
        )
        assert result.strategies == {"granule_index": 1}
        for w, window in enumerate(windows):
            start, end = window.bounds_s
            inside = (points["t"] >= start) & (points["t"] < end)
            expected = in_shard(expected_cells({k: v[inside] for k, v in points.items()}), key)
            if result.observations:
                assert_cells_match(child_cell_ids(key), {n: v[w] for n, v in written.items()}, expected)
                checked += len(expected)
    assert checked > 0

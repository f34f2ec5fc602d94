"""Chunks the catalog records: described from the file's metadata, decoded without it, checked against h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from pydantic import ValidationError

from producer.granule_catalog import granule_shards
from shared.catalog import DatasetChunks, GranuleRef
from shared.config import load_config
from shared.granules import GranuleReadError, ReadContext, ShardGeometry, read_points
from shared.granules.chunks import ChunkDecodeError, byte_ranges, values_in_range
from shared.granules.h5coro_adapter import H5File
from shared.granules.strategies import has_recorded_chunks
from shared.grid import DEFAULT_GRID
from shared.results import FailureKind
from tests.conftest import GREENLAND

CHUNK = 1000


def _describe(path, name: str, start: int, stop: int) -> DatasetChunks | None:
    with H5File("t.h5", str(path), ReadContext()) as f:
        f.walk([name])
        return f.chunk_record(name, start, stop)


def _file_bytes(path):
    data = path.read_bytes()
    return lambda offset, size: memoryview(data)[offset : offset + size]


@pytest.mark.parametrize(
    "dtype,shuffle,compression",
    [("<f8", True, "gzip"), ("<f4", False, "gzip"), ("|i1", True, "gzip"), ("<i4", False, None), ("<u2", True, "gzip")],
)
def test_recorded_chunks_decode_like_h5py(tmp_path, dtype, shuffle, compression):
    rng = np.random.default_rng(3)
    n = 4 * CHUNK + 123  # a partial last chunk
    values = (rng.normal(0, 1000, n) if dtype.endswith(("f4", "f8")) else rng.integers(0, 100, n)).astype(dtype)
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "g/x",
            data=values,
            chunks=(CHUNK,),
            shuffle=shuffle,
            compression=compression,
            fillvalue=np.array(7, dtype)[()],
        )
    for start, stop in [(0, n), (1500, 2500), (999, 1001), (4000, n), (10, 20)]:
        chunks = _describe(path, "/g/x", start, stop)
        assert chunks is not None and chunks.dtype == np.dtype(dtype).str and chunks.shuffle == shuffle
        assert chunks.fill == 7
        with h5py.File(path) as f:
            expected = f["g/x"][start:stop]
        got = values_in_range(chunks, start, stop, _file_bytes(path))
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        assert len(byte_ranges(chunks, start, stop)) == (stop - 1) // CHUNK - start // CHUNK + 1


def test_unstored_chunks_read_as_the_fill_value(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "g/x", shape=(4 * CHUNK,), dtype="<f4", chunks=(CHUNK,), compression="gzip", fillvalue=np.float32(3.4e38)
        )
        d[0:CHUNK] = 1.0
        d[3 * CHUNK :] = 2.0  # chunks 1 and 2 are never written
    chunks = _describe(path, "/g/x", 500, 3500)
    assert [first for first, _, _ in chunks.stored] == [0, 3 * CHUNK]
    with h5py.File(path) as f:
        expected = f["g/x"][500:3500]
    np.testing.assert_array_equal(values_in_range(chunks, 500, 3500, _file_bytes(path)), expected)


def test_filters_a_worker_cannot_decode_are_not_recorded(tmp_path):
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "g/x", data=np.arange(3 * CHUNK, dtype="<f8"), chunks=(CHUNK,), compression="gzip", fletcher32=True
        )
        f.create_dataset("g/y", data=np.arange(3 * CHUNK, dtype="<f8"))  # contiguous: no chunks
    assert _describe(path, "/g/x", 0, 10) is None
    assert _describe(path, "/g/y", 0, 10) is None


def test_bytes_that_do_not_decode_are_named():
    chunks = DatasetChunks(dtype="<f8", chunk=10, shuffle=False, deflate=True, stored=[(0, 0, 5)])
    with pytest.raises(ChunkDecodeError, match="does not inflate"):
        values_in_range(chunks, 0, 10, lambda o, n: b"\x00" * n)
    plain = DatasetChunks(dtype="<f8", chunk=10, shuffle=False, deflate=False, stored=[(0, 0, 40)])
    with pytest.raises(ChunkDecodeError, match="not 10 elements"):
        values_in_range(plain, 0, 10, lambda o, n: b"\x00" * n)


def test_catalog_refuses_malformed_chunk_records():
    good = dict(dtype="<f8", chunk=10, shuffle=True, deflate=True, stored=[(0, 100, 50), (10, 150, 50)])
    DatasetChunks(**good)
    for bad in (
        {"dtype": ">f8"},
        {"dtype": "O"},
        {"chunk": 0},
        {"stored": [(10, 1, 1), (0, 2, 2)]},
        {"stored": [(5, 1, 1)]},
        {"stored": [(0, -1, 1)]},
    ):
        with pytest.raises(ValidationError):
            DatasetChunks(**{**good, **bad})
    with pytest.raises(ValidationError, match="without a segment range"):
        GranuleRef(id="g", path="x", segments={"gt1l": (0, 5)}, chunks={"gt2l": {"h_li": DatasetChunks(**good)}})


def test_a_catalog_that_no_longer_matches_the_granule_is_corrupt(data_dir, tmp_path):
    """A granule replaced after cataloging (same name, other bytes): the worker says so, by name."""
    config = load_config()
    path = data_dir / "atl06" / GREENLAND
    key, ref = next(iter(granule_shards(str(path), config, DEFAULT_GRID, ReadContext()).items()))
    assert has_recorded_chunks(ref, config)
    shard = ShardGeometry.of(key, DEFAULT_GRID)
    assert len(read_points(ref, shard, config, ReadContext())) > 0
    other = tmp_path / GREENLAND
    other.write_bytes(bytes(path.stat().st_size))  # same size, no HDF5 at all
    with pytest.raises(GranuleReadError) as info:
        read_points(ref.model_copy(update={"path": str(other)}), shard, config, ReadContext())
    assert info.value.kind == FailureKind.CORRUPT
    assert GREENLAND in info.value.reason
    assert info.value.reason.endswith("do not match the granule (rebuild the catalog)")


def test_recorded_chunks_read_no_metadata(data_dir):
    """With recorded chunks, a granule costs only its chunk bytes: far fewer reads than through h5coro."""
    config = load_config()
    path = data_dir / "atl06" / GREENLAND
    key, ref = next(iter(granule_shards(str(path), config, DEFAULT_GRID, ReadContext()).items()))
    shard = ShardGeometry.of(key, DEFAULT_GRID)
    recorded, planned = ReadContext(), ReadContext()
    a = read_points(ref, shard, config, recorded)
    b = read_points(ref.model_copy(update={"chunks": None}), shard, config, planned)
    for name in ("cell", "h", "sigma"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    stored = [size for beam in ref.chunks.values() for c in beam.values() for _, _, size in c.stored]
    assert sum(stored) <= recorded.stats.bytes <= sum(stored) + 64 * 1024 * len(stored)  # merged gaps at most
    assert recorded.stats.requests < planned.stats.requests

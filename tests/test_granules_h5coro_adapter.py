"""h5coro behind one module (shared/granules/h5coro_adapter.py): each dataset's storage decided once,
slices read by planned byte ranges, every one equal to h5py's."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from shared.granules.chunks import ChunkedDataset, ContiguousTable
from shared.granules.h5coro_adapter import H5File, open_h5coro
from shared.granules.io import GranuleReadError, ReadContext
from shared.results import FailureKind

CHUNK = 1000
N = 3 * CHUNK + 500


@pytest.fixture(scope="module")
def granule(tmp_path_factory):
    """One dataset of each storage the adapter tells apart."""
    path = tmp_path_factory.mktemp("adapter") / "g.h5"
    values = np.arange(N, dtype="<f8") * 1.5
    with h5py.File(path, "w") as f:
        f.create_dataset("g/deflate", data=values, chunks=(CHUNK,), compression="gzip", shuffle=True, fillvalue=-1.0)
        f.create_dataset("g/contiguous", data=values)
        f.create_dataset("g/fletcher32", data=values, chunks=(CHUNK,), compression="gzip", fletcher32=True)
        f.create_dataset("g/shuffle_only", data=values, chunks=(CHUNK,), shuffle=True)
        f.create_dataset("g/two_d", data=values[:3500].reshape(-1, 5), chunks=(100, 5), compression="gzip")
    return path, values


def test_each_dataset_gets_its_storage_once(granule):
    path, _ = granule
    with H5File("g.h5", str(path), ReadContext()) as f:
        names = ["/g/deflate", "/g/contiguous", "/g/fletcher32", "/g/shuffle_only", "/g/two_d", "/g/absent"]
        f.walk(names)
        kinds = {n: type(f.storage(n)).__name__ for n in names}
        assert kinds == {
            "/g/deflate": "ChunkedDataset",  # decoded by shared.granules.chunks
            "/g/contiguous": "ContiguousTable",  # one exact byte range a slice
            "/g/fletcher32": "_H5CoroDecodes",  # fetched exactly, decoded by h5coro
            "/g/shuffle_only": "_H5CoroDecodes",
            "/g/two_d": "_H5CoroReads",  # no index walked here: h5coro reads it
            "/g/absent": "NoneType",
        }
        assert isinstance(f.storage("/g/deflate"), ChunkedDataset) and isinstance(
            f.storage("/g/contiguous"), ContiguousTable
        )
        assert f.exists("/g/deflate") and not f.exists("/g/absent")
        assert f.fill("/g/deflate") == -1.0
        record = f.chunk_record("/g/deflate", 999, 2001)
        assert record.shuffle and record.deflate and [first for first, _, _ in record.stored] == [0, 1000, 2000]
        assert f.chunk_record("/g/contiguous", 0, 10) is None and f.chunk_record("/g/fletcher32", 0, 10) is None


@pytest.mark.parametrize("name", ["/g/deflate", "/g/contiguous", "/g/fletcher32"])
def test_slices_equal_h5py(granule, name):
    path, values = granule
    context = ReadContext()
    with H5File("g.h5", str(path), context) as f:
        f.walk([name])
        for start, stop in [(0, N), (10, 2500), (999, 1001), (N - 1, N)]:
            got = f.read([(name, start, stop)])[(name, start, stop)]
            np.testing.assert_array_equal(got, values[start:stop])
    assert 0 < context.stats.bytes


def test_what_cannot_be_read_is_corrupt_and_named(granule, tmp_path):
    path, _ = granule
    with H5File("g.h5", str(path), ReadContext()) as f:
        f.walk(["/g/absent", "/g/shuffle_only"])
        for name in ("/g/absent", "/g/shuffle_only"):  # h5coro 1.0.7 cannot decode shuffle without deflate
            with pytest.raises(GranuleReadError) as info:
                f.read([(name, 0, 10)])
            assert info.value.kind == FailureKind.CORRUPT and info.value.reason == f"g.h5: cannot read {name}"
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not HDF5 at all" * 100)
    with pytest.raises(GranuleReadError) as info:
        H5File("junk.h5", str(junk), ReadContext())
    assert info.value.kind == FailureKind.CORRUPT and info.value.reason.startswith("junk.h5: not a readable HDF5 file")


def test_plain_h5coro_reads_through_the_counted_source(granule):
    path, values = granule
    context = ReadContext()
    h5 = open_h5coro(str(path), context)
    try:
        got = h5.readDatasets(["/g/deflate"], block=True).datasets["g/deflate"].values
    finally:
        h5.close()
    np.testing.assert_array_equal(got, values)
    assert context.stats.requests > 0 and context.stats.bytes > 0

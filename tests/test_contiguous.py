"""Granules whose datasets are contiguous (unchunked): every read path gets every point right."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from shared.config import load_config
from shared.granules import ReadContext, build_index
from shared.granules.h5coro_adapter import H5File
from shared.grid import DEFAULT_GRID
from tests.conftest import GREENLAND
from tests.independent import declared_fill
from tests.pipeline import assemble_native
from tests.read_paths import assert_every_read_path_matches, cataloged

ANTARCTIC = "ATL06_20190101001723_00540210_*_gt*.h5"
NSIDC = "ATL06_20181013235645_02340114_209_01.h5"


def reencode(src: Path, dst: Path, contiguous=lambda name: True) -> Path:
    """Copy every group and dataset with its attributes (``_FillValue`` included) and its HDF5 fill
    value; datasets ``contiguous(name)`` picks are stored contiguous (no chunks, no compression),
    the others as they were."""
    with h5py.File(src) as f, h5py.File(dst, "w") as out:

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                out.require_group(name).attrs.update(obj.attrs)
                return
            fill = declared_fill(obj)
            layout = (
                {"chunks": None}
                if contiguous(name) or obj.chunks is None
                else {
                    "chunks": obj.chunks,
                    "compression": obj.compression,
                    "compression_opts": obj.compression_opts,
                    "shuffle": obj.shuffle,
                }
            )
            copied = out.create_dataset(name, data=obj[()], **layout, **({} if fill is None else {"fillvalue": fill}))
            copied.attrs.update(obj.attrs)

        out.attrs.update(f.attrs)
        f.visititems(copy)
    return dst


def layouts(path: Path, beam: str = "gt1l") -> dict[str, int]:
    with h5py.File(path) as f:
        g = f[f"{beam}/land_ice_segments"]
        return {
            n: g[n].id.get_create_plist().get_layout()
            for n in ("latitude", "longitude", "h_li", "h_li_sigma", "atl06_quality_summary")
        }


@pytest.fixture(scope="module")
def antarctic(data_dir, tmp_path_factory) -> Path:
    flat = sorted((data_dir / "atl06-flat-antarctic").glob(ANTARCTIC))
    return assemble_native(flat, tmp_path_factory.mktemp("native") / "ATL06_20190101001723_00540210_209_01.h5")


@pytest.mark.parametrize("source", ["antarctic", GREENLAND, NSIDC])
def test_contiguous_granules_match_independent_on_every_read_path(source, antarctic, data_dir, tmp_path):
    """Latitude search, catalog segments, catalog with recorded chunks: the statistics of every
    shard equal the independent computation (h5py reads the same file)."""
    src = antarctic if source == "antarctic" else data_dir / "atl06" / source
    path = reencode(src, tmp_path / src.name)
    assert set(layouts(path).values()) == {h5py.h5d.CONTIGUOUS}
    assert_every_read_path_matches(path)


def test_mixed_layouts_match_independent_on_every_read_path(antarctic, tmp_path):
    """Latitude and heights contiguous, longitude, sigma and quality chunked and compressed."""
    contiguous = {"latitude", "h_li"}
    path = reencode(antarctic, tmp_path / antarctic.name, lambda name: name.rsplit("/", 1)[-1] in contiguous)
    assert layouts(path) == {
        "latitude": h5py.h5d.CONTIGUOUS,
        "h_li": h5py.h5d.CONTIGUOUS,
        "longitude": h5py.h5d.CHUNKED,
        "h_li_sigma": h5py.h5d.CHUNKED,
        "atl06_quality_summary": h5py.h5d.CHUNKED,
    }
    assert_every_read_path_matches(path)


def test_catalog_records_no_chunks_for_contiguous_datasets(antarctic, tmp_path):
    """A beam with a contiguous dataset is read through the metadata, never from a chunk record."""
    whole = reencode(antarctic, tmp_path / "whole.h5")
    assert all(ref.segments and not ref.chunks for ref in cataloged(whole).values())
    mixed = reencode(antarctic, tmp_path / "mixed.h5", lambda name: name.startswith("gt1l/") and name.endswith("/h_li"))
    refs = cataloged(mixed).values()
    assert all("gt1l" not in (ref.chunks or {}) for ref in refs)
    assert any(ref.chunks for ref in refs)  # the other beams still are
    # a granule index likewise: such a beam has ranges but no chunks (workers read its metadata)
    assert build_index(str(whole), whole.name, load_config(), DEFAULT_GRID, ReadContext()).chunks == {}
    index = build_index(str(mixed), mixed.name, load_config(), DEFAULT_GRID, ReadContext())
    assert "gt1l" not in index.chunks and index.chunks
    assert any("gt1l" in segments for segments in index.shards.values())


def test_a_contiguous_slice_is_one_exact_byte_range(antarctic, tmp_path):
    from shared.granules.chunks import ContiguousTable

    path = reencode(antarctic, tmp_path / antarctic.name)
    name = "/gt1r/land_ice_segments/latitude"
    with h5py.File(path) as f:
        offset, expected = f[name].id.get_offset(), f[name][()]
    with H5File(path.name, str(path), ReadContext()) as f:
        f.walk([name])
        table = f.storage(name)
        assert isinstance(table, ContiguousTable) and table.length == expected.size
        for start, stop in [(0, 10), (12_345, 12_346), (20_000, expected.size), (0, expected.size)]:
            assert table.ranges(start, stop) == [(offset + 8 * start, offset + 8 * stop)]
            got = f.read([(name, start, stop)])[(name, start, stop)]
            np.testing.assert_array_equal(got, expected[start:stop])

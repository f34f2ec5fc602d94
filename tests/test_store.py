"""The output store: xdggs-readable, shard-owned chunks, identical bytes on rewrite, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import xdggs
from healpix_geo.nested import healpix_to_lonlat

from shared.config import load_config
from shared.errors import StoreError
from shared.grid import DEFAULT_GRID, child_cell_ids, shard_keys_of
from shared.store import create_template, write_shard
from worker.aggregate import aggregate

KEYS = sorted(int(k) for k in np.unique(shard_keys_of(np.array([-75.0, -80.0, -70.0]), np.array([10.0, 100.0, -60.0]))))


def stats_for(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, 4096, 3000)
    return aggregate(cell, rng.normal(1000, 50, cell.size), rng.uniform(0.05, 0.3, cell.size), load_config(), 4096)


def chunk_bytes(store) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file() and "/c/" in str(p)
    }


def test_template_decodes_with_xdggs(tmp_path):
    store = tmp_path / "s.zarr"
    create_template(str(store), KEYS, load_config(), DEFAULT_GRID)
    ds = xr.open_zarr(store)
    assert ds.sizes["cells"] == len(KEYS) * 4096
    assert ds["cell_ids"].dtype == np.uint64
    np.testing.assert_array_equal(ds["cell_ids"].values[4096:8192], child_cell_ids(KEYS[1], DEFAULT_GRID))
    decoded = xdggs.decode(ds)
    info = decoded.dggs.grid_info
    assert (info.level, info.indexing_scheme, info.ellipsoid) == (12, "nested", "WGS84")
    assert (ds["count"].values == 0).all() and np.isnan(ds["h_mean"].values).all()
    # cell centres are healpix-geo's WGS84 centres
    lon, lat = healpix_to_lonlat(ds["cell_ids"].values[:10], 12, ellipsoid="WGS84")
    centres = decoded.dggs.cell_centers()
    np.testing.assert_allclose(centres["latitude"].values[:10], lat)


def test_shard_owns_its_chunks_and_rewrites_identically(tmp_path):
    store = tmp_path / "s.zarr"
    config = load_config()
    create_template(str(store), KEYS, config, DEFAULT_GRID)
    write_shard(str(store), 1, stats_for(1))
    first = chunk_bytes(store)
    assert {k.split("/c/")[1] for k in first if not k.startswith("cell_ids")} == {"1"}
    write_shard(str(store), 1, stats_for(1))
    assert chunk_bytes(store) == first
    write_shard(str(store), 0, stats_for(2))
    after = chunk_bytes(store)
    assert all(after[k] == v for k, v in first.items())
    ds = xr.open_zarr(store)
    np.testing.assert_array_equal(ds["count"].values[4096:8192], stats_for(1)["count"])


def test_template_twice_is_safe_and_mismatch_is_refused(tmp_path):
    store = tmp_path / "s.zarr"
    config = load_config()
    create_template(str(store), KEYS, config, DEFAULT_GRID)
    write_shard(str(store), 0, stats_for(3))
    create_template(str(store), KEYS, config, DEFAULT_GRID)  # same run again: keeps the data
    assert xr.open_zarr(store)["count"].values.sum() == 3000
    with pytest.raises(StoreError, match="cells"):
        create_template(str(store), KEYS[:1], config, DEFAULT_GRID)


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create store"):
        create_template(str(blocker / "s.zarr"), KEYS, load_config(), DEFAULT_GRID)


def test_writing_without_template_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        write_shard(str(tmp_path / "none.zarr"), 0, stats_for(4))

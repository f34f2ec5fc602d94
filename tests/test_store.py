"""The output store: xdggs-readable levels with a time axis, shard-owned chunks, identical bytes on
rewrite, later windows added without touching earlier ones, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import xdggs
from healpix_geo.nested import healpix_to_lonlat

from shared.config import load_config
from shared.errors import StoreError
from shared.grid import DEFAULT_GRID, child_cell_ids, shard_keys_of, shard_nested_id
from shared.store import create_or_extend, write_shard
from shared.windows import WindowSpec, cycle_window
from worker.aggregate import aggregate_levels

KEYS = sorted(int(k) for k in np.unique(shard_keys_of(np.array([-75.0, -80.0, -70.0]), np.array([10.0, 100.0, -60.0]))))
SPEC = WindowSpec()


def stats_for(seed: int, n_windows: int = 1) -> dict[int, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cell = rng.integers(0, 4096, 3000)
    window = rng.integers(0, n_windows, cell.size)
    h, s = rng.normal(1000, 50, cell.size), rng.uniform(0.05, 0.3, cell.size)
    return aggregate_levels(cell, h, s, window, load_config(), DEFAULT_GRID, n_windows)


def create(store, cycles, keys=KEYS, spec=SPEC):
    windows = create_or_extend(str(store), keys, load_config(), DEFAULT_GRID, spec, [cycle_window(c) for c in cycles])
    return [w.index for w in windows]


def chunk_bytes(store) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file() and "/c/" in str(p)
    }


def every_object(store) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_every_level_decodes_with_xdggs(tmp_path):
    store = tmp_path / "s.zarr"
    create(store, [3, 4])
    for order in range(12, 5, -1):
        ds = xr.open_zarr(store, group=str(order))
        n = 4 ** (order - 6)
        assert dict(ds.sizes) == {"time": 2, "cells": len(KEYS) * n}
        assert ds["count"].dims == ("time", "cells") and ds["count"].dtype == np.int32
        assert ds["cell_ids"].dtype == np.uint64
        # shard i owns cells [i*n, (i+1)*n): its cells at this order, in the region's order
        np.testing.assert_array_equal(
            ds["cell_ids"].values[n : 2 * n],
            child_cell_ids(KEYS[1], DEFAULT_GRID)[:: 4 ** (12 - order)] >> (24 - 2 * order),
        )
        decoded = xdggs.decode(ds)
        info = decoded.dggs.grid_info
        assert (info.level, info.indexing_scheme, info.ellipsoid) == (order, "nested", "WGS84")
        assert (ds["count"].values == 0).all() and np.isnan(ds["h_mean"].values).all()
        lon, lat = healpix_to_lonlat(ds["cell_ids"].values[:10], order, ellipsoid="WGS84")
        np.testing.assert_allclose(decoded.dggs.cell_centers()["latitude"].values[:10], lat)
    ds = xr.open_zarr(store, group="6")
    assert list(ds["cell_ids"].values) == [shard_nested_id(k) for k in KEYS]
    assert list(ds["cycle"].values) == [3, 4]
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert str(ds["time"].values[0])[:19] == cycle_window(3).start.strftime("%Y-%m-%dT%H:%M:%S")
    assert str(ds["time_end"].values[1])[:19] == cycle_window(4).end.strftime("%Y-%m-%dT%H:%M:%S")
    root = json.loads((store / "zarr.json").read_text())["attributes"]
    assert [level["asset"] for level in root["multiscales"]["layout"]] == [str(o) for o in range(12, 5, -1)]
    assert root["zarr_conventions"][0]["name"] == "multiscales" and root["windows"] == {"kind": "cycle", "ranges": []}


def test_shard_owns_one_chunk_per_window_and_level_and_rewrites_identically(tmp_path):
    store = tmp_path / "s.zarr"
    assert create(store, [3, 4]) == [0, 1]
    write_shard(str(store), 1, [0, 1], stats_for(1, 2))
    first = chunk_bytes(store)
    written = {k for k in first if "/cell_ids/" not in k and "/time" not in k and "/cycle/" not in k}
    assert {k.split("/c/")[1] for k in written} == {"0/1", "1/1"}
    assert {k.split("/")[0] for k in written} == {str(o) for o in range(6, 13)}
    write_shard(str(store), 1, [0, 1], stats_for(1, 2))
    assert chunk_bytes(store) == first
    write_shard(str(store), 0, [1], stats_for(2))
    after = chunk_bytes(store)
    assert all(after[k] == v for k, v in first.items())
    ds = xr.open_zarr(store, group="12")
    np.testing.assert_array_equal(ds["count"].values[:, 4096:8192], stats_for(1, 2)[12]["count"])
    np.testing.assert_array_equal(ds["count"].values[1, :4096], stats_for(2)[12]["count"][0])


def test_a_later_window_touches_no_earlier_chunk_and_equals_one_run_of_both(tmp_path):
    """Cycle 3, then cycle 5 added (so cycle 4 too): every object equals a store made for 3..5 at once."""
    two = tmp_path / "two.zarr"
    assert create(two, [3]) == [0]
    write_shard(str(two), 1, [0], stats_for(1))
    write_shard(str(two), 2, [0], stats_for(2))
    before = every_object(two)
    assert create(two, [5]) == [2]
    after = every_object(two)
    changed = {k for k in before if after[k] != before[k]}
    assert all(k.endswith("zarr.json") for k in changed), changed  # only metadata: the shapes
    write_shard(str(two), 1, [2], stats_for(3))

    one = tmp_path / "one.zarr"
    assert create(one, [3, 5]) == [0, 2]
    both = {o: {k: np.concatenate([v, stats_for(3)[o][k]]) for k, v in s.items()} for o, s in stats_for(1).items()}
    write_shard(str(one), 1, [0, 2], both)
    write_shard(str(one), 2, [0], stats_for(2))
    assert every_object(one) == every_object(two)


def test_template_twice_is_safe_and_mismatch_is_refused(tmp_path):
    store = tmp_path / "s.zarr"
    create(store, [3])
    write_shard(str(store), 0, [0], stats_for(3))
    before = every_object(store)
    assert create(store, [3]) == [0]  # same run again: keeps the data, writes nothing
    assert every_object(store) == before
    assert xr.open_zarr(store, group="12")["count"].values.sum() == 3000
    assert xr.open_zarr(store, group="6")["count"].values.sum() == 3000
    with pytest.raises(StoreError, match="another region"):
        create(store, [3], keys=KEYS[:1])
    with pytest.raises(StoreError, match="only later windows"):
        create(store, [2])
    with pytest.raises(StoreError, match="windows"):
        create(store, [3], spec=WindowSpec(kind="month"))


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create store"):
        create(blocker / "s.zarr", [3])


def test_writing_without_template_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        write_shard(str(tmp_path / "none.zarr"), 0, [0], stats_for(4))


def test_writing_a_window_the_axis_lacks_is_a_clear_error(tmp_path):
    store = tmp_path / "s.zarr"
    create(store, [3])
    with pytest.raises(StoreError, match="extended"):
        write_shard(str(store), 0, [1], stats_for(4))

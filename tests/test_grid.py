"""Grid maths on mortie against healpix-geo's WGS84 implementation."""

from __future__ import annotations

import numpy as np
from healpix_geo.nested import lonlat_to_healpix

from shared.grid import (
    DEFAULT_GRID,
    child_cell_ids,
    nested_ids,
    parent_of,
    shard_keys_from_nested,
    shard_keys_of,
    shard_latitude_band,
    shard_nested_id,
)


def test_nested_ids_equal_healpix_geo_wgs84():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-89.9, 89.9, 20000), rng.uniform(-180, 180, 20000)
    np.testing.assert_array_equal(nested_ids(lat, lon, 12), lonlat_to_healpix(lon, lat, 12, ellipsoid="WGS84"))


def test_shard_keys_round_trip_and_children():
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(-89, -60, 500), rng.uniform(-180, 180, 500)
    keys = shard_keys_of(lat, lon)
    assert keys.dtype == np.uint64
    nested = np.array([shard_nested_id(int(k)) for k in keys])
    np.testing.assert_array_equal(shard_keys_from_nested(nested, 6), keys)
    np.testing.assert_array_equal(parent_of(nested_ids(lat, lon, 12), 12, 6), nested)
    children = child_cell_ids(int(keys[0]), DEFAULT_GRID)
    assert children.size == 4096 and children[0] == nested[0] * 4096 and np.all(np.diff(children) == 1)


def test_latitude_band_holds_the_shards_points():
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-89.99, -60, 200000), rng.uniform(-180, 180, 200000)
    keys = shard_keys_of(lat, lon)
    for key in np.unique(keys)[:200]:
        lo, hi = shard_latitude_band(int(key), pad_degrees=0.0)
        inside = lat[keys == key]
        assert inside.min() >= lo and inside.max() <= hi

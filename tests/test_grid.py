"""Grid maths against healpix-geo's WGS84 implementation, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from healpix_geo.nested import lonlat_to_healpix, vertices

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


def tie_points() -> tuple[np.ndarray, np.ndarray]:
    """Points a placement must break a tie for: the antimeridian both ways, the poles, lon 360, and
    points exactly on cell edges and corners (a lattice of the base cells' halvings, the corners
    of order-6 and order-12 cells)."""
    lon = np.append(np.arange(-180, 360, 360 / 2**9), [-180.0, 180.0, 360.0])
    lat = np.append(
        np.arange(-90, 90.1, 180 / 2**8), [-90.0, 90.0, np.degrees(np.arcsin(2 / 3)), -np.degrees(np.arcsin(2 / 3))]
    )
    grid_lon, grid_lat = (a.ravel() for a in np.meshgrid(lon, lat))
    cells = np.random.default_rng(4).integers(0, 12 * 4**6, 3000).astype(np.uint64)
    corners = [vertices(cells, 6, ellipsoid="WGS84"), vertices(cells << np.uint64(12), 12, ellipsoid="WGS84")]
    corner_lon = np.concatenate([c[0].ravel() for c in corners])
    corner_lat = np.concatenate([c[1].ravel() for c in corners])
    return np.concatenate([grid_lat, corner_lat]), np.concatenate([grid_lon, corner_lon])


def random_points(n: int = 200000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 360, n)


@pytest.mark.parametrize("points", [tie_points, random_points])
@pytest.mark.parametrize("order", [6, 12])
def test_nested_ids_equal_healpix_geo_ties_included(points, order):
    lat, lon = points()
    np.testing.assert_array_equal(nested_ids(lat, lon, order), lonlat_to_healpix(lon, lat, order, ellipsoid="WGS84"))


@pytest.mark.parametrize("points", [tie_points, random_points])
def test_shard_keys_are_the_shards_holding_healpix_geo_cells(points):
    """A point's shard key names the healpix-geo order-6 cell holding it, and so its order-12 cell."""
    lat, lon = points()
    keys = shard_keys_of(lat, lon)
    assert keys.dtype == np.uint64
    parents = lonlat_to_healpix(lon, lat, 6, ellipsoid="WGS84")
    np.testing.assert_array_equal(keys, shard_keys_from_nested(parents, 6))
    np.testing.assert_array_equal(parents, lonlat_to_healpix(lon, lat, 12, ellipsoid="WGS84") >> np.uint64(12))
    unique, first = np.unique(keys, return_index=True)
    np.testing.assert_array_equal([shard_nested_id(int(k)) for k in unique], parents[first])


def test_lon_180_and_minus_180_share_a_cell():
    lat = np.array([0.0, 0.0, -45.0, -45.0, -89.0, -89.0])
    lon = np.array([180.0, -180.0, 180.0, -180.0, 180.0, -180.0])
    ids, keys = nested_ids(lat, lon, 12), shard_keys_of(lat, lon)
    assert (ids[0::2] == ids[1::2]).all() and (keys[0::2] == keys[1::2]).all()


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

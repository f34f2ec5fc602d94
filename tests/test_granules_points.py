"""Which points are kept (shared/granules/points.py): coordinates, heights, the shard's child cells."""

from __future__ import annotations

import numpy as np

from shared.config import load_config
from shared.granules.points import Points, child_index, keep_mask, kept_points, span, valid_coordinates
from shared.grid import DEFAULT_GRID, nested_ids

FILL64 = 3.4028234663852886e38  # ATL06's latitude and longitude _FillValue
LON_FILL = np.finfo(np.float64).max  # ATL06's _FillValue for longitude (1.79769313e+308)


def test_valid_coordinates_rejects_fill_non_finite_and_out_of_range():
    lat = np.array([70.0, 70.0, np.nan, 91.0, -90.0, 70.0, 70.0])
    lon = np.array([-49.5, LON_FILL, 0.0, 0.0, 180.0, np.inf, -180.5])
    assert valid_coordinates(lat, lon, None, LON_FILL).tolist() == [True, False, False, False, True, False, False]


def test_child_index_drops_invalid_coordinates():
    lat = np.array([-75.0, np.nan, -75.0, FILL64, -75.0, 91.0, -75.0, -75.0, -75.0, 7.0])
    lon = np.array([120.0, 120.0, np.nan, 120.0, FILL64, 120.0, 360.0, -180.5, np.inf, 7.0])
    nested = nested_ids(lat[:1], lon[:1], DEFAULT_GRID.parent_order)[0]
    index = child_index(lat, lon, int(nested), DEFAULT_GRID, FILL64, FILL64)
    assert index[0] >= 0 and (index[1:] == -1).all()
    # a declared fill value inside the globe is still not a place
    assert child_index(np.array([-75.0]), np.array([120.0]), int(nested), DEFAULT_GRID, -75.0, None)[0] == -1


def test_keep_mask_needs_a_height_a_positive_sigma_and_an_accepted_flag():
    h = np.array([1.0, np.nan, 3.4028235e38, 4.0, 5.0, 6.0], np.float32)
    sigma = np.array([0.1, 0.1, 0.1, 0.0, 0.1, 0.1], np.float32)
    quality = np.array([0, 0, 0, 0, 1, 0], np.int8)
    assert keep_mask(h, sigma, quality, (0,), np.float32(3.4028235e38).item(), None).tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]
    assert keep_mask(h, sigma, None, (), None, None).tolist() == [True, False, True, False, True, True]


def test_kept_points_are_in_the_shard_and_pass_the_filters():
    config = load_config()
    cells = np.array([5, -1, 7, 9])
    h = np.array([1.0, 2.0, np.nan, 4.0], np.float32)
    sigma = np.array([0.5, 0.5, 0.5, 0.25], np.float32)
    quality = np.zeros(4, np.int8) if config.quality else None
    got = kept_points(cells, h, sigma, quality, config, None, None)
    assert got.cell.tolist() == [5, 9] and got.h.dtype == np.float64 and got.sigma.tolist() == [0.5, 0.25]
    assert len(Points.concat([got, Points.empty(), got])) == 4 and len(Points.concat([])) == 0


def test_span():
    assert span(np.array([False, True, False, True, False])) == (1, 4)
    assert span(np.zeros(3, bool)) is None


def test_time_span_is_the_earliest_and_latest_time_when_every_time_is_data():
    from shared.granules.points import time_span

    assert time_span(np.array([5.0, 3.0, 9.0]), None) == (3.0, 9.0)
    assert time_span(np.array([5.0, np.nan]), None) is None
    assert time_span(np.array([5.0, -1.0]), -1.0) is None  # the fill value is not a time
    assert time_span(np.array([]), None) is None


def test_one_window_holds_when_no_window_starts_or_ends_inside_the_span():
    from shared.granules.points import ShardGeometry

    windows = ((100.0, 200.0), (200.0, 300.0), (400.0, 500.0))  # [start, end), a gap at [300, 400)
    geometry = ShardGeometry(shard_key=1, nested=0, lat_band=(0.0, 1.0), grid=DEFAULT_GRID, windows=windows)
    assert geometry.one_window((100.0, 199.5))  # a start is inside its window
    assert not geometry.one_window((150.0, 200.0))  # 200 is in the next window
    assert not geometry.one_window((99.0, 100.0))  # 99 is in none, 100 in the first
    assert geometry.one_window((310.0, 390.0))  # all in none
    assert not geometry.one_window((250.0, 450.0))  # across a gap into the third
    assert geometry.one_window((0.0, 50.0)) and geometry.one_window((500.0, 900.0))
    unknown = ShardGeometry(shard_key=1, nested=0, lat_band=(0.0, 1.0), grid=DEFAULT_GRID)
    assert not unknown.one_window((150.0, 160.0))  # windows not known: every time is read

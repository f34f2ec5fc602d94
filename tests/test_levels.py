"""Every level and window of a shard's statistics, from the points themselves (not from finer cells)."""

from __future__ import annotations

import numpy as np

from shared.config import load_config
from shared.grid import DEFAULT_GRID
from shared.reducers import group_points
from worker.aggregate import aggregate, aggregate_levels


def independent(cell12: np.ndarray, h: np.ndarray, s: np.ndarray, order: int) -> dict[int, dict[str, float]]:
    """Per cell at ``order`` (index within the shard), numpy on the points of that cell."""
    out = {}
    coarse = cell12 // 4 ** (12 - order)
    for c in np.unique(coarse):
        m = coarse == c
        w = 1 / s[m] ** 2
        out[int(c)] = {
            "count": m.sum(),
            "h_min": h[m].min(),
            "h_max": h[m].max(),
            "h_mean": np.sum(h[m] * w) / np.sum(w),
            "h_sigma": 1 / np.sqrt(np.sum(w)),
            "h_variance": np.var(h[m]),
            "h_q25": np.quantile(h[m], 0.25),
            "h_q50": np.quantile(h[m], 0.5),
            "h_q75": np.quantile(h[m], 0.75),
        }
    return out


def test_every_level_and_window_equals_numpy_on_its_points():
    rng = np.random.default_rng(5)
    n = 20_000
    cell = np.concatenate([rng.integers(0, 4096, n - 2000), rng.integers(0, 64, 2000)])  # some dense cells
    h = rng.normal(1000, 40, n)
    s = rng.uniform(0.05, 0.5, n)
    window = rng.integers(-1, 3, n)  # -1: a time in none of the shard's windows
    got = aggregate_levels(cell, h, s, window, load_config(), DEFAULT_GRID, 3)
    assert sorted(got) == list(range(6, 13))
    for order, stats in got.items():
        for w in range(3):
            m = window == w
            expected = independent(cell[m], h[m], s[m], order)
            count = stats["count"][w]
            assert count.shape == (4 ** (order - 6),)
            assert set(np.flatnonzero(count)) == set(expected)
            for c, exp in expected.items():
                for name, value in exp.items():
                    np.testing.assert_allclose(stats[name][w, c], value, rtol=2e-6, err_msg=f"{name} {order} {w} {c}")
            assert np.isnan(stats["h_mean"][w][count == 0]).all()


def test_order_12_of_one_window_is_the_plain_aggregate_bit_for_bit():
    rng = np.random.default_rng(6)
    cell = rng.integers(0, 4096, 5000)
    h = np.round(rng.normal(1000, 40, cell.size), 1)  # ties in value, with different sigmas
    s = rng.uniform(0.05, 0.5, cell.size)
    levels = aggregate_levels(cell, h, s, np.zeros_like(cell), load_config(), DEFAULT_GRID, 1)
    plain = aggregate(cell, h, s, load_config(), 4096)
    for name, values in plain.items():
        np.testing.assert_array_equal(levels[12][name][0], values)


def test_grouping_sorts_as_lexsort_does():
    rng = np.random.default_rng(7)
    cell = rng.integers(0, 100_000, 10_000)  # past 65,536 cells: the wide integer sort
    h = np.round(rng.normal(0, 1, cell.size), 1)
    s = rng.uniform(0.1, 1, cell.size)
    order = np.lexsort((h, cell))
    for n_cells in (100_000, 1 << 17):
        groups = group_points(cell, h, s, n_cells)
        np.testing.assert_array_equal(groups.values, h[order])
        np.testing.assert_array_equal(groups.weights, 1 / s[order] ** 2)
    small = cell % 4096
    groups = group_points(small, h, s, 4096)
    np.testing.assert_array_equal(groups.weights, 1 / s[np.lexsort((h, small))] ** 2)

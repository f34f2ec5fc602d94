"""Reducers against the architecture's reference vector and against numpy cell by cell."""

from __future__ import annotations

import numpy as np
import pytest

from shared.config import load_config
from shared.reducers import REDUCERS, group_points, reduce
from worker.aggregate import aggregate


def test_reference_vector():
    g = group_points(np.zeros(3, int), np.array([10.0, 20.0, 30.0]), np.array([0.1, 0.2, 0.1]), n_cells=1)
    assert reduce(g, "count")[0] == 3
    assert reduce(g, "min")[0] == 10
    assert reduce(g, "max")[0] == 30
    assert reduce(g, "weighted_mean")[0] == pytest.approx(20.0)
    assert reduce(g, "weighted_sigma")[0] == pytest.approx(0.0666667, rel=1e-5)
    assert reduce(g, "variance")[0] == pytest.approx(66.6667, rel=1e-5)
    assert reduce(g, "quantile", q=0.25)[0] == 15
    assert reduce(g, "quantile", q=0.5)[0] == 20
    assert reduce(g, "quantile", q=0.75)[0] == 25


def test_all_reducers_match_numpy_per_cell():
    rng = np.random.default_rng(42)
    n_cells = 64
    cell = rng.integers(0, n_cells - 8, 5000)  # the last cells stay empty
    h = rng.normal(1500, 300, cell.size)
    s = rng.uniform(0.02, 0.5, cell.size)
    g = group_points(cell, h, s, n_cells)
    numpy_stat = {
        "count": lambda x, w: x.size,
        "min": lambda x, w: x.min(),
        "max": lambda x, w: x.max(),
        "mean": lambda x, w: x.mean(),
        "weighted_mean": lambda x, w: np.average(x, weights=w),
        "weighted_sigma": lambda x, w: 1 / np.sqrt(w.sum()),
        "variance": lambda x, w: np.var(x),
        "std": lambda x, w: np.std(x),
    }
    assert set(numpy_stat) | {"quantile"} == set(REDUCERS)
    for c in range(n_cells):
        m = cell == c
        for name, fn in numpy_stat.items():
            got = reduce(g, name)[c]
            if m.any():
                np.testing.assert_allclose(got, fn(h[m], 1 / s[m] ** 2), rtol=1e-6, err_msg=f"{name} cell {c}")
            elif name == "count":
                assert got == 0
            else:
                assert np.isnan(got)
        for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
            got = reduce(g, "quantile", q=q)[c]
            if m.any():
                np.testing.assert_allclose(got, np.quantile(h[m], q), rtol=1e-6)
            else:
                assert np.isnan(got)


def test_storage_dtypes():
    out = aggregate(np.array([0, 0, 5]), np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]), load_config(), 4096)
    assert out["count"].dtype == np.int32 and out["count"].sum() == 3
    assert all(v.dtype == np.float32 for k, v in out.items() if k != "count")
    assert all(v.shape == (4096,) for v in out.values())


def test_single_point_cell():
    g = group_points(np.array([2]), np.array([7.0]), np.array([0.5]), 3)
    assert reduce(g, "variance")[2] == 0
    assert reduce(g, "quantile", q=0.25)[2] == 7
    assert reduce(g, "weighted_sigma")[2] == pytest.approx(0.5)

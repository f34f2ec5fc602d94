"""Named reducers: per-cell statistics over points grouped by cell, with no loop over cells.

Every reducer takes a :class:`Groups` (points sorted by cell, then by height) and returns one
value per cell. Sorting once makes min, max and quantiles index look-ups, and sums are
``np.bincount``. Arithmetic is float64; the store keeps float32 (``count`` is int32).
A configuration picks reducers by name from :data:`REDUCERS`; nothing is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Points of one shard grouped by cell: sorted by (cell, value)."""

    cell: np.ndarray  # int64 cell index in [0, n_cells), non-decreasing
    values: np.ndarray  # float64, ascending within each cell
    weights: np.ndarray  # float64 inverse variance 1/sigma^2, same order as values
    counts: np.ndarray  # int64 points per cell
    starts: np.ndarray  # int64 offset of each cell's first point

    @property
    def n_cells(self) -> int:
        return self.counts.size

    @property
    def filled(self) -> np.ndarray:
        return self.counts > 0


def value_order(values: np.ndarray) -> np.ndarray:
    """The stable sort of ``values``: one sort that several groupings of the same points share."""
    return np.argsort(np.asarray(values, dtype=np.float64), kind="stable")


def group_points(
    cell: np.ndarray, values: np.ndarray, sigma: np.ndarray, n_cells: int, by_value: np.ndarray | None = None
) -> Groups:
    """Sort points by cell and value. ``cell`` holds indices in ``[0, n_cells)``; ``by_value`` is
    :func:`value_order` of ``values`` when already known.

    Points sorted by value, then stably by cell, are sorted by (cell, value, position): the order
    ``np.lexsort((values, cell))`` gives, at the cost of an integer sort (a radix sort for up to
    65,536 cells)."""
    cell = np.asarray(cell, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if cell.size and (cell.min() < 0 or cell.max() >= n_cells):
        raise ValueError("cell index out of range")
    by_value = value_order(values) if by_value is None else by_value
    keys = cell[by_value].astype(np.uint16 if n_cells <= 1 << 16 else np.int64)
    order = by_value[np.argsort(keys, kind="stable")]
    cell = cell[order]
    counts = np.bincount(cell, minlength=n_cells).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return Groups(cell=cell, values=values[order], weights=1.0 / np.square(sigma[order]), counts=counts, starts=starts)


def _per_cell(groups: Groups, filled_values: np.ndarray) -> np.ndarray:
    out = np.full(groups.n_cells, np.nan)
    out[groups.filled] = filled_values
    return out


def _sum(groups: Groups, x: np.ndarray) -> np.ndarray:
    return np.bincount(groups.cell, weights=x, minlength=groups.n_cells)


def count(groups: Groups) -> np.ndarray:
    return groups.counts.copy()


def minimum(groups: Groups) -> np.ndarray:
    f = groups.filled
    return _per_cell(groups, groups.values[groups.starts[f]])


def maximum(groups: Groups) -> np.ndarray:
    f = groups.filled
    return _per_cell(groups, groups.values[groups.starts[f] + groups.counts[f] - 1])


def mean(groups: Groups) -> np.ndarray:
    f = groups.filled
    return _per_cell(groups, _sum(groups, groups.values)[f] / groups.counts[f])


def weighted_mean(groups: Groups) -> np.ndarray:
    """Inverse-variance weighted mean: sum(h/s^2) / sum(1/s^2)."""
    f = groups.filled
    return _per_cell(groups, _sum(groups, groups.values * groups.weights)[f] / _sum(groups, groups.weights)[f])


def weighted_sigma(groups: Groups) -> np.ndarray:
    """Uncertainty of the weighted mean: 1 / sqrt(sum(1/s^2))."""
    f = groups.filled
    return _per_cell(groups, 1.0 / np.sqrt(_sum(groups, groups.weights)[f]))


def variance(groups: Groups) -> np.ndarray:
    """Population variance (ddof 0), two-pass for numerical stability."""
    f = groups.filled
    cell_mean = np.zeros(groups.n_cells)
    cell_mean[f] = _sum(groups, groups.values)[f] / groups.counts[f]
    squares = _sum(groups, np.square(groups.values - cell_mean[groups.cell]))
    return _per_cell(groups, squares[f] / groups.counts[f])


def std(groups: Groups) -> np.ndarray:
    return np.sqrt(variance(groups))


def quantile(groups: Groups, q: float) -> np.ndarray:
    """Linear-interpolation quantile, numpy's default method, for every cell at once."""
    f = groups.filled
    n = groups.counts[f]
    position = q * (n - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    t = position - below
    a = groups.values[groups.starts[f] + below]
    b = groups.values[groups.starts[f] + above]
    # numpy's lerp: from the nearer end, so that t == 1 returns b exactly.
    diff = b - a
    value = np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)
    return _per_cell(groups, value)


@dataclass(frozen=True)
class Reducer:
    func: Callable[..., np.ndarray]
    dtype: np.dtype
    fill_value: float | int  # the value of a cell with no points


REDUCERS: dict[str, Reducer] = {
    "count": Reducer(count, np.dtype("int32"), 0),
    "min": Reducer(minimum, np.dtype("float32"), np.nan),
    "max": Reducer(maximum, np.dtype("float32"), np.nan),
    "mean": Reducer(mean, np.dtype("float32"), np.nan),
    "weighted_mean": Reducer(weighted_mean, np.dtype("float32"), np.nan),
    "weighted_sigma": Reducer(weighted_sigma, np.dtype("float32"), np.nan),
    "variance": Reducer(variance, np.dtype("float32"), np.nan),
    "std": Reducer(std, np.dtype("float32"), np.nan),
    "quantile": Reducer(quantile, np.dtype("float32"), np.nan),
}


def reduce(groups: Groups, reducer: str, **params: float) -> np.ndarray:
    """Apply a named reducer and cast to its storage dtype."""
    spec = REDUCERS[reducer]
    return spec.func(groups, **params).astype(spec.dtype)

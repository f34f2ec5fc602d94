"""Named reducers: per-cell statistics over points grouped by cell, with no loop over cells.

Every reducer takes a :class:`Groups` (points sorted by cell, then by height) and returns one
value per cell. Sorting once makes min, max and quantiles index look-ups, and sums run over
each cell's contiguous points (``np.add.reduceat``). Arithmetic is float64; the store keeps
float32 (``count`` is int32). A configuration picks reducers by name from :data:`REDUCERS`;
nothing is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Points of one shard grouped by cell: sorted by (cell, value)."""

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
    """The stable sort of ``values``."""
    return np.argsort(np.asarray(values, dtype=np.float64), kind="stable")


def group_points(cell: np.ndarray, values: np.ndarray, sigma: np.ndarray, n_cells: int) -> Groups:
    """Sort points by cell and value. ``cell`` holds indices in ``[0, n_cells)``."""
    order = value_order(values)
    weights = 1.0 / np.square(np.asarray(sigma, dtype=np.float64))
    return group_value_sorted(
        np.asarray(cell, dtype=np.int64)[order], np.asarray(values, dtype=np.float64)[order], weights[order], n_cells
    )


def group_value_sorted(cell: np.ndarray, values: np.ndarray, weights: np.ndarray, n_cells: int) -> Groups:
    """Group points that are already in :func:`value_order` (``weights``: 1/sigma^2): several
    groupings of the same points (levels, windows) share one sort by value.

    Points sorted by value, then stably by cell, are sorted by (cell, value, position): the order
    ``np.lexsort((values, cell))`` gives, at the cost of an integer sort (a radix sort for up to
    65,536 cells)."""
    cell = np.asarray(cell, dtype=np.int64)
    if cell.size and (cell.min() < 0 or cell.max() >= n_cells):
        raise ValueError("cell index out of range")
    keys = cell.astype(np.uint16) if n_cells <= 1 << 16 else cell
    by_cell = np.argsort(keys, kind="stable")
    counts = np.bincount(cell, minlength=n_cells).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return Groups(values=values[by_cell], weights=weights[by_cell], counts=counts, starts=starts)


def _per_cell(groups: Groups, filled_values: np.ndarray) -> np.ndarray:
    out = np.full(groups.n_cells, np.nan)
    out[groups.filled] = filled_values
    return out


def _sums(groups: Groups, x: np.ndarray) -> np.ndarray:
    """The sum of ``x`` over each filled cell's points, which are contiguous."""
    f = groups.filled
    return np.add.reduceat(x, groups.starts[f]) if f.any() else np.zeros(0)


def count(groups: Groups) -> np.ndarray:
    return groups.counts.copy()


def minimum(groups: Groups) -> np.ndarray:
    f = groups.filled
    return _per_cell(groups, groups.values[groups.starts[f]])


def maximum(groups: Groups) -> np.ndarray:
    f = groups.filled
    return _per_cell(groups, groups.values[groups.starts[f] + groups.counts[f] - 1])


def mean(groups: Groups) -> np.ndarray:
    return _per_cell(groups, _sums(groups, groups.values) / groups.counts[groups.filled])


def weighted_mean(groups: Groups) -> np.ndarray:
    """Inverse-variance weighted mean: sum(h/s^2) / sum(1/s^2)."""
    return _per_cell(groups, _sums(groups, groups.values * groups.weights) / _sums(groups, groups.weights))


def weighted_sigma(groups: Groups) -> np.ndarray:
    """Uncertainty of the weighted mean: 1 / sqrt(sum(1/s^2))."""
    return _per_cell(groups, 1.0 / np.sqrt(_sums(groups, groups.weights)))


def variance(groups: Groups) -> np.ndarray:
    """Population variance (ddof 0), two-pass for numerical stability."""
    n = groups.counts[groups.filled]
    cell_mean = _sums(groups, groups.values) / n
    squares = _sums(groups, np.square(groups.values - np.repeat(cell_mean, n)))
    return _per_cell(groups, squares / n)


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

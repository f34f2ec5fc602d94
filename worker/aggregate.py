"""Per-cell statistics of a shard's points, as configured: arrays in, arrays out.

:func:`aggregate_levels` computes every level of the store (the child order down to the shard's
own) and every time window from the points themselves, in one pass over them: quantiles and
variances do not combine, so a coarse cell is never derived from finer cells' statistics.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from shared.config import PipelineConfig
from shared.grid import GridSignature
from shared.reducers import Groups, group_points, group_value_sorted, reduce, value_order

# stats_by_level[order][name]: shape (windows, cells of the shard at that order)
StatsByLevel = dict[int, dict[str, np.ndarray]]
# Levels are grouped side by side: numpy's sorts, gathers and sums release the GIL.
LEVEL_THREADS = 2


def aggregate(
    cell: np.ndarray, h: np.ndarray, sigma: np.ndarray, config: PipelineConfig, n_cells: int
) -> dict[str, np.ndarray]:
    """Every configured statistic for cells ``0..n_cells-1``; empty cells hold the reducer's fill value."""
    return statistics(group_points(cell, h, sigma, n_cells), config)


def statistics(groups: Groups, config: PipelineConfig) -> dict[str, np.ndarray]:
    """Every configured statistic of grouped points."""
    out = {}
    for name, stat in config.statistics.items():
        params = {"q": stat.q} if stat.q is not None else {}
        out[name] = reduce(groups, stat.reducer, **params)
    return out


def aggregate_levels(
    cell: np.ndarray,
    h: np.ndarray,
    sigma: np.ndarray,
    window: np.ndarray,
    config: PipelineConfig,
    grid: GridSignature,
    n_windows: int,
) -> StatsByLevel:
    """Statistics per window and per level of one shard's points.

    ``cell`` is each point's child-cell index in the shard (0..children-1 at the child order),
    ``window`` its window's position among the ``n_windows`` the shard writes (-1: in none, not
    counted). Nested ids nest by bit shifting, so a point's cell at a coarser order is its child
    index shifted right by two bits per order.
    """
    window = np.asarray(window, dtype=np.int64)
    used = np.flatnonzero(window >= 0)
    by_value = used[value_order(np.asarray(h)[used])]  # sorted by value once, for every level
    cell, window = np.asarray(cell, dtype=np.int64)[by_value], window[by_value]
    h = np.asarray(h, dtype=np.float64)[by_value]
    weights = 1.0 / np.square(np.asarray(sigma, dtype=np.float64)[by_value])

    def level(order: int) -> tuple[int, dict[str, np.ndarray]]:
        n = grid.cells_per_shard(order)
        key = window * n + (cell >> (2 * (grid.child_order - order)))
        stats = statistics(group_value_sorted(key, h, weights, n_windows * n), config)
        return order, {name: values.reshape(n_windows, n) for name, values in stats.items()}

    with ThreadPoolExecutor(max_workers=LEVEL_THREADS) as pool:
        return dict(pool.map(level, grid.levels))

"""Per-cell statistics of a shard's points, as configured: arrays in, arrays out."""

from __future__ import annotations

import numpy as np

from shared.config import PipelineConfig
from shared.reducers import group_points, reduce


def aggregate(
    cell: np.ndarray, h: np.ndarray, sigma: np.ndarray, config: PipelineConfig, n_cells: int
) -> dict[str, np.ndarray]:
    """Every configured statistic for cells ``0..n_cells-1``; empty cells hold the reducer's fill value."""
    groups = group_points(cell, h, sigma, n_cells)
    out = {}
    for name, stat in config.statistics.items():
        params = {"q": stat.q} if stat.q is not None else {}
        out[name] = reduce(groups, stat.reducer, **params)
    return out

"""HEALPix grid maths: the one place that knows the orders and how shards map to cells.

Shards are identified by mortie morton words (unsigned 64-bit) of their order-6 parent cell;
cells inside a shard by HEALPix *nested* ids at the child order. Points are placed by healpix-geo
on the WGS84 ellipsoid (authalic latitude, so every cell is equal-area), the grid xdggs decodes the
store with; morton words are derived from those nested ids, so a point's shard always holds its
cell. mortie places points too, but breaks exact ties (lon -180, lat -90, cell edges) otherwise.
mortie is imported by the functions that use it: it imports pandas (~0.3 s with bytecode cached,
~1 s without), which the many importers of the grid signature alone (status, messages) never need.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from healpix_geo.nested import lonlat_to_healpix
from pydantic import BaseModel, ConfigDict

PARENT_ORDER = 6
CHILD_ORDER = 12
ELLIPSOID = "WGS84"


def children_per_shard(parent_order: int = PARENT_ORDER, child_order: int = CHILD_ORDER) -> int:
    return 4 ** (child_order - parent_order)


class GridSignature(BaseModel):
    """What a catalog, a run and a store must agree on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["healpix"] = "healpix"
    indexing: Literal["nested"] = "nested"
    parent_order: int = PARENT_ORDER
    child_order: int = CHILD_ORDER
    ellipsoid: Literal["WGS84"] = ELLIPSOID

    @property
    def children_per_shard(self) -> int:
        return children_per_shard(self.parent_order, self.child_order)

    @property
    def levels(self) -> tuple[int, ...]:
        """The orders a store holds, finest first: the child order down to the shard's own."""
        return tuple(range(self.child_order, self.parent_order - 1, -1))

    def cells_per_shard(self, order: int) -> int:
        """Cells of one shard at ``order``: its chunk length at that level."""
        return children_per_shard(self.parent_order, order)


DEFAULT_GRID = GridSignature()


def nested_ids(lat: np.ndarray, lon: np.ndarray, order: int) -> np.ndarray:
    """HEALPix nested ids (uint64) at ``order`` of geodetic points: healpix-geo's WGS84 ids, ties included.

    Points the grid has no place for (a non-finite coordinate, |lat| > 90) raise ValueError: the
    library would panic, and a Rust panic escapes ``except Exception``. Drop them first
    (``shared.granules.points.valid_coordinates``).
    """
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    if not ((np.abs(lat) <= 90).all() and np.isfinite(lon).all()):
        raise ValueError("coordinates off the grid (non-finite, or |latitude| > 90): drop them before placing points")
    return np.atleast_1d(lonlat_to_healpix(lon, lat, order, ellipsoid=ELLIPSOID)).astype(np.uint64)


def parent_of(cell_ids: np.ndarray, cell_order: int, parent_order: int) -> np.ndarray:
    """Nested ids of the ancestors at ``parent_order`` (nested ids nest by bit shifting)."""
    return np.asarray(cell_ids, dtype=np.uint64) >> np.uint64(2 * (cell_order - parent_order))


def shard_nested_id(shard_key: int) -> int:
    """Nested id of a shard given its morton word."""
    import mortie

    ids, _ = mortie.mort2healpix(np.array([shard_key], dtype=np.uint64))
    return int(ids[0])


def shard_order(shard_key: int) -> int:
    import mortie

    _, order = mortie.mort2healpix(np.array([shard_key], dtype=np.uint64))
    return int(order)


def shard_keys_from_nested(nested: np.ndarray, order: int) -> np.ndarray:
    """Morton words (uint64) of nested ids at ``order``: the inverse of :func:`shard_nested_id`."""
    import mortie

    nested = np.asarray(nested, dtype=np.int64)
    base = nested >> (2 * order)
    normed = nested & ((1 << (2 * order)) - 1)
    return np.atleast_1d(mortie.norm2mort(normed, base, order)).astype(np.uint64)


def shard_keys_of(lat: np.ndarray, lon: np.ndarray, order: int = PARENT_ORDER) -> np.ndarray:
    """Morton words (uint64) of the shards holding each point (and so its cells at every finer order)."""
    return shard_keys_from_nested(nested_ids(lat, lon, order), order)


def child_cell_ids(shard_key: int, grid: GridSignature = DEFAULT_GRID) -> np.ndarray:
    """The shard's child cells at the child order: a contiguous nested range, in order."""
    n = grid.children_per_shard
    first = shard_nested_id(shard_key) * n
    return np.arange(first, first + n, dtype=np.uint64)


def shard_latitude_band(shard_key: int, pad_degrees: float = 0.01) -> tuple[float, float]:
    """Geodetic latitude range of a shard, padded: a cheap test that rules points out.

    HEALPix cell edges are monotonic in latitude between vertices, so the vertices bound it.
    """
    import mortie

    box = mortie.mort2bbox(np.uint64(shard_key))
    lo, hi = float(box["south"]), float(box["north"])
    return max(lo - pad_degrees, -90.0), min(hi + pad_degrees, 90.0)

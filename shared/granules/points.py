"""Which points of a beam belong to a shard and pass the filters: pure functions, no I/O.

Also the two values every read strategy deals in: :class:`ShardGeometry` (what a read needs to
know about the shard) and :class:`Points` (the kept points: child-cell index, height, sigma, time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shared.config import PipelineConfig
from shared.grid import GridSignature, nested_ids, parent_of, shard_keys_of, shard_latitude_band, shard_nested_id

if TYPE_CHECKING:
    from shared.windows import TimeWindow


@dataclass(frozen=True)
class ShardGeometry:
    """What a read needs to know about the shard it reads for."""

    shard_key: int
    nested: int
    lat_band: tuple[float, float]
    grid: GridSignature
    # ``[start, end)`` of each window the shard's points are counted in, in delta_time seconds;
    # None: not known to the read, which then reads every point's own time
    windows: tuple[tuple[float, float], ...] | None = None

    @classmethod
    def of(cls, shard_key: int, grid: GridSignature, windows: Iterable[TimeWindow] | None = None) -> ShardGeometry:
        bounds = None if windows is None else tuple(w.bounds_s for w in windows)
        return cls(shard_key, shard_nested_id(shard_key), shard_latitude_band(shard_key), grid, bounds)

    def one_window(self, span: tuple[float, float]) -> bool:
        """Whether every time from ``span[0]`` to ``span[1]`` falls in the same window, or every one
        in none: no window starts or ends after the earliest and at or before the latest. Then
        points with times in that span are placed without reading each one's time."""
        if self.windows is None:
            return False
        edges = np.unique(np.asarray(self.windows, dtype=np.float64))
        first, last = np.searchsorted(edges, span, side="right")
        return bool(first == last)


@dataclass
class Points:
    """Kept points of a shard: child-cell index, height, height sigma, time (``delta_time``: what
    places a point in its window; NaN where a reader had no time, a point then in no window).
    Where a granule index shows that a beam's times all fall in one window (or in none), the
    beam's points carry its earliest time instead of their own (:meth:`ShardGeometry.one_window`)."""

    cell: np.ndarray
    h: np.ndarray
    sigma: np.ndarray
    time: np.ndarray

    @classmethod
    def empty(cls) -> Points:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64), np.empty(0, np.float64))

    @classmethod
    def concat(cls, parts: list[Points]) -> Points:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("cell", "h", "sigma", "time")))

    def __len__(self) -> int:
        return self.cell.size


def dataset_names(config: PipelineConfig) -> tuple[str, ...]:
    """Every dataset of a beam a shard reads: coordinates, then values (the time among them)."""
    return (config.latitude, config.longitude, config.value, config.sigma, config.time) + (
        (config.quality.dataset,) if config.quality else ()
    )


def valid_values(x: np.ndarray, fill_value: float | None) -> np.ndarray:
    """True where ``x`` is data: finite and not the dataset's HDF5 fill value."""
    ok = np.isfinite(x)
    if fill_value is not None:
        ok &= x != fill_value
    return ok


def time_span(time: np.ndarray, fill_value: float | None) -> tuple[float, float] | None:
    """The earliest and the latest of ``time``, when every one of them is data
    (:func:`valid_values`); None when any is not (then each point's own time decides whether it is
    kept)."""
    time = np.asarray(time, dtype=np.float64)
    if time.size == 0 or not valid_values(time, fill_value).all():
        return None
    return float(time.min()), float(time.max())


def valid_latitudes(lat: np.ndarray, fill_value: float | None) -> np.ndarray:
    """True where ``lat`` is a latitude: data (:func:`valid_values`) within [-90, 90]."""
    return valid_values(lat, fill_value) & (np.abs(lat) <= 90)


def valid_coordinates(lat: np.ndarray, lon: np.ndarray, lat_fill: float | None, lon_fill: float | None) -> np.ndarray:
    """True where a point has a place on the grid: a latitude, and a longitude that is data within
    [-180, 360). Points without one are dropped, like points without a height."""
    return valid_latitudes(lat, lat_fill) & valid_values(lon, lon_fill) & (lon >= -180) & (lon < 360)


def keep_mask(
    h: np.ndarray,
    sigma: np.ndarray,
    quality: np.ndarray | None,
    keep: tuple[int, ...],
    h_fill: float | None,
    sigma_fill: float | None,
) -> np.ndarray:
    """Points every statistic can use: a height, a positive finite sigma, and an accepted quality flag."""
    ok = valid_values(h, h_fill) & valid_values(sigma, sigma_fill) & (sigma > 0)
    if quality is not None:
        # a comparison per accepted flag: np.isin is ~100x slower for a few values
        ok &= np.logical_or.reduce([quality == k for k in keep]) if keep else False
    return ok


def kept_points(cells, h, sigma, quality, cfg: PipelineConfig, h_fill, sigma_fill, time=None, time_fill=None) -> Points:
    """The points of a beam slice that are in the shard (``cells >= 0``) and pass the filters.
    With ``time``, a point needs a time too (data: :func:`valid_values`)."""
    keep = (cells >= 0) & keep_mask(h, sigma, quality, cfg.quality.keep if cfg.quality else (), h_fill, sigma_fill)
    if time is None:
        time = np.full(np.shape(h), np.nan)
    else:
        keep &= valid_values(time, time_fill)
    return Points(
        cells[keep], h[keep].astype(np.float64), sigma[keep].astype(np.float64), time[keep].astype(np.float64)
    )


def span(mask: np.ndarray) -> tuple[int, int] | None:
    """Smallest index range ``[start, stop)`` holding every True of ``mask``; None if there is none."""
    hits = np.flatnonzero(mask)
    if hits.size == 0:
        return None
    return int(hits[0]), int(hits[-1]) + 1


def child_index(
    lat: np.ndarray,
    lon: np.ndarray,
    shard_nested: int,
    grid: GridSignature,
    lat_fill: float | None = None,
    lon_fill: float | None = None,
) -> np.ndarray:
    """Index (0..children-1) of each point's child cell in the shard, -1 for points outside it or
    without valid coordinates (:func:`valid_coordinates`)."""
    located = np.flatnonzero(valid_coordinates(lat, lon, lat_fill, lon_fill))
    cells = nested_ids(lat[located], lon[located], grid.child_order)
    inside = parent_of(cells, grid.child_order, grid.parent_order) == np.uint64(shard_nested)
    first = np.uint64(shard_nested) * np.uint64(grid.children_per_shard)
    index = np.full(np.shape(lat), -1, dtype=np.int64)
    index[located[inside]] = (cells[inside] - first).astype(np.int64)
    return index


def beam_segments(lat: np.ndarray, lon: np.ndarray, grid: GridSignature) -> dict[int, tuple[int, int]]:
    """Per shard touched by one beam's (valid) coordinates: the index range holding its points."""
    keys = shard_keys_of(lat, lon, grid.parent_order)
    order = np.argsort(keys, kind="stable")
    unique, first = np.unique(keys[order], return_index=True)
    bounds = np.append(first, keys.size)
    return {
        int(key): (int(order[bounds[i] : bounds[i + 1]].min()), int(order[bounds[i] : bounds[i + 1]].max()) + 1)
        for i, key in enumerate(unique)
    }


def shard_segments(
    coordinates: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], grid: GridSignature
) -> dict[int, dict[str, tuple[int, int]]]:
    """Per shard a granule touches, per beam the index range ``[start, stop)`` holding the shard's
    points, from each beam's whole ``(latitude, longitude, valid)`` (what
    :meth:`~shared.granules.survey.GranuleSurvey.coordinates` gives). Points without valid
    coordinates belong to no shard."""
    shards: dict[int, dict[str, tuple[int, int]]] = {}
    for beam, (lat, lon, ok) in coordinates.items():
        index = np.flatnonzero(ok)
        for key, (start, stop) in beam_segments(lat[ok], lon[ok], grid).items():
            shards.setdefault(key, {})[beam] = (int(index[start]), int(index[stop - 1]) + 1)
    return shards

"""Read the points of one shard from one granule, fetching as little as possible.

For each beam: latitude first (the cheapest test that rules points out), longitude only over the
index range whose latitude can reach the shard, and the value datasets only over the range
that holds the shard's points. When the catalog recorded that range (``GranuleRef.segments``),
the coordinates are read over it alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from h5coro import h5coro

from shared.catalog import GranuleRef
from shared.config import PipelineConfig
from shared.grid import GridSignature, shard_latitude_band, shard_nested_id
from shared.results import FailureKind
from worker.granule_io import GranuleReadError, ReadContext, driver_for
from worker.points import child_index, keep_mask, span

# h5coro fetches metadata through a cache of lines this long. Its 4 MiB default pulls in far
# more than a beam's few chunks; small lines fetch close to what is used (architecture, section 6).
CACHE_LINE_SIZE = 256 * 1024


@dataclass(frozen=True)
class ShardGeometry:
    """What a reader needs to know about the shard it reads for."""

    shard_key: int
    nested: int
    lat_band: tuple[float, float]
    grid: GridSignature

    @classmethod
    def of(cls, shard_key: int, grid: GridSignature) -> "ShardGeometry":
        return cls(shard_key, shard_nested_id(shard_key), shard_latitude_band(shard_key), grid)


@dataclass
class Points:
    """Kept points of a shard: child-cell index, height, height sigma."""

    cell: np.ndarray
    h: np.ndarray
    sigma: np.ndarray

    @classmethod
    def empty(cls) -> "Points":
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))

    @classmethod
    def concat(cls, parts: list["Points"]) -> "Points":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("cell", "h", "sigma")))

    def __len__(self) -> int:
        return self.cell.size


def _fill_value(dataset: h5coro.H5Dataset) -> float | None:
    """The dataset's HDF5 fill value, decoded to its own dtype (h5coro keeps the raw bits)."""
    meta = dataset.meta
    if not meta.fillsize or meta.fillvalue is None:
        return None
    raw = struct.pack("<Q", meta.fillvalue)[: meta.fillsize]
    return np.frombuffer(raw, dtype=dataset.values.dtype)[0].item()


class GranuleReader:
    """Reads one granule for one shard through h5coro."""

    def __init__(self, granule: GranuleRef, config: PipelineConfig, context: ReadContext, cache_line_size: int = CACHE_LINE_SIZE):
        self.granule = granule
        self.config = config
        location = granule.location
        try:
            self.h5 = h5coro.H5Coro(location, driver_for(location), credentials=context, errorChecking=True, verbose=False, cacheLineSize=cache_line_size)
        except GranuleReadError:
            raise
        except Exception as exc:  # h5coro raises RuntimeError subclasses for anything it cannot parse
            raise GranuleReadError(FailureKind.CORRUPT, f"{granule.id}: not a readable HDF5 file ({exc})") from None

    def close(self) -> None:
        self.h5.close()

    def _read(self, requests: dict[str, tuple[int, int] | None]) -> dict[str, h5coro.H5Dataset]:
        """Read several datasets at once (h5coro runs them in threads); missing ones come back None."""
        if not requests:
            return {}
        table = [path if rng is None else {"dataset": path, "hyperslice": [list(rng)]} for path, rng in requests.items()]
        promise = self.h5.readDatasets(table, block=True)
        return {path: promise.datasets[path.lstrip("/")] for path in requests}

    def _require(self, found: dict[str, h5coro.H5Dataset], path: str) -> h5coro.H5Dataset:
        dataset = found[path]
        if dataset is None or dataset.values is None:
            raise GranuleReadError(FailureKind.CORRUPT, f"{self.granule.id}: cannot read {path}")
        return dataset

    def coordinates(self, shard: ShardGeometry) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
        """Per beam: offset, latitude and longitude over the range that can hold the shard's points."""
        cfg = self.config
        if self.granule.segments is not None:
            ranges: dict[str, tuple[int, int] | None] = {b: r for b, r in self.granule.segments.items() if b in cfg.beams}
            found = self._read({cfg.dataset_path(b, cfg.latitude): r for b, r in ranges.items()})
            lat_by_beam = {}
            for beam, rng in ranges.items():
                lat_by_beam[beam] = (rng[0], self._require(found, cfg.dataset_path(beam, cfg.latitude)).values)
        else:
            found = self._read({cfg.dataset_path(b, cfg.latitude): None for b in cfg.beams})
            lat_by_beam = {}
            lo, hi = shard.lat_band
            for beam in cfg.beams:
                dataset = found[cfg.dataset_path(beam, cfg.latitude)]
                if dataset is None or dataset.values is None:
                    continue  # a missing beam is normal
                lat = dataset.values
                rng = span((lat >= lo) & (lat <= hi))
                if rng is not None:
                    lat_by_beam[beam] = (rng[0], lat[rng[0] : rng[1]])
        lon_found = self._read({cfg.dataset_path(b, cfg.longitude): (start, start + lat.size) for b, (start, lat) in lat_by_beam.items()})
        return {
            beam: (start, lat, self._require(lon_found, cfg.dataset_path(beam, cfg.longitude)).values)
            for beam, (start, lat) in lat_by_beam.items()
        }

    def points(self, shard: ShardGeometry) -> Points:
        cfg = self.config
        located: dict[str, tuple[int, np.ndarray]] = {}
        for beam, (start, lat, lon) in self.coordinates(shard).items():
            cells = child_index(lat, lon, shard.nested, shard.grid)
            rng = span(cells >= 0)
            if rng is not None:
                located[beam] = (start + rng[0], cells[rng[0] : rng[1]])
        value_names = [cfg.value, cfg.sigma] + ([cfg.quality.dataset] if cfg.quality else [])
        found = self._read(
            {cfg.dataset_path(b, name): (start, start + cells.size) for b, (start, cells) in located.items() for name in value_names}
        )
        parts = []
        for beam, (_, cells) in located.items():
            h = self._require(found, cfg.dataset_path(beam, cfg.value))
            sigma = self._require(found, cfg.dataset_path(beam, cfg.sigma))
            quality = self._require(found, cfg.dataset_path(beam, cfg.quality.dataset)).values if cfg.quality else None
            keep = (cells >= 0) & keep_mask(
                h.values, sigma.values, quality, cfg.quality.keep if cfg.quality else (), _fill_value(h), _fill_value(sigma)
            )
            parts.append(Points(cells[keep], h.values[keep].astype(np.float64), sigma.values[keep].astype(np.float64)))
        return Points.concat(parts)


def read_points(granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
    """The shard's kept points in one granule. Raises :class:`GranuleReadError` naming the problem."""
    reader = GranuleReader(granule, config, context)
    try:
        return reader.points(shard)
    finally:
        reader.close()

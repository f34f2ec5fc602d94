"""How the points of one shard are read from one granule: three strategies behind one interface,
and the one function that chooses among them (:func:`choose_strategy`).

* ``recorded_chunks`` (:class:`RecordedChunks`): the catalog recorded, per beam and dataset, where
  the chunks over the shard's index range are stored and how they are encoded
  (``GranuleRef.chunks``). No HDF5 metadata is read: one round fetches those chunks, decoded here.
* ``catalog_segments`` (:class:`CatalogSegments`): the catalog recorded only the index range per
  beam that holds the shard's points (``GranuleRef.segments``). The metadata is walked, then one
  round reads latitude, longitude and the value datasets over those ranges.
* ``latitude_search`` (:class:`LatitudeSearch`): no catalog help (e.g. a CMR catalog). Latitude is
  searched chunk by chunk (:class:`~shared.granules.search.BandSearch`): both end chunks first,
  then the chunks the latitude trend points at, until every other chunk is proven unable to hold
  a latitude inside the shard's band. Then longitude over the runs of chunks whose latitude is in
  the band, then the value datasets over the range that holds the shard's points.

Whatever the strategy, points without valid coordinates are dropped, and points come out in the
order of a whole-array read (beam by beam, along track), so the statistics are identical to the
original system's, bit for bit.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shared.catalog import GranuleRef
from shared.config import PipelineConfig
from shared.granules.chunks import ChunkDecodeError, byte_ranges, values_in_range
from shared.granules.h5coro_adapter import H5File
from shared.granules.io import GranuleReadError, RangeStore, ReadContext, fetch_ranges, open_source
from shared.granules.points import Points, ShardGeometry, child_index, dataset_names, kept_points, span
from shared.granules.search import BandSearch, runs_of
from shared.results import FailureKind


class ReadStrategy(Protocol):
    """One way of reading a shard's kept points from one granule."""

    name: str

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        """The shard's kept points in the granule; raises :class:`GranuleReadError` naming the problem."""
        ...


def has_recorded_chunks(granule: GranuleRef, config: PipelineConfig) -> bool:
    """Whether the catalog recorded every dataset of every beam in the granule's segments."""
    if not granule.segments or not granule.chunks:
        return False
    names = dataset_names(config)
    return all(beam in granule.chunks and all(n in granule.chunks[beam] for n in names) for beam in granule.segments)


# =============================================================================================
# No HDF5 metadata: the chunks the catalog recorded
# =============================================================================================
class RecordedChunks:
    """The shard's points from the chunks the catalog recorded: one round of byte ranges, decoded
    here (inflate, unshuffle)."""

    name = "recorded_chunks"

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        names = dataset_names(config)
        beams = [b for b in config.beams if b in granule.segments]
        ranges = [r for b in beams for n in names for r in byte_ranges(granule.chunks[b][n], *granule.segments[b])]
        source = open_source(granule.location, context)
        try:
            store = fetch_ranges(source, ranges, RangeStore())
        finally:
            source.close()

        def stored_bytes(offset: int, size: int) -> memoryview:
            got = store.get(offset, size)
            if got is None or len(got) < size:
                raise ChunkDecodeError(f"the granule ends before byte {offset + size}, where a recorded chunk ends")
            return got

        parts = []
        for beam in beams:
            start, stop = granule.segments[beam]
            recorded = granule.chunks[beam]
            values = {}
            for name in names:
                try:
                    values[name] = values_in_range(recorded[name], start, stop, stored_bytes)
                except ChunkDecodeError as exc:
                    raise GranuleReadError(
                        FailureKind.CORRUPT,
                        f"{granule.id}: {config.dataset_path(beam, name)}: {exc}: the catalog's recorded "
                        "chunks do not match the granule (rebuild the catalog)",
                    ) from None
            fills = (recorded[config.latitude].fill, recorded[config.longitude].fill)
            cells = child_index(values[config.latitude], values[config.longitude], shard.nested, shard.grid, *fills)
            quality = values[config.quality.dataset] if config.quality else None
            parts.append(
                kept_points(
                    cells,
                    values[config.value],
                    values[config.sigma],
                    quality,
                    config,
                    recorded[config.value].fill,
                    recorded[config.sigma].fill,
                    values[config.time],
                    recorded[config.time].fill,
                )
            )
        return Points.concat(parts)


# =============================================================================================
# Through the HDF5 metadata
# =============================================================================================
def _coordinate_fills(f: H5File, cfg: PipelineConfig, beam: str) -> tuple[float | int | None, float | int | None]:
    return f.fill(cfg.dataset_path(beam, cfg.latitude)), f.fill(cfg.dataset_path(beam, cfg.longitude))


def _kept(f: H5File, cfg: PipelineConfig, beam: str, cells: np.ndarray, values: dict[str, np.ndarray]) -> Points:
    """The kept points of a beam slice whose value datasets are ``values`` (by name)."""
    quality = values[cfg.quality.dataset] if cfg.quality else None
    fills = (f.fill(cfg.dataset_path(beam, cfg.value)), f.fill(cfg.dataset_path(beam, cfg.sigma)))
    time = (values[cfg.time], f.fill(cfg.dataset_path(beam, cfg.time)))
    return kept_points(cells, values[cfg.value], values[cfg.sigma], quality, cfg, *fills, *time)


class CatalogSegments:
    """One round after the metadata: coordinates and values over the range the catalog recorded
    for each beam."""

    name = "catalog_segments"

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        cfg, segments = config, granule.segments
        beams = [b for b in cfg.beams if b in segments]
        names = dataset_names(cfg)
        with H5File(granule.id, granule.location, context) as f:
            f.walk([cfg.dataset_path(b, n) for b in beams for n in names])
            got = f.read([(cfg.dataset_path(b, n), *segments[b]) for b in beams for n in names])
            parts = []
            for beam in beams:
                values = {n: got[(cfg.dataset_path(beam, n), *segments[beam])] for n in names}
                cells = child_index(
                    values[cfg.latitude],
                    values[cfg.longitude],
                    shard.nested,
                    shard.grid,
                    *_coordinate_fills(f, cfg, beam),
                )
                parts.append(_kept(f, cfg, beam, cells, values))
        return Points.concat(parts)


class LatitudeSearch:
    """Latitude searched chunk by chunk, longitude where latitude is in the band, values where the
    shard's points are.

    The search rests on one assumption, true of a satellite's ground track: along a beam, latitude
    has at most one turning point, a minimum in the southern hemisphere or a maximum in the
    northern one (a beam that crosses the equator is monotonic). Chunks that contradict it (a
    second turning point) make the search read every chunk, as does a shard whose band straddles
    the equator; invalid latitudes are gaps, not evidence.
    """

    name = "latitude_search"

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        cfg = config
        names = dataset_names(cfg)[2:]  # the values
        with H5File(granule.id, granule.location, context) as f:
            # every dataset the read may need, walked to at once (their metadata shares cache lines)
            f.walk([cfg.dataset_path(b, n) for b in cfg.beams for n in (cfg.latitude, cfg.longitude, *names)])
            found = self._search(f, cfg, shard)
            lon_got = f.read(
                [
                    (cfg.dataset_path(b, cfg.longitude), start, start + lat.size)
                    for b, runs in found.items()
                    for start, lat in runs
                ]
            )
            located: list[tuple[str, int, np.ndarray]] = []
            for beam in cfg.beams:  # beam order, then along track: the order of a whole-array read
                path = cfg.dataset_path(beam, cfg.longitude)
                for start, lat in found.get(beam, []):
                    cells = child_index(
                        lat,
                        lon_got[(path, start, start + lat.size)],
                        shard.nested,
                        shard.grid,
                        *_coordinate_fills(f, cfg, beam),
                    )
                    rng = span(cells >= 0)
                    if rng is not None:
                        located.append((beam, start + rng[0], cells[rng[0] : rng[1]]))
            got = f.read(
                [(cfg.dataset_path(b, n), start, start + cells.size) for b, start, cells in located for n in names]
            )
            parts = [
                _kept(
                    f, cfg, beam, cells, {n: got[(cfg.dataset_path(beam, n), start, start + cells.size)] for n in names}
                )
                for beam, start, cells in located
            ]
        return Points.concat(parts)

    @staticmethod
    def _search(f: H5File, cfg: PipelineConfig, shard: ShardGeometry) -> dict[str, list[tuple[int, np.ndarray]]]:
        """Per beam present, runs ``(first index, latitude)`` that hold every latitude in the
        shard's band; each round reads the chunks every beam's search asks for next."""
        lo, hi = shard.lat_band
        searches: dict[str, BandSearch] = {}
        for beam in cfg.beams:
            path = cfg.dataset_path(beam, cfg.latitude)
            storage = f.storage(path)
            if storage is not None:  # a missing beam is normal
                searches[beam] = BandSearch(storage.length, storage.chunk, lo, hi, f.fill(path))
        while True:
            wanted = {beam: ks for beam, s in searches.items() if (ks := s.next_chunks())}
            if not wanted:
                break
            requests = []
            for beam, ks in wanted.items():
                s = searches[beam]
                for first, last in runs_of(ks):
                    requests.append(
                        (cfg.dataset_path(beam, cfg.latitude), s.bounds(first)[0], s.bounds(last)[1], beam, first, last)
                    )
            got = f.read([r[:3] for r in requests])
            for path, start, stop, beam, first, last in requests:
                s = searches[beam]
                for k in range(first, last + 1):
                    a, b = s.bounds(k)
                    s.add(k, got[(path, start, stop)][a - start : b - start])
        return {beam: s.runs() for beam, s in searches.items()}


# =============================================================================================
# The choice
# =============================================================================================
RECORDED_CHUNKS = RecordedChunks()
CATALOG_SEGMENTS = CatalogSegments()
LATITUDE_SEARCH = LatitudeSearch()
STRATEGIES: tuple[ReadStrategy, ...] = (RECORDED_CHUNKS, CATALOG_SEGMENTS, LATITUDE_SEARCH)


def choose_strategy(granule: GranuleRef, config: PipelineConfig) -> ReadStrategy:
    """The one place that decides how a granule is read: from what its catalog entry holds."""
    if has_recorded_chunks(granule, config):
        return RECORDED_CHUNKS
    if granule.segments is not None:
        return CATALOG_SEGMENTS
    return LATITUDE_SEARCH


def read_points(granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
    """The shard's kept points in one granule, by the chosen strategy. Raises :class:`GranuleReadError`."""
    return choose_strategy(granule, config).read(granule, shard, config, context)

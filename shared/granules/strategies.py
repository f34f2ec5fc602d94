"""How the points of one shard are read from one granule: four strategies behind one interface,
and the one function that chooses among them (:func:`choose_strategy`).

* ``granule_index`` (:class:`IndexedChunks`): the catalog references the granule's index
  (``GranuleRef.index``, :mod:`shared.granules.index`), built once per granule. The shard's
  ranges and chunks come from it; no HDF5 metadata is read, one round fetches the chunks. An
  index that is stale (the granule was replaced), missing or unreadable is never used: the read
  falls back to the latitude search and says so in the name it reports
  (``latitude_search (index stale)``; :meth:`ReadStrategy.read_named`).
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

import logging
import threading
from collections import OrderedDict
from typing import Protocol

import numpy as np

from shared.catalog import DatasetChunks, GranuleRef
from shared.config import PipelineConfig
from shared.granules.chunks import ChunkDecodeError, byte_ranges, values_in_range
from shared.granules.h5coro_adapter import H5File
from shared.granules.index import GranuleIndex, GranuleIndexError, read_index
from shared.granules.io import (
    GranuleReadError,
    RangeStore,
    ReadContext,
    fetch_ranges,
    fetch_ranges_versioned,
    open_source,
)
from shared.granules.points import Points, ShardGeometry, child_index, dataset_names, kept_points, span
from shared.granules.search import BandSearch, runs_of
from shared.results import FailureKind

log = logging.getLogger(__name__)


class ReadStrategy(Protocol):
    """One way of reading a shard's kept points from one granule."""

    name: str

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        """The shard's kept points in the granule; raises :class:`GranuleReadError` naming the problem."""
        ...

    def read_named(
        self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext
    ) -> tuple[str, Points]:
        """:meth:`read`, and the name of what read the points: the strategy's own, or what it fell
        back to (``latitude_search (index stale)``)."""
        ...


class NamedRead:
    """A strategy that never falls back: what read the points is itself."""

    name: str

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        raise NotImplementedError

    def read_named(
        self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext
    ) -> tuple[str, Points]:
        return self.name, self.read(granule, shard, config, context)


def has_recorded_chunks(granule: GranuleRef, config: PipelineConfig) -> bool:
    """Whether the catalog recorded every dataset of every beam in the granule's segments."""
    if not granule.segments or not granule.chunks:
        return False
    names = dataset_names(config)
    return all(beam in granule.chunks and all(n in granule.chunks[beam] for n in names) for beam in granule.segments)


# =============================================================================================
# No HDF5 metadata: chunks recorded beforehand (by the catalog, or in a granule index)
# =============================================================================================
TimeSpans = dict[str, tuple[float, float]]  # beam -> the span its points' times lie in, when not read


def _names_read(beam: str, config: PipelineConfig, timeless: TimeSpans) -> tuple[str, ...]:
    """The datasets read of a beam: all of a shard's, but its times where they are not needed."""
    return tuple(n for n in dataset_names(config) if not (n == config.time and beam in timeless))


def recorded_ranges(
    segments: dict[str, tuple[int, int]],
    chunks: dict[str, dict[str, DatasetChunks]],
    config: PipelineConfig,
    timeless: TimeSpans | None = None,
) -> list[tuple[int, int]]:
    """Byte ranges of every recorded chunk over each beam's segment range (but the times of the
    beams in ``timeless``)."""
    timeless = timeless or {}
    return [
        r
        for b in config.beams
        if b in segments
        for n in _names_read(b, config, timeless)
        for r in byte_ranges(chunks[b][n], *segments[b])
    ]


def recorded_points(
    granule_id: str,
    segments: dict[str, tuple[int, int]],
    chunks: dict[str, dict[str, DatasetChunks]],
    store: RangeStore,
    shard: ShardGeometry,
    config: PipelineConfig,
    recorded_by: str,
    timeless: TimeSpans | None = None,
) -> Points:
    """The shard's kept points, decoded (inflate, unshuffle) from the fetched bytes of the
    recorded chunks (:func:`recorded_ranges`). A chunk that does not decode as recorded is
    CORRUPT; ``recorded_by`` ("the catalog", "the granule index") says what to rebuild. The
    points of a beam in ``timeless`` carry the earliest time of its span (see :class:`Points`)."""
    timeless = timeless or {}

    def stored_bytes(offset: int, size: int) -> memoryview:
        got = store.get(offset, size)
        if got is None or len(got) < size:
            raise ChunkDecodeError(f"the granule ends before byte {offset + size}, where a recorded chunk ends")
        return got

    parts = []
    for beam in [b for b in config.beams if b in segments]:
        start, stop = segments[beam]
        recorded = chunks[beam]
        values = {}
        for name in _names_read(beam, config, timeless):
            try:
                values[name] = values_in_range(recorded[name], start, stop, stored_bytes)
            except ChunkDecodeError as exc:
                raise GranuleReadError(
                    FailureKind.CORRUPT,
                    f"{granule_id}: {config.dataset_path(beam, name)}: {exc}: the chunks {recorded_by} recorded "
                    f"do not match the granule (rebuild {recorded_by})",
                ) from None
        fills = (recorded[config.latitude].fill, recorded[config.longitude].fill)
        cells = child_index(values[config.latitude], values[config.longitude], shard.nested, shard.grid, *fills)
        quality = values[config.quality.dataset] if config.quality else None
        time_fill = recorded[config.time].fill
        if beam in timeless:  # every time of the beam is data, in one window: any of them places its points
            values[config.time], time_fill = np.full(stop - start, timeless[beam][0]), None
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
                time_fill,
            )
        )
    return Points.concat(parts)


class RecordedChunks(NamedRead):
    """The shard's points from the chunks the catalog recorded: one round of byte ranges, decoded
    here (inflate, unshuffle)."""

    name = "recorded_chunks"

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        source = open_source(granule.location, context)
        try:
            store = fetch_ranges(source, recorded_ranges(granule.segments, granule.chunks, config), RangeStore())
        finally:
            source.close()
        return recorded_points(granule.id, granule.segments, granule.chunks, store, shard, config, "the catalog")


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


class CatalogSegments(NamedRead):
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


class LatitudeSearch(NamedRead):
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
# A granule index: built once per granule, read by every shard
# =============================================================================================
class IndexCache:
    """Parsed granule indexes by location, the most recently used ``size`` of them: a worker
    process reads many shards, each needing the indexes of the same granules. Thread-safe."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._held: OrderedDict[str, GranuleIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, location: str, context: ReadContext) -> GranuleIndex | None:
        """The index at ``location`` (read through ``context`` the first time); None if absent.
        Raises as :func:`~shared.granules.index.read_index` does; absences are not remembered."""
        with self._lock:
            if location in self._held:
                self._held.move_to_end(location)
                return self._held[location]
        index = read_index(location, context)
        if index is not None:
            with self._lock:
                self._held[location] = index
                while len(self._held) > self.size:
                    self._held.popitem(last=False)
        return index

    def forget(self, location: str) -> None:
        """Drop a cached index (found stale: a rebuilt one is read next time)."""
        with self._lock:
            self._held.pop(location, None)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


INDEXES = IndexCache()


class IndexedChunks:
    """The shard's points through the granule's index (``GranuleRef.index``): no HDF5 metadata,
    no latitude search; one round fetches the chunks the index lists for the shard, decoded as
    :class:`RecordedChunks` decodes them.

    A beam whose time span (in the index) no window of the shard divides is placed in its window
    without reading its times (:meth:`~shared.granules.points.ShardGeometry.one_window`).

    The index is trusted only while the granule is the file it describes: its size and ETag (or
    a local file's mtime) come back with the chunk bytes (a ranged GET carries them; a local file
    is fstat'ed), so checking costs no request. A granule with nothing to fetch (no point in the
    shard, per the index) or with beams the index could not record as chunks (contiguous
    datasets: read through the metadata over the index's ranges) is checked with one HEAD.
    What cannot be trusted is never used: a stale, missing, unreadable or mismatched index makes
    the read fall back to the latitude search, reported by name (``latitude_search (index
    stale)``) and logged."""

    name = "granule_index"

    def read(self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
        return self.read_named(granule, shard, config, context)[1]

    def read_named(
        self, granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext
    ) -> tuple[str, Points]:
        index, problem = self._index(granule, shard, config, context)
        if index is None:
            return self._fall_back(granule, shard, config, context, problem)
        part = index.shard(shard.shard_key)
        timeless = {beam: span for beam, span in part.time_spans.items() if shard.one_window(span)}
        source = open_source(granule.location, context)
        try:
            if part.segments and part.fully_recorded:
                try:
                    ranges = recorded_ranges(part.segments, part.chunks, config, timeless)
                    store, version = fetch_ranges_versioned(source, ranges)
                except GranuleReadError as exc:  # a shorter granule ends before a chunk: replaced, or truncated?
                    if exc.kind != FailureKind.CORRUPT or index.identity.matches(source.version()):
                        raise
                    store, version = None, None
            else:
                store, version = None, source.version()
        finally:
            source.close()
        if version is None or not index.identity.matches(version):
            INDEXES.forget(granule.index)
            return self._fall_back(granule, shard, config, context, "stale")
        if store is not None:
            points = recorded_points(
                granule.id, part.segments, part.chunks, store, shard, config, "the granule index", timeless
            )
            return self.name, points
        if not part.segments:
            return self.name, Points.empty()  # the index holds every point of the granule: none is here
        by_segments = granule.model_copy(update={"segments": part.segments, "chunks": None})
        return f"{CATALOG_SEGMENTS.name} (index without chunks)", CATALOG_SEGMENTS.read(
            by_segments, shard, config, context
        )

    @staticmethod
    def _index(
        granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext
    ) -> tuple[GranuleIndex | None, str]:
        """The granule's index if it can serve this read, else None and why not."""
        try:
            index = INDEXES.get(granule.index, context.for_indexes())
        except (GranuleIndexError, GranuleReadError) as exc:
            log.warning("granule %s: index %s unreadable (%s)", granule.id, granule.index, exc)
            return None, "unreadable"
        if index is None:
            return None, "missing"
        if index.granule_id != granule.id or not index.serves(config, shard.grid):
            log.warning("granule %s: index %s is of another granule, grid or dataset set", granule.id, granule.index)
            return None, "unreadable"
        return index, ""

    @staticmethod
    def _fall_back(
        granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext, problem: str
    ) -> tuple[str, Points]:
        if problem != "unreadable":  # an unreadable one was logged with its error
            log.warning("granule %s: index %s %s: searching latitude instead", granule.id, granule.index, problem)
        plain = granule.model_copy(update={"segments": None, "chunks": None, "index": None})
        return f"{LATITUDE_SEARCH.name} (index {problem})", LATITUDE_SEARCH.read(plain, shard, config, context)


# =============================================================================================
# The choice
# =============================================================================================
GRANULE_INDEX = IndexedChunks()
RECORDED_CHUNKS = RecordedChunks()
CATALOG_SEGMENTS = CatalogSegments()
LATITUDE_SEARCH = LatitudeSearch()
STRATEGIES: tuple[ReadStrategy, ...] = (GRANULE_INDEX, RECORDED_CHUNKS, CATALOG_SEGMENTS, LATITUDE_SEARCH)


def choose_strategy(granule: GranuleRef, config: PipelineConfig) -> ReadStrategy:
    """The one place that decides how a granule is read: from what its catalog entry holds."""
    if granule.index:
        return GRANULE_INDEX
    if has_recorded_chunks(granule, config):
        return RECORDED_CHUNKS
    if granule.segments is not None:
        return CATALOG_SEGMENTS
    return LATITUDE_SEARCH


def read_points(granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
    """The shard's kept points in one granule, by the chosen strategy. Raises :class:`GranuleReadError`."""
    return choose_strategy(granule, config).read(granule, shard, config, context)


def read_named(
    granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext
) -> tuple[str, Points]:
    """:func:`read_points`, and the name of what read them (what the worker counts per strategy)."""
    return choose_strategy(granule, config).read_named(granule, shard, config, context)

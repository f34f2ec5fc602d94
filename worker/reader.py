"""Read the points of one shard from one granule, fetching little more than the chunks that hold them.

h5coro walks the metadata; the reader decides what is fetched, in rounds per granule, and
decodes the chunks itself (:mod:`worker.chunks`):

1. **Metadata.** h5coro walks to every dataset the read may need (``metaOnly``) through a cache
   of short lines (:data:`CACHE_LINE_SIZE`): metadata sits in small clusters spread through a
   granule, and h5coro's 4 MiB default line would fetch megabytes of data around each. The reader
   then walks each dataset's chunk B-tree itself, so it knows every chunk's element range, file
   offset and compressed size.
2. **Chunks.** For each round the reader lists the chunks the round needs, fetches exactly their
   byte ranges (ranges closer than :data:`MERGE_GAP` in one request, requests in parallel) and
   only then decodes the slices from those bytes (h5coro does, for a dataset with another
   encoding): chunk data never goes through the cache lines, so no line pulls in a neighbour's data.

What the rounds are depends on the catalog:

* With ``GranuleRef.chunks`` (the offline catalog recorded, per beam and dataset, where the
  chunks over the shard's index range are stored and how they are encoded): no metadata is read;
  one round fetches those chunks (:func:`read_recorded_points`).
* With ``GranuleRef.segments`` only (the index range per beam that holds the shard's points): the
  metadata, then one round, latitude, longitude and the value datasets over that range.
* Without: latitude is searched chunk by chunk (:class:`BandSearch`): both end chunks first, then
  the chunks the latitude trend points at, until every other chunk is proven unable to hold a
  latitude inside the shard's band. The proof rests on one assumption, true of a satellite's
  ground track: along a beam, latitude has at most one turning point, a minimum in the southern
  hemisphere or a maximum in the northern one (a beam that crosses the equator is monotonic).
  Chunks that contradict it (a second turning point) make the search read every chunk, as does a
  shard whose band straddles the equator; invalid latitudes are gaps, not evidence. Then
  longitude over the runs of chunks whose latitude is in the band, then the value datasets over
  the range that holds the shard's points. Points without valid coordinates are dropped.

Points come out in the order of a whole-array read (beam by beam, along track), so the statistics
are identical to the original strategy's, bit for bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from h5coro.h5dataset import H5Dataset
from h5coro.h5metadata import H5Metadata

from shared.catalog import DatasetChunks, GranuleRef
from shared.config import PipelineConfig
from shared.grid import GridSignature, shard_latitude_band, shard_nested_id
from shared.results import FailureKind
from worker.band_search import BandSearch, runs_of
from worker.granule_io import GranuleReadError, ReadContext, driver_for
from worker.chunks import ChunkDecodeError, byte_ranges, values_in_range
from worker.h5plan import (
    CACHE_LINE_SIZE, ChunkTable, ContiguousTable, PlannedH5Coro, RangeStore, fetch_ranges, storage_table,
)
from worker.points import child_index, keep_mask, span, valid_coordinates


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


def dataset_names(config: PipelineConfig) -> tuple[str, ...]:
    """Every dataset of a beam a shard reads: coordinates, then values."""
    return (config.latitude, config.longitude, config.value, config.sigma) + ((config.quality.dataset,) if config.quality else ())


def _fill_value(meta: H5Metadata, dtype: np.dtype) -> float | int | None:
    """A dataset's HDF5 fill value, decoded to its own dtype (h5coro keeps the raw bits)."""
    if not meta.fillsize or meta.fillvalue is None:
        return None
    raw = struct.pack("<Q", meta.fillvalue)[: meta.fillsize]
    return np.frombuffer(raw, dtype=dtype)[0].item()


def _describe_chunks(
    meta: H5Metadata | None, table: ChunkTable | ContiguousTable | None, start: int, stop: int
) -> DatasetChunks | None:
    """The recorded form of a dataset's chunks holding ``[start, stop)``; None for what a worker
    could not decode from it alone (not a chunked 1-D numeric dataset, a filter other than
    shuffle and deflate). A contiguous dataset has no chunks to record: workers read it through
    the metadata, one exact byte range a slice."""
    numeric = (H5Metadata.FIXED_POINT_TYPE, H5Metadata.FLOATING_POINT_TYPE)
    if meta is None or not isinstance(table, ChunkTable) or meta.type not in numeric:
        return None
    filters = {f for f, on in meta.filter.items() if on}
    if not filters <= {H5Metadata.DEFLATE_FILTER, H5Metadata.SHUFFLE_FILTER} or filters == {H5Metadata.SHUFFLE_FILTER}:
        return None
    dtype = meta.getNumpyType()
    if dtype is None:
        return None
    pick = table.holding(start, stop)
    return DatasetChunks(
        dtype=dtype.newbyteorder("<").str, chunk=table.chunk,
        shuffle=H5Metadata.SHUFFLE_FILTER in filters, deflate=H5Metadata.DEFLATE_FILTER in filters,
        fill=_fill_value(meta, dtype),
        stored=list(zip(table.first[pick].tolist(), table.address[pick].tolist(), table.size[pick].tolist())),
    )


@dataclass
class Decoded:
    """A slice decoded here from its fetched chunks: what the reader uses of an h5coro H5Dataset."""

    values: np.ndarray
    meta: H5Metadata


# =============================================================================================
# One granule
# =============================================================================================
class GranuleReader:
    """Reads one granule for one shard through h5coro."""

    def __init__(self, granule: GranuleRef, config: PipelineConfig, context: ReadContext, cache_line_size: int = CACHE_LINE_SIZE):
        self.granule = granule
        self.config = config
        location = granule.location
        try:
            self.h5 = PlannedH5Coro(location, driver_for(location), credentials=context, errorChecking=True, verbose=False, cacheLineSize=cache_line_size)
        except GranuleReadError:
            raise
        except Exception as exc:  # h5coro raises RuntimeError subclasses for anything it cannot parse
            raise GranuleReadError(FailureKind.CORRUPT, f"{granule.id}: not a readable HDF5 file ({exc})") from None
        self.tables: dict[str, ChunkTable | ContiguousTable | None] = {}

    def close(self) -> None:
        self.h5.close()

    # -- h5coro ----------------------------------------------------------------------------------
    def _metadata(self, paths: list[str]) -> None:
        """Walk to these datasets (in parallel) and index their storage; absent ones get None.

        First the last dataset by name of each group: walking to it, h5coro records the address of
        every sibling before it in the group's (sorted) table, so the others skip the group tables.
        """
        todo = [p for p in paths if p not in self.tables]
        if not todo:
            return
        last: dict[str, str] = {}
        for path in todo:
            group = path.rsplit("/", 1)[0]
            last[group] = max(last.get(group, path), path)
        first = sorted(set(last.values()))
        self.h5.readDatasets(list(first), block=True, metaOnly=True)
        rest = [p for p in todo if p not in set(first)]
        if rest:
            self.h5.readDatasets(rest, block=True, metaOnly=True)
        for path in todo:
            meta = self.h5.metadataTable.get(path.lstrip("/"))
            self.tables[path] = storage_table(self.h5, meta) if meta is not None and meta.typeSize else None

    def _fill(self, path: str) -> float | int | None:
        """The HDF5 fill value of a dataset the metadata walk reached (None: it declares none)."""
        meta = self.h5.metadataTable.get(path.lstrip("/"))
        return None if meta is None else _fill_value(meta, np.dtype(meta.getNumpyType()))

    def _coordinate_fills(self, beam: str) -> tuple[float | int | None, float | int | None]:
        cfg = self.config
        return self._fill(cfg.dataset_path(beam, cfg.latitude)), self._fill(cfg.dataset_path(beam, cfg.longitude))

    def _exists(self, path: str) -> bool:
        meta = self.h5.metadataTable.get(path.lstrip("/"))
        return meta is not None and bool(meta.typeSize)

    def _read(self, requests: list[tuple[str, int | None, int | None]]) -> dict[tuple[str, int | None, int | None], Decoded | H5Dataset | None]:
        """Read ``(path, start, stop)`` slices (None, None: the whole dataset): fetch the chunks they
        need in one go, then decode each slice from those bytes."""
        ranges: list[tuple[int, int]] = []
        planned, unplanned = [], []
        for path, start, stop in requests:
            table = self.tables.get(path)
            if table is None:
                unplanned.append((path, start, stop))
                continue
            planned.append((path, start, stop))
            ranges += table.ranges(*((0, table.length) if start is None else (start, stop)))
        self.h5.fetch(ranges)
        out: dict = {req: self._decode(*req) for req in planned}  # no I/O left: decode in turn
        while unplanned:  # h5coro reads these (in parallel); it keys a read by path: one slice each
            layer, seen, rest = [], set(), []
            for req in unplanned:
                (rest if req[0] in seen else layer).append(req)
                seen.add(req[0])
            table = [path if start is None else {"dataset": path, "hyperslice": [[start, stop]]} for path, start, stop in layer]
            found = self.h5.readDatasets(table, block=True).datasets
            for path, start, stop in layer:
                out[(path, start, stop)] = found[path.lstrip("/")]
            unplanned = rest
        return out

    def _decode(self, path: str, start: int | None, stop: int | None) -> Decoded | H5Dataset | None:
        """One slice whose bytes are fetched: of a contiguous dataset, its elements as they are;
        of a chunked one, decoded as recorded chunks are (:mod:`worker.chunks`), or when it cannot
        be decoded so through h5coro, without its element-by-element prefill with the fill value
        when no chunk is missing (chunk data overwrites every element). h5coro is never given a
        slice of a contiguous dataset: it reads one from the dataset's start."""
        table = self.tables[path]
        s, e = (0, table.length) if start is None else (start, stop)
        meta = self.h5.metadataTable.get(path.lstrip("/"))
        if isinstance(table, ContiguousTable):
            return Decoded(table.values(s, e, self._chunk_bytes), meta)
        chunks = _describe_chunks(meta, table, s, e)
        if chunks is not None:
            try:
                return Decoded(values_in_range(chunks, s, e, self._chunk_bytes), meta)
            except ChunkDecodeError as exc:
                raise GranuleReadError(FailureKind.CORRUPT, f"{self.granule.id}: {path}: a chunk {exc}") from None
        try:
            return H5Dataset(self.h5, path.lstrip("/"), [] if start is None else [[start, stop]], enableFill=not table.complete(s, e),
                             earlyExit=True, metaOnly=False, enableAttributes=False)
        except RuntimeError:  # what h5coro's own readDatasets turns into an empty result
            return None

    def _chunk_bytes(self, offset: int, size: int) -> memoryview:
        """Fetched bytes at an absolute offset (from the planned ranges, or h5coro's cache lines)."""
        return self.h5.ioRequest(offset - self.h5.baseAddress, size)

    def _require(self, dataset: Decoded | H5Dataset | None, path: str) -> Decoded | H5Dataset:
        if dataset is None or dataset.values is None:
            raise GranuleReadError(FailureKind.CORRUPT, f"{self.granule.id}: cannot read {path}")
        return dataset

    # -- the shard's points ----------------------------------------------------------------------
    def _search_latitude(self, shard: ShardGeometry) -> dict[str, list[tuple[int, np.ndarray]]]:
        """Per beam, runs ``(first index, latitude)`` that hold every latitude in the shard's band."""
        cfg = self.config
        lo, hi = shard.lat_band
        searches: dict[str, BandSearch] = {}
        whole: list[str] = []
        for beam in cfg.beams:
            path = cfg.dataset_path(beam, cfg.latitude)
            if not self._exists(path):
                continue  # a missing beam is normal
            table = self.tables[path]
            if table is None:
                whole.append(beam)
            else:
                searches[beam] = BandSearch(table.length, table.chunk, lo, hi, self._fill(path))
        found: dict[str, list[tuple[int, np.ndarray]]] = {}
        if whole:  # no storage table: let h5coro read it all
            got = self._read([(cfg.dataset_path(b, cfg.latitude), None, None) for b in whole])
            for beam in whole:
                path = cfg.dataset_path(beam, cfg.latitude)
                lat = self._require(got[(path, None, None)], path).values
                rng = span((lat >= lo) & (lat <= hi))
                found[beam] = [] if rng is None else [(rng[0], lat[rng[0] : rng[1]])]
        while True:
            wanted = {beam: s.next_chunks() for beam, s in searches.items()}
            wanted = {b: ks for b, ks in wanted.items() if ks}
            if not wanted:
                break
            requests = []
            for beam, ks in wanted.items():
                for first, last in runs_of(ks):
                    s = searches[beam]
                    requests.append((cfg.dataset_path(beam, cfg.latitude), s.bounds(first)[0], s.bounds(last)[1], beam, first, last))
            got = self._read([r[:3] for r in requests])
            for path, start, stop, beam, first, last in requests:
                lat = self._require(got[(path, start, stop)], path).values
                s = searches[beam]
                for k in range(first, last + 1):
                    a, b = s.bounds(k)
                    s.add(k, lat[a - start : b - start])
        for beam, s in searches.items():
            found[beam] = s.runs()
        return found

    def whole_coordinates(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every present beam's whole latitude and longitude (the offline catalog reads them once),
        and where they are valid coordinates (:func:`valid_coordinates`)."""
        cfg = self.config
        paths = {b: (cfg.dataset_path(b, cfg.latitude), cfg.dataset_path(b, cfg.longitude)) for b in cfg.beams}
        self._metadata([p for pair in paths.values() for p in pair])
        present = [b for b in cfg.beams if self._exists(paths[b][0])]
        got = self._read([(p, None, None) for b in present for p in paths[b]])
        out = {}
        for beam in present:
            lat, lon = (self._require(got[(p, None, None)], p).values for p in paths[beam])
            out[beam] = (lat, lon, valid_coordinates(lat, lon, *self._coordinate_fills(beam)))
        return out

    def recorded_chunks(self, segments: dict[str, tuple[int, int]]) -> dict[str, dict[str, DatasetChunks]]:
        """What the catalog records for a granule and shard: per beam, where every dataset's chunks
        holding the beam's segment range are stored and how they are encoded. A beam with a
        dataset that cannot be described so is left out (workers then read it through h5coro)."""
        cfg = self.config
        names = dataset_names(cfg)
        self._metadata([cfg.dataset_path(b, n) for b in segments for n in names])
        out = {}
        for beam, (start, stop) in segments.items():
            paths = {n: cfg.dataset_path(beam, n) for n in names}
            described = {n: _describe_chunks(self.h5.metadataTable.get(p.lstrip("/")), self.tables.get(p), start, stop) for n, p in paths.items()}
            if all(d is not None for d in described.values()):
                out[beam] = described
        return out

    def points(self, shard: ShardGeometry) -> Points:
        if self.granule.segments is not None:
            return self._points_in_segments(shard, self.granule.segments)
        return self._points_by_search(shard)

    def _points_in_segments(self, shard: ShardGeometry, segments: dict[str, tuple[int, int]]) -> Points:
        """One round: coordinates and values over the range the catalog recorded for each beam."""
        cfg = self.config
        beams = [b for b in cfg.beams if b in segments]
        names = dataset_names(cfg)
        self._metadata([cfg.dataset_path(b, n) for b in beams for n in names])
        got = self._read([(cfg.dataset_path(b, n), *segments[b]) for b in beams for n in names])
        parts = []
        for beam in beams:
            found = {n: self._require(got[(cfg.dataset_path(beam, n), *segments[beam])], cfg.dataset_path(beam, n)) for n in names}
            lat, lon = found[cfg.latitude].values, found[cfg.longitude].values
            cells = child_index(lat, lon, shard.nested, shard.grid, *self._coordinate_fills(beam))
            parts.append(self._keep(cells, found))
        return Points.concat(parts)

    def _points_by_search(self, shard: ShardGeometry) -> Points:
        """Latitude searched chunk by chunk, longitude where latitude is in the band, values where
        the shard's points are."""
        cfg = self.config
        names = dataset_names(cfg)[2:]  # the values
        # every dataset the read may need, walked to at once (their metadata shares cache lines)
        self._metadata([cfg.dataset_path(b, n) for b in cfg.beams for n in (cfg.latitude, cfg.longitude, *names)])
        found = self._search_latitude(shard)
        lon_got = self._read([(cfg.dataset_path(b, cfg.longitude), start, start + lat.size) for b, runs in found.items() for start, lat in runs])
        located: list[tuple[str, int, np.ndarray]] = []
        for beam in cfg.beams:  # beam order, then along track: the order of a whole-array read
            path = cfg.dataset_path(beam, cfg.longitude)
            for start, lat in found.get(beam, []):
                lon = self._require(lon_got[(path, start, start + lat.size)], path).values
                cells = child_index(lat, lon, shard.nested, shard.grid, *self._coordinate_fills(beam))
                rng = span(cells >= 0)
                if rng is not None:
                    located.append((beam, start + rng[0], cells[rng[0] : rng[1]]))
        got = self._read([(cfg.dataset_path(b, n), start, start + cells.size) for b, start, cells in located for n in names])
        parts = []
        for beam, start, cells in located:
            values = {n: self._require(got[(cfg.dataset_path(beam, n), start, start + cells.size)], cfg.dataset_path(beam, n)) for n in names}
            parts.append(self._keep(cells, values))
        return Points.concat(parts)

    def _keep(self, cells: np.ndarray, values: dict[str, Decoded | H5Dataset]) -> Points:
        cfg = self.config
        h, sigma = values[cfg.value], values[cfg.sigma]
        quality = values[cfg.quality.dataset].values if cfg.quality else None
        return kept_points(cells, h.values, sigma.values, quality, cfg, _fill_value(h.meta, h.values.dtype), _fill_value(sigma.meta, sigma.values.dtype))


def kept_points(cells, h, sigma, quality, cfg: PipelineConfig, h_fill, sigma_fill) -> Points:
    """The points of a beam slice that are in the shard (``cells >= 0``) and pass the filters."""
    keep = (cells >= 0) & keep_mask(h, sigma, quality, cfg.quality.keep if cfg.quality else (), h_fill, sigma_fill)
    return Points(cells[keep], h[keep].astype(np.float64), sigma[keep].astype(np.float64))


# =============================================================================================
# One granule whose chunks the catalog recorded: no HDF5 metadata is read
# =============================================================================================
def has_recorded_chunks(granule: GranuleRef, config: PipelineConfig) -> bool:
    """Whether the catalog recorded every dataset of every beam in the granule's segments."""
    if not granule.segments or not granule.chunks:
        return False
    names = dataset_names(config)
    return all(beam in granule.chunks and all(n in granule.chunks[beam] for n in names) for beam in granule.segments)


def read_recorded_points(granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
    """The shard's points from the chunks the catalog recorded: one round of byte ranges, decoded
    here (inflate, unshuffle), in the order of a whole-array read."""
    names = dataset_names(config)
    beams = [b for b in config.beams if b in granule.segments]
    ranges = [r for b in beams for n in names for r in byte_ranges(granule.chunks[b][n], *granule.segments[b])]
    driver = driver_for(granule.location)(granule.location, context)
    try:
        store = fetch_ranges(driver, ranges, RangeStore())
    finally:
        driver.close()

    def stored_bytes(offset: int, size: int) -> memoryview:
        got = store.get(offset, size)
        if got is None or len(got) < size:
            raise ChunkDecodeError(f"the granule ends before byte {offset + size}")
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
                    f"{granule.id}: {config.dataset_path(beam, name)}: a recorded chunk {exc}; the catalog does not match the granule (rebuild it)",
                ) from None
        fills = (recorded[config.latitude].fill, recorded[config.longitude].fill)
        cells = child_index(values[config.latitude], values[config.longitude], shard.nested, shard.grid, *fills)
        quality = values[config.quality.dataset] if config.quality else None
        parts.append(kept_points(cells, values[config.value], values[config.sigma], quality, config, recorded[config.value].fill, recorded[config.sigma].fill))
    return Points.concat(parts)


def read_points(granule: GranuleRef, shard: ShardGeometry, config: PipelineConfig, context: ReadContext) -> Points:
    """The shard's kept points in one granule. Raises :class:`GranuleReadError` naming the problem."""
    if has_recorded_chunks(granule, config):
        return read_recorded_points(granule, shard, config, context)
    reader = GranuleReader(granule, config, context)
    try:
        return reader.points(shard)
    finally:
        reader.close()

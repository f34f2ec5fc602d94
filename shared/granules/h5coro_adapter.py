"""Every use of h5coro, and of its private attributes, in this one module.

h5coro parses a granule's HDF5 metadata (object headers, group tables, chunk B-trees) through a
cache of fixed-size lines; this module uses it for that and for little else:

* :class:`H5File` opens a granule through h5coro (:class:`_Driver` gives h5coro the granule's
  :class:`~shared.granules.io.ByteSource`) and walks to the datasets a read needs
  (:meth:`H5File.walk`, ``metaOnly``), in lines of :data:`CACHE_LINE_SIZE`: metadata sits in
  small clusters spread through a granule, and h5coro's 4 MiB default line would fetch
  megabytes of data around each.
* Each dataset walked to gets its storage, decided once (:meth:`H5File._storage_of`): a
  contiguous run of bytes or a chunk index (the B-tree walked here) with an encoding that
  :mod:`shared.granules.chunks` decodes; only a dataset it cannot decode is left to h5coro.
* :meth:`H5File.read` reads slices: it fetches exactly the byte ranges they need in one go
  (:func:`~shared.granules.io.fetch_ranges`) and then decodes them from those bytes. Chunk data
  never goes through the cache lines, so no line pulls in a neighbour's data.

What this module reads of h5coro's internals (checked with the h5coro version pinned in
pyproject.toml, :data:`TESTED_WITH`): ``H5Coro.__init__``'s driver protocol (``driverClass(resource,
credentials)``, ``read``, ``copy``, ``close``), ``ioRequest`` (overridden), ``cache``,
``cacheLineSize``, ``cacheLineMask``, ``baseAddress``, ``offsetSize``, ``metadataTable`` and the
``H5Metadata`` fields (``type``, ``typeSize``, ``signedval``, ``layout``, ``ndims``,
``dimensions``, ``chunkDimensions``, ``address``, ``filter``, ``fillsize``, ``fillvalue``),
and ``H5Dataset``'s constructor.
"""

from __future__ import annotations

import logging
import struct

import numpy as np
from h5coro import h5coro
from h5coro.h5dataset import H5Dataset
from h5coro.h5metadata import H5Metadata

from shared.catalog import DatasetChunks
from shared.granules.chunks import ChunkDecodeError, ChunkedDataset, ChunkTable, ContiguousTable, StoredBytes
from shared.granules.io import (
    ByteSource,
    GranuleReadError,
    RangeStore,
    ReadContext,
    fetch_ranges,
    open_source,
    read_exact,
    truncated,
)
from shared.results import FailureKind

TESTED_WITH = "1.0.7"

# h5coro warns for every absent dataset; a missing beam is normal, and real errors reach us typed.
logging.getLogger("h5coro.logger").setLevel(logging.ERROR)

# Metadata (object headers, group tables, chunk B-trees) is fetched through h5coro's cache in
# lines this long. Measured on full-length granules: 64 KiB lines fetch ~0.8 MB of metadata in ~12
# requests a granule; 16 KiB lines 0.3 MB in 19; 256 KiB lines 3.1 MB in 12.
CACHE_LINE_SIZE = 64 * 1024
H5CORO_DEFAULT_CACHE_LINE = h5coro.CACHE_LINE_SIZE_DEFAULT  # 4 MiB

_COMPACT_LAYOUT, _CONTIGUOUS_LAYOUT, _CHUNKED_LAYOUT = 0, 1, 2
_BTREE_SIGNATURE = b"TREE"
_NUMERIC = (H5Metadata.FIXED_POINT_TYPE, H5Metadata.FLOATING_POINT_TYPE)


# =============================================================================================
# h5coro reading through a ByteSource
# =============================================================================================
class _Driver:
    """h5coro's driver protocol over a :class:`ByteSource` (h5coro passes it as ``credentials``)."""

    def __init__(self, resource: str, credentials: ByteSource, owns: bool = True):
        self.resource = resource
        self.source = credentials
        self.owns = owns

    def read(self, pos: int, size: int) -> bytes:
        return self.source.read(pos, size)

    def copy(self, max_connections: int | None = None) -> _Driver:
        return _Driver(self.resource, self.source, owns=False)

    def close(self) -> None:
        if self.owns:
            self.source.close()


def open_h5coro(location: str, context: ReadContext, cache_line_size: int = H5CORO_DEFAULT_CACHE_LINE) -> h5coro.H5Coro:
    """A plain h5coro handle on a granule, reading through the counted sources (for comparisons
    with h5coro's own strategy, e.g. the benchmark's baseline)."""
    source = open_source(location, context)
    try:
        return h5coro.H5Coro(
            location, _Driver, credentials=source, errorChecking=True, verbose=False, cacheLineSize=cache_line_size
        )
    except BaseException:
        source.close()
        raise


class PlannedH5Coro(h5coro.H5Coro):
    """H5Coro whose reads are served from the planned byte ranges when they hold them.

    Anything else (metadata) goes through h5coro's cache lines, except large reads, which are
    fetched exactly rather than through the cache. Every read returns all the bytes asked for,
    or raises CORRUPT: a cache line may stop at the end of the file, a read may not.
    """

    DIRECT_READ_MIN = 16 * 1024
    FIELD_MAX = 8

    def __init__(self, *args, **kwargs):
        self.store = RangeStore()
        super().__init__(*args, **kwargs)

    def ioRequest(self, pos, size, caching=True, prefetch=False):  # noqa: N802 - h5coro's name
        if size > self.FIELD_MAX:  # metadata fields are the bulk of all calls, and never a chunk
            start = pos + self.baseAddress
            hit = self.store.get(start, size)
            if hit is not None:
                return hit
            if caching and size >= self.DIRECT_READ_MIN and not self._cached(start, start + size):
                return memoryview(read_exact(self.driver.source, start, size))
        data = super().ioRequest(pos, size, caching, prefetch)
        if data is not None and len(data) < size:  # a cache line cut short by the end of the file
            raise truncated(self.resource, pos + self.baseAddress, size, len(data))
        # h5coro 1.0.7 returns bytes for a read across two cache lines, where its callers expect
        # a memoryview (readArray(...).tobytes() fails on bytes)
        return data if type(data) is memoryview else memoryview(data)

    def _cached(self, start: int, stop: int) -> bool:
        """Whether h5coro's cache lines already hold these bytes (small chunks sit amid metadata)."""
        line = start & self.cacheLineMask
        while line < stop:
            if line not in self.cache:
                return False
            line += self.cacheLineSize
        return True

    def fetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch these absolute byte ranges (merged, in parallel) into the store."""
        fetch_ranges(self.driver.source, [r for r in ranges if not self._cached(*r)], self.store)


# =============================================================================================
# A dataset's storage, from its metadata
# =============================================================================================
def fill_value(meta: H5Metadata, dtype: np.dtype) -> float | int | None:
    """A dataset's HDF5 fill value, decoded to its own dtype (h5coro keeps the raw bits)."""
    if not meta.fillsize or meta.fillvalue is None:
        return None
    raw = struct.pack("<Q", meta.fillvalue)[: meta.fillsize]
    return np.frombuffer(raw, dtype=dtype)[0].item()


def _contiguous_table(h5: h5coro.H5Coro, meta: H5Metadata) -> ContiguousTable | None:
    """The byte run of a contiguous (or compact) 1-D numeric dataset; None for anything else."""
    if meta.layout not in (_CONTIGUOUS_LAYOUT, _COMPACT_LAYOUT) or meta.ndims != 1:
        return None
    try:  # not meta.getNumpyType(): it answers float32 for a type it does not know
        dtype = np.dtype(H5Metadata.TO_NUMPY_TYPE[meta.type][meta.signedval][meta.typeSize]).newbyteorder("<")
    except (KeyError, TypeError):
        return None
    if meta.address >= 2 ** (8 * h5.offsetSize) - 1:
        return None  # storage never allocated: h5coro refuses to read it
    return ContiguousTable(int(meta.dimensions[0]), meta.address + h5.baseAddress, dtype)


def _btree_chunks(h5: h5coro.H5Coro, address: int, ndims: int, out: list[tuple[int, int, int]], depth: int = 0) -> None:
    """Walk a version 1 chunk B-tree: append ``(first element, relative address, size)`` of each chunk."""
    if depth > 16:
        raise ValueError("chunk B-tree too deep")
    offset_size = h5.offsetSize
    head = bytes(h5.ioRequest(address, 8 + 2 * offset_size))
    if head[:4] != _BTREE_SIGNATURE or head[4] != 1:
        raise ValueError("not a chunk B-tree node")
    level, entries = head[5], struct.unpack_from("<H", head, 6)[0]
    key_size = 8 + 8 * (ndims + 1)
    body = bytes(h5.ioRequest(address + 8 + 2 * offset_size, entries * (key_size + offset_size) + key_size))
    address_format = {4: "<I", 8: "<Q"}[offset_size]
    for e in range(entries):
        key = e * (key_size + offset_size)
        size = struct.unpack_from("<I", body, key)[0]
        first = struct.unpack_from("<Q", body, key + 8)[0]
        child = struct.unpack_from(address_format, body, key + key_size)[0]
        if level > 0:
            _btree_chunks(h5, child, ndims, out, depth + 1)
        else:
            out.append((first, child, size))


def _chunk_table(h5: h5coro.H5Coro, meta: H5Metadata) -> ChunkTable | None:
    """The chunk index of a 1-D chunked dataset, or None when it cannot be walked here."""
    if meta.layout != _CHUNKED_LAYOUT or meta.ndims != 1 or len(meta.chunkDimensions) != 1:
        return None
    found: list[tuple[int, int, int]] = []
    try:
        _btree_chunks(h5, meta.address, 1, found)
    except (ValueError, struct.error, KeyError):
        return None
    found.sort()
    arr = np.array(found, dtype=np.int64).reshape(-1, 3)
    return ChunkTable(
        int(meta.dimensions[0]), int(meta.chunkDimensions[0]), arr[:, 0], arr[:, 1] + h5.baseAddress, arr[:, 2]
    )


def _encoding(meta: H5Metadata) -> tuple[str, bool, bool] | None:
    """``(dtype, shuffle, deflate)`` of a chunked numeric dataset that :mod:`shared.granules.chunks`
    decodes; None for another type or filter (anything but deflate, or deflate with shuffle)."""
    if meta.type not in _NUMERIC:
        return None
    filters = {f for f, on in meta.filter.items() if on}
    if not filters <= {H5Metadata.DEFLATE_FILTER, H5Metadata.SHUFFLE_FILTER} or filters == {H5Metadata.SHUFFLE_FILTER}:
        return None
    dtype = meta.getNumpyType()
    if dtype is None:
        return None
    return dtype.newbyteorder("<").str, H5Metadata.SHUFFLE_FILTER in filters, H5Metadata.DEFLATE_FILTER in filters


class _H5CoroDecodes:
    """A chunked dataset in an encoding only h5coro decodes: its chunks are fetched exactly like
    the others' (their ranges are known), then h5coro decodes them from the fetched bytes."""

    def __init__(self, h5: PlannedH5Coro, path: str, table: ChunkTable):
        self.h5, self.path, self.table = h5, path.lstrip("/"), table
        self.length, self.chunk = table.length, table.chunk

    def record(self, start: int, stop: int) -> None:
        return None  # workers could not decode it without h5coro

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return self.table.ranges(start, stop)

    def complete(self, start: int, stop: int) -> bool:
        return self.table.complete(start, stop)

    def values(self, start: int, stop: int, stored_bytes: StoredBytes) -> np.ndarray | None:
        """Elements ``[start, stop)`` through h5coro, from the fetched bytes (its ``ioRequest``
        serves them), without its element-by-element prefill with the fill value when no chunk is
        missing (chunk data overwrites every element). None: h5coro cannot read it."""
        try:
            return H5Dataset(
                self.h5,
                self.path,
                [[start, stop]],
                enableFill=not self.complete(start, stop),
                earlyExit=True,
                metaOnly=False,
                enableAttributes=False,
            ).values
        except RuntimeError:  # what h5coro's own readDatasets turns into an empty result
            return None


class _H5CoroReads(_H5CoroDecodes):
    """A dataset without a storage index this module can walk (not one-dimensional, another
    B-tree): h5coro reads it through its cache lines, as one step of the latitude search."""

    def __init__(self, h5: PlannedH5Coro, path: str, meta: H5Metadata):
        self.h5, self.path = h5, path.lstrip("/")
        self.length = int(meta.dimensions[0]) if meta.dimensions else 0
        self.chunk = max(self.length, 1)

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return []  # nothing planned: h5coro fetches what it needs

    def complete(self, start: int, stop: int) -> bool:
        return False


# =============================================================================================
# One granule
# =============================================================================================
class H5File:
    """A granule opened through h5coro: the storage of the datasets walked to, and slices of them
    read by planned byte ranges. ``name`` (the granule id) starts every error's reason."""

    def __init__(self, name: str, location: str, context: ReadContext, cache_line_size: int = CACHE_LINE_SIZE):
        self.name = name
        source = open_source(location, context)
        try:
            self.h5 = PlannedH5Coro(
                location, _Driver, credentials=source, errorChecking=True, verbose=False, cacheLineSize=cache_line_size
            )
        except GranuleReadError:
            source.close()
            raise
        except Exception as exc:  # h5coro raises RuntimeError subclasses for anything it cannot parse
            source.close()
            raise GranuleReadError(FailureKind.CORRUPT, f"{name}: not a readable HDF5 file ({exc})") from None
        self._storage: dict[str, ChunkedDataset | ContiguousTable | _H5CoroDecodes | None] = {}

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> H5File:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata ----------------------------------------------------------------------------------
    def walk(self, paths: list[str]) -> None:
        """Walk to these datasets (in parallel) and index their storage; absent ones get None.

        First the last dataset by name of each group: walking to it, h5coro records the address of
        every sibling before it in the group's (sorted) table, so the others skip the group tables.
        """
        todo = [p for p in dict.fromkeys(paths) if p not in self._storage]
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
            self._storage[path] = self._storage_of(path)

    def _meta(self, path: str) -> H5Metadata | None:
        return self.h5.metadataTable.get(path.lstrip("/"))

    def _storage_of(self, path: str) -> ChunkedDataset | ContiguousTable | _H5CoroDecodes | None:
        """Who reads a dataset, decided once: this package (contiguous, or chunked in an encoding
        it decodes), or h5coro. None: the granule has no such dataset."""
        meta = self._meta(path)
        if meta is None or not meta.typeSize:
            return None
        contiguous = _contiguous_table(self.h5, meta)
        if contiguous is not None:
            return contiguous
        table = _chunk_table(self.h5, meta)
        if table is None:
            return _H5CoroReads(self.h5, path, meta)
        encoding = _encoding(meta)
        if encoding is None:
            return _H5CoroDecodes(self.h5, path, table)
        dtype, shuffle, deflate = encoding
        return ChunkedDataset(table, dtype, shuffle, deflate, fill_value(meta, np.dtype(dtype)))

    def exists(self, path: str) -> bool:
        """Whether the granule has this dataset (walked to first)."""
        return self._storage.get(path) is not None

    def storage(self, path: str) -> ChunkedDataset | ContiguousTable | _H5CoroDecodes | None:
        """How a dataset walked to is stored: its ``length`` (elements), its ``chunk`` (elements per
        step of the latitude search), the byte ``ranges`` of a slice. None: no such dataset."""
        return self._storage.get(path)

    def fill(self, path: str) -> float | int | None:
        """The HDF5 fill value of a dataset walked to (None: it declares none)."""
        meta = self._meta(path)
        return None if meta is None else fill_value(meta, np.dtype(meta.getNumpyType()))

    def chunk_record(self, path: str, start: int, stop: int) -> DatasetChunks | None:
        """The recorded form of a dataset's chunks holding ``[start, stop)``; None for what a worker
        could not decode from it alone (not a chunked 1-D numeric dataset, a filter other than
        shuffle and deflate). A contiguous dataset has no chunks to record: workers read it through
        the metadata, one exact byte range a slice."""
        storage = self._storage.get(path)
        return None if storage is None else storage.record(start, stop)

    # -- data --------------------------------------------------------------------------------------
    def read(self, requests: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], np.ndarray]:
        """Elements ``[start, stop)`` of each ``(path, start, stop)``: the byte ranges they all need
        are fetched in one go, then each slice is decoded from those bytes. A dataset that is absent
        or cannot be read is CORRUPT."""
        storages = {}
        for path, start, stop in requests:
            storage = self._storage.get(path)
            if storage is None:
                raise GranuleReadError(FailureKind.CORRUPT, f"{self.name}: cannot read {path}")
            storages[(path, start, stop)] = storage
        self.h5.fetch([r for (_, start, stop), storage in storages.items() for r in storage.ranges(start, stop)])
        out = {}
        for (path, start, stop), storage in storages.items():  # no I/O left but h5coro's own: decode in turn
            try:
                values = storage.values(start, stop, self._stored_bytes)
            except ChunkDecodeError as exc:
                raise GranuleReadError(FailureKind.CORRUPT, f"{self.name}: {path}: a chunk {exc}") from None
            if values is None:
                raise GranuleReadError(FailureKind.CORRUPT, f"{self.name}: cannot read {path}")
            out[(path, start, stop)] = values
        return out

    def _stored_bytes(self, offset: int, size: int) -> memoryview:
        """Fetched bytes at an absolute offset (from the planned ranges, or h5coro's cache lines)."""
        return self.h5.ioRequest(offset - self.h5.baseAddress, size)

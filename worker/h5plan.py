"""Planned reads for h5coro: fetch exactly the chunks a read needs, then let h5coro decode them.

h5coro fetches through a cache of fixed-size lines, and a line pulls in whatever surrounds the
bytes asked for. Here metadata (object headers, group tables, chunk B-trees) still goes through
short cache lines, but chunk data is fetched as exact byte ranges (close ones merged, requests in
parallel) that :class:`PlannedH5Coro` serves before h5coro would touch its cache; the storage
table of a dataset (:func:`storage_table`: its chunk index, or the one byte run of a contiguous
dataset) says which byte ranges a slice needs.
"""

from __future__ import annotations

import bisect
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from h5coro import h5coro
from h5coro.h5metadata import H5Metadata

from worker.granule_io import read_exact, truncated

# Metadata (object headers, group tables, chunk B-trees) is fetched through h5coro's cache in
# lines this long. Measured on full-length granules: 64 KiB lines fetch ~0.8 MB of metadata in ~12
# requests a granule; 16 KiB lines 0.3 MB in 19; 256 KiB lines 3.1 MB in 12.
CACHE_LINE_SIZE = 64 * 1024
# Byte ranges closer than this are fetched in one request (the gap is fetched too).
MERGE_GAP = 64 * 1024
# Threads fetching planned byte ranges, shared by every granule read in this process (requests
# in flight are bounded by the ReadContext, to its client's connection pool).
FETCH_THREADS = 48

_COMPACT_LAYOUT, _CONTIGUOUS_LAYOUT, _CHUNKED_LAYOUT = 0, 1, 2
# A contiguous dataset has no chunks; the latitude search reads it in blocks of this many
# elements (any range of it is one exact byte range, so a block is only a step of the search).
CONTIGUOUS_BLOCK = 10_000
_BTREE_SIGNATURE = b"TREE"


# =============================================================================================
# Fetching: exact byte ranges, merged and in parallel
# =============================================================================================
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _fetch_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="granule-fetch")
        return _pool


def merge_ranges(ranges: list[tuple[int, int]], gap: int | None = None) -> list[tuple[int, int]]:
    """Sorted ``(start, stop)`` byte ranges with those closer than ``gap`` (:data:`MERGE_GAP`) merged."""
    gap = MERGE_GAP if gap is None else gap
    merged: list[list[int]] = []
    for start, stop in sorted(ranges):
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


class RangeStore:
    """Bytes fetched for planned reads, by absolute file offset. Thread-safe."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._blocks: list[memoryview] = []
        self._lock = threading.Lock()

    def add(self, start: int, data: bytes) -> None:
        with self._lock:
            i = bisect.bisect_left(self._starts, start)
            self._starts.insert(i, start)
            self._blocks.insert(i, memoryview(data))

    def covers(self, start: int, stop: int) -> bool:
        return self.get(start, stop - start) is not None

    def get(self, start: int, size: int) -> memoryview | None:
        starts, blocks = self._starts, self._blocks
        i = bisect.bisect_right(starts, start) - 1
        # ranges may overlap (fetched in different rounds): look back over a few candidates
        while i >= 0:
            offset = start - starts[i]
            if offset + size <= len(blocks[i]):
                return blocks[i][offset : offset + size]
            i -= 1
            if i >= 0 and start - starts[i] > 64 * 1024 * 1024:
                break
        return None


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
                return memoryview(read_exact(self.driver, start, size))
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
        fetch_ranges(self.driver, [r for r in ranges if not self._cached(*r)], self.store)


def fetch_ranges(driver, ranges: list[tuple[int, int]], store: RangeStore) -> RangeStore:
    """Fetch absolute byte ranges through an h5coro driver into ``store``: ranges closer than
    :data:`MERGE_GAP` in one request, requests in parallel, what the store holds skipped. A range
    the granule does not hold in full raises CORRUPT (:func:`read_exact`)."""
    todo = [r for r in merge_ranges(ranges) if not store.covers(*r)]
    if len(todo) == 1:
        start, stop = todo[0]
        store.add(start, read_exact(driver, start, stop - start))
    elif todo:
        futures = [(start, _fetch_pool().submit(read_exact, driver, start, stop - start)) for start, stop in todo]
        for start, future in futures:
            store.add(start, future.result())
    return store


# =============================================================================================
# The chunk index
# =============================================================================================
@dataclass
class ChunkTable:
    """The stored chunks of a one-dimensional chunked dataset, in element order."""

    length: int  # elements in the dataset
    chunk: int  # elements per chunk
    first: np.ndarray  # first element of each stored chunk
    address: np.ndarray  # absolute file offset of each chunk
    size: np.ndarray  # stored (compressed) bytes of each chunk

    def __post_init__(self) -> None:
        self._stored = set((self.first // self.chunk).tolist())

    def complete(self, start: int, stop: int) -> bool:
        """Whether every chunk holding elements ``[start, stop)`` is stored."""
        return all(k in self._stored for k in range(start // self.chunk, (stop - 1) // self.chunk + 1))

    def holding(self, start: int, stop: int) -> np.ndarray:
        """Mask of the stored chunks holding elements ``[start, stop)``."""
        return (self.first < stop) & (self.first + self.chunk > start)

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Byte ranges of the chunks holding elements ``[start, stop)``."""
        pick = self.holding(start, stop)
        return list(zip(self.address[pick].tolist(), (self.address[pick] + self.size[pick]).tolist()))

    @property
    def n_chunks(self) -> int:
        return -(-self.length // self.chunk)


@dataclass
class ContiguousTable:
    """A one-dimensional numeric dataset stored as one run of bytes (HDF5 contiguous or compact
    layout): element ``i`` at ``address + i * itemsize``, so a slice is exactly one byte range."""

    length: int  # elements in the dataset
    address: int  # absolute file offset of element 0
    dtype: np.dtype
    chunk: int = CONTIGUOUS_BLOCK  # elements per step of the latitude search

    def complete(self, start: int, stop: int) -> bool:
        return True  # every element is stored

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The byte range of elements ``[start, stop)``."""
        size = self.dtype.itemsize
        return [(self.address + start * size, self.address + stop * size)] if stop > start else []

    def values(self, start: int, stop: int, stored_bytes: Callable[[int, int], bytes | memoryview]) -> np.ndarray:
        """Elements ``[start, stop)``, from ``stored_bytes(offset, size)`` of their byte range."""
        size = self.dtype.itemsize
        return np.frombuffer(stored_bytes(self.address + start * size, (stop - start) * size), self.dtype).copy()


def contiguous_table(h5: PlannedH5Coro, meta) -> ContiguousTable | None:
    """The byte run of a contiguous (or compact) 1-D numeric dataset; None for anything else."""
    if meta is None or meta.layout not in (_CONTIGUOUS_LAYOUT, _COMPACT_LAYOUT) or meta.ndims != 1:
        return None
    try:  # not meta.getNumpyType(): it answers float32 for a type it does not know
        dtype = np.dtype(H5Metadata.TO_NUMPY_TYPE[meta.type][meta.signedval][meta.typeSize]).newbyteorder("<")
    except (KeyError, TypeError):
        return None
    if meta.address >= 2 ** (8 * h5.offsetSize) - 1:
        return None  # storage never allocated: h5coro refuses to read it
    return ContiguousTable(int(meta.dimensions[0]), meta.address + h5.baseAddress, dtype)


def storage_table(h5: PlannedH5Coro, meta) -> ChunkTable | ContiguousTable | None:
    """Where a dataset's elements are stored, for planned reads; None when h5coro must read it."""
    return contiguous_table(h5, meta) or chunk_table(h5, meta)


def _btree_chunks(h5: PlannedH5Coro, address: int, ndims: int, out: list[tuple[int, int, int]], depth: int = 0) -> None:
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


def chunk_table(h5: PlannedH5Coro, meta) -> ChunkTable | None:
    """The chunk index of a dataset, or None when the reader cannot plan its reads (h5coro still can)."""
    if meta is None or meta.layout != _CHUNKED_LAYOUT or meta.ndims != 1 or len(meta.chunkDimensions) != 1:
        return None
    found: list[tuple[int, int, int]] = []
    try:
        _btree_chunks(h5, meta.address, 1, found)
    except (ValueError, struct.error, KeyError):
        return None
    found.sort()
    arr = np.array(found, dtype=np.int64).reshape(-1, 3)
    return ChunkTable(int(meta.dimensions[0]), int(meta.chunkDimensions[0]), arr[:, 0], arr[:, 1] + h5.baseAddress, arr[:, 2])

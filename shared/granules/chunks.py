"""Where a dataset's elements are stored, and decoding them: pure functions, no I/O.

Two storage layouts of a one-dimensional dataset are read without HDF5's library:

* **chunked** (:class:`ChunkTable` + its encoding, :class:`ChunkedDataset`): each stored chunk's
  first element, file offset and compressed size. HDF5's shuffle filter stores byte ``v`` of
  element ``e`` at ``v * n + e`` (n elements per chunk), then deflate compresses that. Decoding
  inflates, checks the size, and transposes back only the elements asked for. The catalog records
  the part of a chunk table over an index range as a :class:`DatasetChunks`, decoded the same way.
* **contiguous** (:class:`ContiguousTable`): one run of bytes, element ``i`` at
  ``address + i * itemsize``, so a slice is exactly one byte range.

Both answer the same two questions: which byte ranges hold elements ``[start, stop)``
(``ranges``), and what those elements are, given the fetched bytes (``values``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.catalog import DatasetChunks

# bytes at an absolute file offset: ``stored_bytes(offset, size)``
StoredBytes = Callable[[int, int], "bytes | memoryview"]

# A contiguous dataset has no chunks; the latitude search reads it in blocks of this many
# elements (any range of it is one exact byte range, so a block is only a step of the search).
CONTIGUOUS_BLOCK = 10_000


class ChunkDecodeError(ValueError):
    """Stored bytes that do not decode as the recorded encoding says."""


# =============================================================================================
# Decoding recorded chunks
# =============================================================================================
def decode_chunk(raw: bytes | memoryview, chunks: DatasetChunks, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Elements ``[lo, hi)`` of one stored chunk."""
    dtype = np.dtype(chunks.dtype)
    hi = chunks.chunk if hi is None else hi
    try:
        data = zlib.decompress(raw) if chunks.deflate else bytes(raw)
    except zlib.error as exc:
        raise ChunkDecodeError(f"a chunk does not inflate ({exc})") from None
    if len(data) != chunks.chunk * dtype.itemsize:
        raise ChunkDecodeError(f"a chunk holds {len(data)} bytes, not {chunks.chunk} elements of {dtype}")
    if not chunks.shuffle or dtype.itemsize == 1:
        return np.frombuffer(data, dtype)[lo:hi].copy()
    planes = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, chunks.chunk)[:, lo:hi]
    return np.ascontiguousarray(planes.T).view(dtype).reshape(-1)


def values_in_range(chunks: DatasetChunks, start: int, stop: int, stored_bytes: StoredBytes) -> np.ndarray:
    """Elements ``[start, stop)`` of the dataset, from its recorded chunks; elements of chunks
    that are not stored take the fill value, as HDF5 gives them."""
    out = np.full(stop - start, 0 if chunks.fill is None else chunks.fill, dtype=np.dtype(chunks.dtype))
    for first, offset, size in chunks.stored:
        lo, hi = max(first, start), min(first + chunks.chunk, stop)
        if lo < hi:
            out[lo - start : hi - start] = decode_chunk(stored_bytes(offset, size), chunks, lo - first, hi - first)
    return out


def byte_ranges(chunks: DatasetChunks, start: int, stop: int) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of the stored chunks holding elements ``[start, stop)``."""
    return [
        (offset, offset + size)
        for first, offset, size in chunks.stored
        if first < stop and first + chunks.chunk > start
    ]


# =============================================================================================
# The chunk index of a dataset
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
class ChunkedDataset:
    """A chunked dataset whose encoding this module decodes (deflate and/or shuffle)."""

    table: ChunkTable
    dtype: str  # numpy dtype string, little-endian
    shuffle: bool
    deflate: bool
    fill: float | int | None  # the HDF5 fill value, for chunks that are not stored

    @property
    def length(self) -> int:
        return self.table.length

    @property
    def chunk(self) -> int:
        return self.table.chunk

    def record(self, start: int, stop: int) -> DatasetChunks:
        """What the catalog records of the chunks holding elements ``[start, stop)``."""
        pick = self.table.holding(start, stop)
        t = self.table
        return DatasetChunks(
            dtype=self.dtype,
            chunk=t.chunk,
            shuffle=self.shuffle,
            deflate=self.deflate,
            fill=self.fill,
            stored=list(zip(t.first[pick].tolist(), t.address[pick].tolist(), t.size[pick].tolist())),
        )

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return self.table.ranges(start, stop)

    def values(self, start: int, stop: int, stored_bytes: StoredBytes) -> np.ndarray:
        return values_in_range(self.record(start, stop), start, stop, stored_bytes)


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

    def record(self, start: int, stop: int) -> None:
        """Nothing to record: workers read a contiguous dataset through the metadata."""
        return None

    def ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The byte range of elements ``[start, stop)``."""
        size = self.dtype.itemsize
        return [(self.address + start * size, self.address + stop * size)] if stop > start else []

    def values(self, start: int, stop: int, stored_bytes: StoredBytes) -> np.ndarray:
        """Elements ``[start, stop)``, from ``stored_bytes(offset, size)`` of their byte range."""
        size = self.dtype.itemsize
        return np.frombuffer(stored_bytes(self.address + start * size, (stop - start) * size), self.dtype).copy()

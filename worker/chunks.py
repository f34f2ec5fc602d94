"""Decoding HDF5 chunks whose place and encoding the catalog recorded: pure functions, no I/O.

HDF5's shuffle filter stores byte ``v`` of element ``e`` at ``v * n + e`` (n elements per chunk),
then deflate compresses that. Decoding inflates, checks the size, and transposes back only the
elements asked for.
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

from shared.catalog import DatasetChunks


class ChunkDecodeError(ValueError):
    """Stored bytes that do not decode as the recorded encoding says."""


def decode_chunk(raw: bytes | memoryview, chunks: DatasetChunks, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Elements ``[lo, hi)`` of one stored chunk."""
    dtype = np.dtype(chunks.dtype)
    hi = chunks.chunk if hi is None else hi
    try:
        data = zlib.decompress(raw) if chunks.deflate else bytes(raw)
    except zlib.error as exc:
        raise ChunkDecodeError(f"does not inflate ({exc})") from None
    if len(data) != chunks.chunk * dtype.itemsize:
        raise ChunkDecodeError(f"holds {len(data)} bytes, not {chunks.chunk} elements of {dtype}")
    if not chunks.shuffle or dtype.itemsize == 1:
        return np.frombuffer(data, dtype)[lo:hi].copy()
    planes = np.frombuffer(data, np.uint8).reshape(dtype.itemsize, chunks.chunk)[:, lo:hi]
    return np.ascontiguousarray(planes.T).view(dtype).reshape(-1)


def values_in_range(chunks: DatasetChunks, start: int, stop: int, stored_bytes: Callable[[int, int], bytes | memoryview]) -> np.ndarray:
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
    return [(offset, offset + size) for first, offset, size in chunks.stored if first < stop and first + chunks.chunk > start]

"""Byte ranges of granules, on S3 (obstore) or local files, with errors that say what went wrong.

A granule is read as byte ranges: a :class:`ByteSource` per granule, opened by
:func:`open_source`, reads like a file (:meth:`ByteSource.read`: a range that runs past the end
comes back short, one that starts past it is an error; h5coro's cache lines need this at the end
of a file) and exactly (:meth:`ByteSource.read_ranges`, :func:`read_exact`: every byte asked for,
or CORRUPT). Every range is counted (:class:`ReadStats`): bytes fetched, not bytes used, is what a
shard pays for.

Errors are :class:`GranuleReadError` with a kind: MISSING (no such object or file), DENIED (the
credentials were refused or have expired: refresh them), CORRUPT (a granule shorter than its
metadata says, i.e. truncated: never worth a retry; S3 answers 416 InvalidRange for a range that
starts past the end) or TRANSIENT (throttling, 5xx, timeouts: retry).

Planned reads fetch many ranges at once (:func:`fetch_ranges`): ranges closer than
:data:`MERGE_GAP` become one request, and the bytes land in a :class:`RangeStore` by file offset.
On S3 the requests of one round of one granule are one ``obstore.get_ranges`` call, which fetches
them in parallel outside the interpreter (no thread per request).

Concurrency has one setting, :data:`REQUESTS_IN_FLIGHT` (per shard, carried by the
:class:`ReadContext`): a granule has at most :data:`RANGES_PER_CALL` ranges in flight, so a shard
reads :attr:`ReadContext.granules_in_flight` granules at once, and the S3 client keeps that many
connections.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

import obstore
import obstore.exceptions
from obstore.store import S3Store

from shared.credentials import obstore_s3_config
from shared.errors import GranuleError
from shared.results import FailureKind

DENIED_CODES = {
    "AccessDenied",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "403",
}
MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
# A range that starts past the object's end: the object is shorter than its metadata says.
TRUNCATED_CODES = {"InvalidRange", "416"}

# THE concurrency setting: byte-range requests of one shard in flight at once (and so the
# connections its S3 client keeps open). Granules read at once follow from it.
REQUESTS_IN_FLIGHT = 80
# Ranges of one object obstore's get_ranges fetches at once (object_store's
# OBJECT_STORE_COALESCE_PARALLEL): what one granule can have in flight.
RANGES_PER_CALL = 10
# Byte ranges closer than this are fetched in one request (the gap is fetched too).
MERGE_GAP = 64 * 1024

# Throttling, server errors and dropped connections are retried with backoff, as boto3's
# standard mode does (4 attempts); what still fails after that is reported as TRANSIENT.
RETRY = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}
CLIENT = {"connect_timeout": "5s", "timeout": "30s", "allow_http": True}
_ERROR_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")


# =============================================================================================
# Errors
# =============================================================================================
class GranuleReadError(GranuleError):
    """A read failed; ``kind`` says whether retrying, refreshing credentials or nothing can help."""

    def __init__(self, kind: FailureKind, reason: str):
        super().__init__(reason)
        self.kind = kind

    @property
    def reason(self) -> str:
        return str(self)


def truncated(resource: str, pos: int, size: int, got: int) -> GranuleReadError:
    """The error for a read of ``size`` bytes at ``pos`` that found only ``got`` of them."""
    reason = f"{resource}: truncated: {got} of the {size} bytes at offset {pos} exist"
    return GranuleReadError(FailureKind.CORRUPT, f"{reason}; the file is shorter than its HDF5 metadata says")


def error_code(message: str) -> str:
    """The S3 ``<Code>`` quoted in an error ('' when there is none). Only the code is kept: the
    rest of an S3 error body can name the access key."""
    found = _ERROR_CODE.search(message)
    return found.group(1) if found else ""


def classify_error(code: str, exc: Exception | None = None) -> FailureKind:
    """MISSING, DENIED (refresh the credentials), CORRUPT (a range past the object's end: it is
    truncated) or TRANSIENT (retry), from the S3 error code and the kind of error obstore raised."""
    if code in MISSING_CODES or isinstance(exc, (obstore.exceptions.NotFoundError, FileNotFoundError)):
        return FailureKind.MISSING
    if code in DENIED_CODES or isinstance(
        exc, (obstore.exceptions.PermissionDeniedError, obstore.exceptions.UnauthenticatedError, PermissionError)
    ):
        return FailureKind.DENIED
    if code in TRUNCATED_CODES or "416 Range Not Satisfiable" in str(exc):
        return FailureKind.CORRUPT
    return FailureKind.TRANSIENT


class ObjectVersion(NamedTuple):
    """Which version of a file was read: its size in bytes and an ETag (S3's, quotes included;
    for a local file, which has none, ``mtime_ns:<st_mtime_ns>``)."""

    size: int
    etag: str


# =============================================================================================
# S3
# =============================================================================================
class S3RangeReader:
    """Ranged GETs of S3 objects through obstore (Rust's object_store): signing, connection
    pooling and retries run outside the interpreter.

    A shard makes over a thousand small ranged reads. Through boto3 each cost ~2 ms of CPU
    (request validation, event hooks, response parsing) and through botocore's signer and
    urllib3 still ~0.9 ms, more than decoding the bytes fetched; through obstore ~0.35 ms, most
    of it without the GIL. Credentials and endpoint: :func:`obstore_s3_config`. Signatures and
    session tokens travel in headers: no URL carries a credential.
    """

    def __init__(self, credentials: dict[str, str] | None = None, max_connections: int = REQUESTS_IN_FLIGHT):
        self._config = obstore_s3_config(credentials)
        self._client = {**CLIENT, "pool_max_idle_per_host": str(max_connections)}
        self._stores: dict[str, S3Store] = {}
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None
        self._max_granules = max(1, max_connections // RANGES_PER_CALL)

    def store(self, bucket: str) -> S3Store:
        with self._lock:
            if bucket not in self._stores:
                if self._config is None:
                    raise GranuleReadError(FailureKind.DENIED, f"s3://{bucket}: no AWS credentials found")
                self._stores[bucket] = S3Store(
                    bucket, config=self._config, client_options=self._client, retry_config=RETRY
                )
            return self._stores[bucket]

    def get(self, bucket: str, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of ``s3://bucket/key`` (short at the object's end); raises
        :class:`GranuleReadError`."""
        try:
            return bytes(obstore.get_range(self.store(bucket), key, start=start, end=stop))
        except (obstore.exceptions.BaseError, OSError) as exc:  # obstore raises FileNotFoundError for a missing object
            raise self._error(bucket, key, exc, start, stop) from None

    def get_ranges(self, bucket: str, key: str, ranges: list[tuple[int, int]]) -> list[memoryview]:
        """The bytes of each ``(start, stop)`` range of ``s3://bucket/key``, in one call: obstore
        fetches them in parallel (:data:`RANGES_PER_CALL` at a time), one request each (ranges
        closer than ``coalesce`` would be merged: the caller has merged them already). A range that
        runs past the object's end comes back short."""
        if not ranges:
            return []
        try:
            got = obstore.get_ranges(
                self.store(bucket), key, starts=[a for a, _ in ranges], ends=[b for _, b in ranges], coalesce=0
            )
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(bucket, key, exc, *max(ranges)) from None  # the range furthest into the object
        return [memoryview(data) for data in got]

    def get_object(self, bucket: str, key: str) -> bytes | None:
        """The whole of ``s3://bucket/key``; None when there is no such object."""
        try:
            return bytes(obstore.get(self.store(bucket), key).bytes())
        except (obstore.exceptions.BaseError, OSError) as exc:
            error = self._error(bucket, key, exc, 0, 0)
            if error.kind == FailureKind.MISSING:
                return None
            raise error from None

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Store ``data`` as ``s3://bucket/key`` in one PUT (atomic: readers see the old object or the new)."""
        try:
            obstore.put(self.store(bucket), key, data)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(bucket, key, exc, 0, 0) from None

    def head(self, bucket: str, key: str) -> ObjectVersion:
        """Size and ETag of ``s3://bucket/key`` (one HeadObject)."""
        try:
            meta = obstore.head(self.store(bucket), key)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(bucket, key, exc, 0, 0) from None
        return ObjectVersion(meta["size"], meta["e_tag"] or "")

    def get_ranges_versioned(
        self, bucket: str, key: str, ranges: list[tuple[int, int]]
    ) -> tuple[list[memoryview], ObjectVersion]:
        """:meth:`get_ranges`, and the object's size and ETag from the answer to one of the
        ranges (a ranged GET carries them: no extra request). That range is a plain GET sent
        alongside the ``get_ranges`` call of the others."""
        first, rest = ranges[0], ranges[1:]
        others = self._pool().submit(self.get_ranges, bucket, key, rest) if rest else None
        try:
            answer = obstore.get(self.store(bucket), key, options={"range": first})
            data = memoryview(answer.bytes())
        except (obstore.exceptions.BaseError, OSError) as exc:
            if others is not None:
                others.cancel() or others.exception()  # let it finish: its connection is pooled
            raise self._error(bucket, key, exc, *first) from None
        meta = answer.meta
        return [data, *(others.result() if others else [])], ObjectVersion(meta["size"], meta["e_tag"] or "")

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:  # obstore's calls release the GIL: threads only wait
                self._threads = ThreadPoolExecutor(max_workers=self._max_granules, thread_name_prefix="s3-ranges")
            return self._threads

    @staticmethod
    def _error(bucket: str, key: str, exc: Exception, start: int, stop: int) -> GranuleReadError:
        code = error_code(str(exc))
        kind = classify_error(code, exc)
        if kind == FailureKind.CORRUPT:  # 416: the range starts past the object's end
            return truncated(f"s3://{bucket}/{key}", start, stop - start, 0)
        return GranuleReadError(kind, f"s3://{bucket}/{key}: {code or type(exc).__name__}")


def split_s3_url(url: str) -> tuple[str, str]:
    path = url.removeprefix("s3://")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise GranuleReadError(FailureKind.MISSING, f"not an s3://bucket/key url: {url}")
    return bucket, key


# =============================================================================================
# What a read needs: the S3 client, the counters, the bound on requests in flight
# =============================================================================================
@dataclass
class ReadStats:
    """Counts every byte-range request of one shard (thread-safe)."""

    requests: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += nbytes

    def add_ranges(self, sizes: list[int]) -> None:
        with self._lock:
            self.requests += len(sizes)
            self.bytes += sum(sizes)


@dataclass
class ReadContext:
    """What a read needs: the S3 reader (shared by all granules of a shard), the counters, and
    the concurrency setting, requests in flight (:data:`REQUESTS_IN_FLIGHT`).

    ``index_s3`` reads granule indexes (:mod:`shared.granules.index`) when they are not where the
    granule credentials reach: on AWS the granules are in NSIDC's read-only bucket, the indexes
    in the run's output bucket (default credentials: ``S3RangeReader()``). None: ``s3`` reads them."""

    s3: S3RangeReader | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    requests_in_flight: int = REQUESTS_IN_FLIGHT
    index_s3: S3RangeReader | None = None

    def for_indexes(self) -> ReadContext:
        """The context granule indexes are read through: ``index_s3`` (else ``s3``), same counters."""
        return ReadContext(s3=self.index_s3 or self.s3, stats=self.stats, requests_in_flight=self.requests_in_flight)

    @property
    def granules_in_flight(self) -> int:
        """Granules read at once: each has up to :data:`RANGES_PER_CALL` requests in flight."""
        return max(1, self.requests_in_flight // RANGES_PER_CALL)


# =============================================================================================
# One granule's bytes
# =============================================================================================
class ByteSource:
    """A granule's bytes: ``resource`` names it in errors."""

    resource: str

    def read(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``pos``, like a file: short at the end, an error past it."""
        raise NotImplementedError

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes | memoryview]:
        """Exactly the bytes of each ``(start, stop)`` range; a granule that ends first is CORRUPT."""
        raise NotImplementedError

    def version(self) -> ObjectVersion:
        """The granule's size and ETag now (S3: one HeadObject; a local file: fstat)."""
        raise NotImplementedError

    def read_ranges_versioned(self, ranges: list[tuple[int, int]]) -> tuple[list[bytes | memoryview], ObjectVersion]:
        """:meth:`read_ranges` and the version of the granule the bytes came from."""
        return self.read_ranges(ranges), self.version()

    def close(self) -> None:
        pass


def _exact(resource: str, ranges: list[tuple[int, int]], got: list) -> list:
    for (start, stop), data in zip(ranges, got):
        if len(data) < stop - start:
            raise truncated(resource, start, stop - start, len(data))
    return got


def read_exact(source: ByteSource, pos: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``pos``; a granule that ends first is CORRUPT."""
    data = source.read(pos, size)
    if len(data) < size:
        raise truncated(source.resource, pos, size, len(data))
    return data


class S3Source(ByteSource):
    """``s3://bucket/key`` through the context's :class:`S3RangeReader`."""

    def __init__(self, resource: str, context: ReadContext):
        self.context = context
        self.resource = resource
        self.bucket, self.key = split_s3_url(resource)
        if context.s3 is None:
            raise GranuleReadError(FailureKind.DENIED, f"{resource}: no S3 reader configured")

    def read(self, pos: int, size: int) -> bytes:
        data = self.context.s3.get(self.bucket, self.key, pos, pos + size)
        self.context.stats.add(len(data))
        return data

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[memoryview]:
        got = self.context.s3.get_ranges(self.bucket, self.key, ranges)
        self.context.stats.add_ranges([len(data) for data in got])
        return _exact(self.resource, ranges, got)

    def version(self) -> ObjectVersion:
        found = self.context.s3.head(self.bucket, self.key)
        self.context.stats.add(0)  # a request, no bytes of the granule
        return found

    def read_ranges_versioned(self, ranges: list[tuple[int, int]]) -> tuple[list[memoryview], ObjectVersion]:
        if not ranges:
            return [], self.version()
        got, found = self.context.s3.get_ranges_versioned(self.bucket, self.key, ranges)
        self.context.stats.add_ranges([len(data) for data in got])
        return _exact(self.resource, ranges, got), found


class LocalFileSource(ByteSource):
    """A local file, counted the same way."""

    def __init__(self, resource: str, context: ReadContext):
        self.resource = resource
        self.context = context
        try:
            self.fd = os.open(resource, os.O_RDONLY)
        except FileNotFoundError:
            raise GranuleReadError(FailureKind.MISSING, f"{resource}: no such file") from None
        except OSError as exc:
            raise GranuleReadError(FailureKind.MISSING, f"{resource}: {exc.strerror}") from None

    def read(self, pos: int, size: int) -> bytes:
        data = os.pread(self.fd, size, pos)
        self.context.stats.add(len(data))
        if size and not data:  # nothing at pos: what S3 answers with 416
            raise truncated(self.resource, pos, size, 0)
        return data

    def read_ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        got = [
            os.pread(self.fd, stop - start, start) for start, stop in ranges
        ]  # the page cache: no waiting to overlap
        self.context.stats.add_ranges([len(data) for data in got])
        return _exact(self.resource, ranges, got)

    def version(self) -> ObjectVersion:
        found = os.fstat(self.fd)  # the file opened, even if the path has been replaced since
        return ObjectVersion(found.st_size, f"mtime_ns:{found.st_mtime_ns}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_source(location: str, context: ReadContext) -> ByteSource:
    """The bytes of the granule at ``location`` (``s3://bucket/key`` or a local path)."""
    if location.startswith("s3://"):
        return S3Source(location, context)
    if location.startswith(("http://", "https://")):
        raise GranuleReadError(
            FailureKind.MISSING, f"{location}: HTTPS granules are not supported; give an s3 or local location"
        )
    return LocalFileSource(location, context)


# =============================================================================================
# Planned reads: many exact ranges at once
# =============================================================================================
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


def fetch_ranges(source: ByteSource, ranges: list[tuple[int, int]], store: RangeStore) -> RangeStore:
    """Fetch absolute byte ranges into ``store``: ranges closer than :data:`MERGE_GAP` in one
    request, all requests in one :meth:`ByteSource.read_ranges` call, what the store holds
    skipped. A range the granule does not hold in full raises CORRUPT."""
    todo = [r for r in merge_ranges(ranges) if not store.covers(*r)]
    for (start, _), data in zip(todo, source.read_ranges(todo) if todo else []):
        store.add(start, data)
    return store


def fetch_ranges_versioned(source: ByteSource, ranges: list[tuple[int, int]]) -> tuple[RangeStore, ObjectVersion]:
    """:func:`fetch_ranges` into a new store, and the version of the granule the bytes came from
    (on S3 from the answers themselves: no extra request unless there is nothing to fetch)."""
    store, todo = RangeStore(), merge_ranges(ranges)
    got, version = source.read_ranges_versioned(todo)
    for (start, _), data in zip(todo, got):
        store.add(start, data)
    return store, version

"""Byte ranges of granules, on S3 (obstore) or local files, with errors that say what went wrong.

A granule is read as byte ranges: a :class:`ByteSource` per granule, opened by
:func:`open_source`, reads like a file (:meth:`ByteSource.read`: a range that runs past the end
comes back short, one that starts past it is an error; h5coro's cache lines need this at the end
of a file) and exactly (:func:`read_exact`: every byte asked for, or CORRUPT). Every
read is counted (:class:`ReadStats`): bytes fetched, not bytes used, is what a shard pays for.

Errors are :class:`GranuleReadError` with a kind: MISSING (no such object or file), DENIED (the
credentials were refused or have expired: refresh them), CORRUPT (a granule shorter than its
metadata says, i.e. truncated: never worth a retry; S3 answers 416 InvalidRange for a range that
starts past the end) or TRANSIENT (throttling, 5xx, timeouts: retry).

Planned reads fetch many ranges at once (:func:`fetch_ranges`): ranges closer than
:data:`MERGE_GAP` become one request, and the bytes land in a :class:`RangeStore` by file offset.
"""

from __future__ import annotations

import bisect
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import obstore
import obstore.exceptions
from obstore.store import S3Store

from shared.credentials import obstore_s3_config
from shared.errors import GranuleError
from shared.results import FailureKind

DENIED_CODES = {
    "AccessDenied", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "InvalidToken",
    "SignatureDoesNotMatch", "TokenRefreshRequired", "AllAccessDisabled", "403",
}
MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
# A range that starts past the object's end: the object is shorter than its metadata says.
TRUNCATED_CODES = {"InvalidRange", "416"}

# Requests of one shard in flight at once (and so connections the reader keeps open).
MAX_CONNECTIONS = 64
# Threads fetching planned byte ranges, shared by every granule read in this process (requests
# in flight are bounded by the ReadContext, to its client's connection pool).
FETCH_THREADS = 48
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
    if code in DENIED_CODES or isinstance(exc, (obstore.exceptions.PermissionDeniedError, obstore.exceptions.UnauthenticatedError, PermissionError)):
        return FailureKind.DENIED
    if code in TRUNCATED_CODES or "416 Range Not Satisfiable" in str(exc):
        return FailureKind.CORRUPT
    return FailureKind.TRANSIENT


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

    def __init__(self, credentials: dict[str, str] | None = None, max_connections: int = MAX_CONNECTIONS):
        self._config = obstore_s3_config(credentials)
        self._client = {**CLIENT, "pool_max_idle_per_host": str(max_connections)}
        self._stores: dict[str, S3Store] = {}
        self._lock = threading.Lock()

    def store(self, bucket: str) -> S3Store:
        with self._lock:
            if bucket not in self._stores:
                if self._config is None:
                    raise GranuleReadError(FailureKind.DENIED, f"s3://{bucket}: no AWS credentials found")
                self._stores[bucket] = S3Store(bucket, config=self._config, client_options=self._client, retry_config=RETRY)
            return self._stores[bucket]

    def get(self, bucket: str, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of ``s3://bucket/key``; raises :class:`GranuleReadError`."""
        try:
            return bytes(obstore.get_range(self.store(bucket), key, start=start, end=stop))
        except (obstore.exceptions.BaseError, OSError) as exc:  # obstore raises FileNotFoundError for a missing object
            code = error_code(str(exc))
            kind = classify_error(code, exc)
            if kind == FailureKind.CORRUPT:
                raise truncated(f"s3://{bucket}/{key}", start, stop - start, 0) from None
            raise GranuleReadError(kind, f"s3://{bucket}/{key}: {code or type(exc).__name__}") from None


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


@dataclass
class ReadContext:
    """What a read needs: the S3 reader (shared by all granules of a shard), the counters, and
    the bound on requests in flight (the reader's connection pool)."""

    s3: S3RangeReader | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    in_flight: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_CONNECTIONS), repr=False)


# =============================================================================================
# One granule's bytes
# =============================================================================================
class ByteSource:
    """A granule's bytes: ``resource`` names it in errors."""

    resource: str

    def read(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``pos``, like a file: short at the end, an error past it."""
        raise NotImplementedError

    def close(self) -> None:
        pass


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
        with self.context.in_flight:
            data = self.context.s3.get(self.bucket, self.key, pos, pos + size)
        self.context.stats.add(len(data))
        return data


class LocalFileSource(ByteSource):
    """A local file, counted the same way."""

    def __init__(self, resource: str, context: ReadContext):
        self.resource = resource
        self.context = context
        self.lock = threading.Lock()
        try:
            self.file = open(resource, "rb")
        except FileNotFoundError:
            raise GranuleReadError(FailureKind.MISSING, f"{resource}: no such file") from None
        except OSError as exc:
            raise GranuleReadError(FailureKind.MISSING, f"{resource}: {exc.strerror}") from None

    def read(self, pos: int, size: int) -> bytes:
        with self.lock:
            self.file.seek(pos)
            data = self.file.read(size)
        self.context.stats.add(len(data))
        if size and not data:  # nothing at pos: what S3 answers with 416
            raise truncated(self.resource, pos, size, 0)
        return data

    def close(self) -> None:
        self.file.close()


def open_source(location: str, context: ReadContext) -> ByteSource:
    """The bytes of the granule at ``location`` (``s3://bucket/key`` or a local path)."""
    if location.startswith("s3://"):
        return S3Source(location, context)
    if location.startswith(("http://", "https://")):
        raise GranuleReadError(FailureKind.MISSING, f"{location}: HTTPS granules are not supported; give an s3 or local location")
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


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _fetch_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="granule-fetch")
        return _pool


def fetch_ranges(source: ByteSource, ranges: list[tuple[int, int]], store: RangeStore) -> RangeStore:
    """Fetch absolute byte ranges into ``store``: ranges closer than :data:`MERGE_GAP` in one
    request, requests in parallel, what the store holds skipped. A range the granule does not
    hold in full raises CORRUPT (:func:`read_exact`)."""
    todo = [r for r in merge_ranges(ranges) if not store.covers(*r)]
    if len(todo) == 1:
        start, stop = todo[0]
        store.add(start, read_exact(source, start, stop - start))
    elif todo:
        futures = [(start, _fetch_pool().submit(read_exact, source, start, stop - start)) for start, stop in todo]
        for start, future in futures:
            store.add(start, future.result())
    return store

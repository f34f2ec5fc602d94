"""Byte-range access to granules for h5coro, with errors that say what went wrong.

h5coro's own S3 driver logs and swallows every read error (a missing object, expired
credentials and throttling all look alike), so we give H5Coro drivers that raise typed
errors and count what they fetch: bytes fetched, not bytes used, is what a shard pays for.

A granule shorter than its metadata says (truncated) is CORRUPT, never worth a retry. Drivers
read like files do, as h5coro's cache lines need at the end of a file: a range that runs past
the end comes back short, a range that starts past it is an error (S3 answers 416 InvalidRange).
Every read that needs its bytes goes through :func:`read_exact`, which refuses a short one.
"""

from __future__ import annotations

import logging
import re
import threading
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

# h5coro warns for every absent dataset; a missing beam is normal, and real errors reach us typed.
logging.getLogger("h5coro.logger").setLevel(logging.ERROR)


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


def read_exact(driver, pos: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``pos`` through an h5coro driver; a granule that ends first is CORRUPT."""
    data = driver.read(pos, size)
    if len(data) < size:
        raise truncated(getattr(driver, "resource", "granule"), pos, size, len(data))
    return data


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


# Requests of one shard in flight at once (and so connections the reader keeps open).
MAX_CONNECTIONS = 64
# Throttling, server errors and dropped connections are retried with backoff, as boto3's
# standard mode does (4 attempts); what still fails after that is reported as TRANSIENT.
RETRY = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}
CLIENT = {"connect_timeout": "5s", "timeout": "30s", "allow_http": True}
_ERROR_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")


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


@dataclass
class ReadContext:
    """What a driver needs: the S3 reader (shared by all granules of a shard), the counters, and
    the bound on requests in flight (the reader's connection pool)."""

    s3: S3RangeReader | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    in_flight: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_CONNECTIONS), repr=False)


def split_s3_url(url: str) -> tuple[str, str]:
    path = url.removeprefix("s3://")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise GranuleReadError(FailureKind.MISSING, f"not an s3://bucket/key url: {url}")
    return bucket, key


class S3RangeDriver:
    """h5coro driver: ``resource`` is ``s3://bucket/key``, ``credentials`` a :class:`ReadContext`."""

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

    def copy(self, max_connections: int | None = None) -> "S3RangeDriver":
        return S3RangeDriver(f"s3://{self.bucket}/{self.key}", self.context)

    def close(self) -> None:
        pass


class LocalFileDriver:
    """h5coro driver for a local file, counting reads the same way."""

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

    def copy(self, max_connections: int | None = None) -> "LocalFileDriver":
        return LocalFileDriver(self.resource, self.context)

    def close(self) -> None:
        self.file.close()


def driver_for(location: str) -> type:
    if location.startswith("s3://"):
        return S3RangeDriver
    if location.startswith(("http://", "https://")):
        raise GranuleReadError(FailureKind.MISSING, f"{location}: HTTPS granules are not supported; give an s3 or local location")
    return LocalFileDriver

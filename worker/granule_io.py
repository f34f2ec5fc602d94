"""Byte-range access to granules for h5coro, with errors that say what went wrong.

h5coro's own S3 driver logs and swallows every read error (a missing object, expired
credentials and throttling all look alike), so we give H5Coro drivers that raise typed
errors and count what they fetch: bytes fetched, not bytes used, is what a shard pays for.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from shared.errors import GranuleError
from shared.results import FailureKind

DENIED_CODES = {
    "AccessDenied", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId", "InvalidToken",
    "SignatureDoesNotMatch", "TokenRefreshRequired", "AllAccessDisabled", "403",
}
MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}

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


# Connections an S3 client pools, and so requests of one shard in flight at once. More requests
# than connections would open (and throw away) a new connection each: costly for both ends.
MAX_CONNECTIONS = 64


@dataclass
class ReadContext:
    """What a driver needs: an S3 client (shared by all granules of a shard), the counters, and
    the bound on requests in flight (the client's connection pool)."""

    s3: Any = None
    stats: ReadStats = field(default_factory=ReadStats)
    in_flight: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(MAX_CONNECTIONS), repr=False)


def s3_client(credentials: dict[str, str] | None = None, max_connections: int = MAX_CONNECTIONS) -> Any:
    """An S3 client for granule reads. ``credentials`` in the NSIDC key style, or None for the default chain.

    boto3 honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, which points reads at an emulator.
    """
    kwargs: dict[str, Any] = {}
    if credentials:
        kwargs = dict(
            aws_access_key_id=credentials["accessKeyId"],
            aws_secret_access_key=credentials["secretAccessKey"],
            aws_session_token=credentials.get("sessionToken"),
        )
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-west-2")), **kwargs)
    config = botocore.config.Config(
        max_pool_connections=max_connections,
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=5,
        read_timeout=20,
    )
    return session.client("s3", config=config)


def split_s3_url(url: str) -> tuple[str, str]:
    path = url.removeprefix("s3://")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise GranuleReadError(FailureKind.MISSING, f"not an s3://bucket/key url: {url}")
    return bucket, key


def classify_client_error(exc: botocore.exceptions.ClientError) -> FailureKind:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in MISSING_CODES or status == 404:
        return FailureKind.MISSING
    if code in DENIED_CODES or status in (401, 403):
        return FailureKind.DENIED
    return FailureKind.TRANSIENT


class S3RangeDriver:
    """h5coro driver: ``resource`` is ``s3://bucket/key``, ``credentials`` a :class:`ReadContext`."""

    def __init__(self, resource: str, context: ReadContext):
        self.context = context
        self.bucket, self.key = split_s3_url(resource)

    def read(self, pos: int, size: int) -> bytes:
        try:
            with self.context.in_flight:
                response = self.context.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={pos}-{pos + size - 1}")
                data = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            kind = classify_client_error(exc)
            code = exc.response.get("Error", {}).get("Code", "error")
            raise GranuleReadError(kind, f"s3://{self.bucket}/{self.key}: {code}") from None
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise GranuleReadError(FailureKind.TRANSIENT, f"s3://{self.bucket}/{self.key}: {type(exc).__name__}") from None
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

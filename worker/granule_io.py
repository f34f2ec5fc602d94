"""Byte-range access to granules for h5coro, with errors that say what went wrong.

h5coro's own S3 driver logs and swallows every read error (a missing object, expired
credentials and throttling all look alike), so we give H5Coro drivers that raise typed
errors and count what they fetch: bytes fetched, not bytes used, is what a shard pays for.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

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


# Connections the granule reader pools, and so requests of one shard in flight at once. More
# requests than connections would open (and throw away) a new connection each: costly for both ends.
MAX_CONNECTIONS = 64
# Throttling and server errors are retried with backoff (honouring Retry-After), as boto3's
# standard mode does; what is still failing after that is reported as TRANSIENT.
RETRIES = urllib3.util.Retry(total=4, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504), allowed_methods=("GET",), raise_on_status=False)
TIMEOUT = urllib3.util.Timeout(connect=5, read=20)
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")


class S3RangeReader:
    """Ranged GETs of S3 objects: SigV4-signed headers sent over one urllib3 connection pool.

    A shard makes thousands of small ranged reads. Through boto3 each costs ~2 ms of CPU (request
    validation, event hooks, response parsing), more than decoding the bytes it fetches; signing
    the headers with botocore's signer and sending them with urllib3 costs ~0.1 ms plus the HTTP
    exchange. boto3 still decides everything else: credentials (their chain and refresh), the
    endpoint (``AWS_ENDPOINT_URL``), the region and the object's URL. No URL carries a credential:
    the signature and session token travel in headers, which are never logged.
    """

    def __init__(self, credentials: dict[str, str] | None = None, max_connections: int = MAX_CONNECTIONS):
        kwargs: dict[str, Any] = {}
        if credentials:
            kwargs = dict(
                aws_access_key_id=credentials["accessKeyId"],
                aws_secret_access_key=credentials["secretAccessKey"],
                aws_session_token=credentials.get("sessionToken"),
            )
        region = os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-west-2"))
        session = boto3.session.Session(region_name=region, **kwargs)
        self.client = session.client("s3", config=botocore.config.Config(retries={"max_attempts": 4, "mode": "standard"}))
        self.region = self.client.meta.region_name
        self._credentials = session.get_credentials()
        self.http = urllib3.PoolManager(maxsize=max_connections, retries=RETRIES, timeout=TIMEOUT)

    def url(self, bucket: str, key: str) -> str:
        """The object's URL as boto3 addresses it (endpoint, virtual-host or path style), unsigned."""
        if self._credentials is None:
            raise GranuleReadError(FailureKind.DENIED, f"s3://{bucket}/{key}: no AWS credentials found")
        presigned = self.client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60)
        return presigned.partition("?")[0]

    def get(self, url: str, start: int, stop: int) -> tuple[int, bytes]:
        """Status and body of a GET of bytes ``[start, stop)``."""
        request = AWSRequest(method="GET", url=url, headers={"Range": f"bytes={start}-{stop - 1}"})
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        response = self.http.request("GET", url, headers=dict(request.headers.items()))
        return response.status, response.data


def error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 XML error body ('' when there is none)."""
    found = _ERROR_CODE.search(body[:4096])
    return found.group(1).decode("ascii", "replace") if found else ""


def classify_error(code: str, status: int) -> FailureKind:
    if code in MISSING_CODES or status == 404:
        return FailureKind.MISSING
    if code in DENIED_CODES or status in (401, 403):
        return FailureKind.DENIED
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

    def __init__(self, resource: str, context: ReadContext, url: str | None = None):
        self.context = context
        self.bucket, self.key = split_s3_url(resource)
        if context.s3 is None:
            raise GranuleReadError(FailureKind.DENIED, f"{resource}: no S3 reader configured")
        self.url = url or context.s3.url(self.bucket, self.key)

    def read(self, pos: int, size: int) -> bytes:
        where = f"s3://{self.bucket}/{self.key}"
        try:
            with self.context.in_flight:
                status, data = self.context.s3.get(self.url, pos, pos + size)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise GranuleReadError(FailureKind.TRANSIENT, f"{where}: {type(exc).__name__}") from None
        except botocore.exceptions.BotoCoreError as exc:  # credentials that cannot be loaded or refreshed
            raise GranuleReadError(FailureKind.DENIED, f"{where}: {type(exc).__name__}") from None
        if status == 200 and len(data) > size:  # a server that ignored the range sent the whole object
            data = data[pos : pos + size]
        elif status not in (200, 206):
            code = error_code(data)
            raise GranuleReadError(classify_error(code, status), f"{where}: {code or f'HTTP {status}'}")
        self.context.stats.add(len(data))
        return data

    def copy(self, max_connections: int | None = None) -> "S3RangeDriver":
        return S3RangeDriver(f"s3://{self.bucket}/{self.key}", self.context, self.url)

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

"""Byte ranges of granules (shared/granules/io.py): exact reads, merged planned fetches, error kinds,
one concurrency setting."""

from __future__ import annotations

import obstore.exceptions
import pytest

from shared.granules.io import (
    RANGES_PER_CALL,
    REQUESTS_IN_FLIGHT,
    ByteSource,
    GranuleReadError,
    LocalFileSource,
    RangeStore,
    ReadContext,
    classify_error,
    error_code,
    fetch_ranges,
    merge_ranges,
    open_source,
)
from shared.results import FailureKind


def test_merge_ranges():
    assert merge_ranges([(10, 20), (0, 5), (20, 30), (100, 110)], gap=0) == [(0, 5), (10, 30), (100, 110)]
    assert merge_ranges([(0, 5), (10, 20)], gap=5) == [(0, 20)]
    assert merge_ranges([(0, 50), (10, 20)], gap=0) == [(0, 50)]


class Recording(ByteSource):
    """An in-memory granule that records each read_ranges call."""

    resource = "memory"

    def __init__(self, data: bytes):
        self.data, self.calls = data, []

    def read(self, pos: int, size: int) -> bytes:
        return self.data[pos : pos + size]

    def read_ranges(self, ranges):
        self.calls.append(list(ranges))
        return [self.data[a:b] for a, b in ranges]


def test_fetch_ranges_merges_close_ranges_into_one_call_and_skips_what_is_held():
    data = bytes(range(256)) * 4096  # 1 MiB
    source, store = Recording(data), RangeStore()
    fetch_ranges(source, [(200_000, 200_100), (0, 10), (20, 30), (500_000, 500_004)], store)
    assert source.calls == [[(0, 30), (200_000, 200_100), (500_000, 500_004)]]  # one call, gaps under MERGE_GAP merged
    assert bytes(store.get(20, 10)) == data[20:30] and bytes(store.get(200_050, 50)) == data[200_050:200_100]
    assert store.get(30, 1) is None and store.covers(0, 30) and not store.covers(0, 31)
    fetch_ranges(source, [(0, 10), (200_010, 200_020)], store)  # all held: nothing fetched
    fetch_ranges(source, [], store)
    assert len(source.calls) == 1


def test_local_ranges_are_exact_and_counted(tmp_path):
    path = tmp_path / "g.h5"
    path.write_bytes(bytes(range(100)))
    context = ReadContext()
    source = open_source(str(path), context)
    try:
        assert isinstance(source, LocalFileSource)
        assert [bytes(b) for b in source.read_ranges([(0, 4), (90, 100)])] == [
            bytes([0, 1, 2, 3]),
            bytes(range(90, 100)),
        ]
        assert (context.stats.requests, context.stats.bytes) == (2, 14)
        with pytest.raises(GranuleReadError) as info:
            source.read_ranges([(95, 105)])
        assert (
            info.value.kind == FailureKind.CORRUPT and "truncated: 5 of the 10 bytes at offset 95" in info.value.reason
        )
    finally:
        source.close()


def test_locations_that_cannot_be_read_say_why(tmp_path):
    for location, kind, words in [
        (str(tmp_path / "absent.h5"), FailureKind.MISSING, "no such file"),
        ("https://example.com/g.h5", FailureKind.MISSING, "HTTPS granules are not supported"),
        ("s3://bucket/g.h5", FailureKind.DENIED, "no S3 reader configured"),
        ("s3://bucket-without-key", FailureKind.MISSING, "not an s3://bucket/key url"),
    ]:
        with pytest.raises(GranuleReadError) as info:
            open_source(location, ReadContext())
        assert info.value.kind == kind and words in info.value.reason, location


def test_one_concurrency_setting():
    """Requests in flight per shard decide the granules read at once (each has up to one
    get_ranges call, RANGES_PER_CALL requests, in flight) and the S3 client's connections."""
    assert ReadContext().requests_in_flight == REQUESTS_IN_FLIGHT
    assert ReadContext().granules_in_flight == REQUESTS_IN_FLIGHT // RANGES_PER_CALL >= 1
    assert ReadContext(requests_in_flight=25).granules_in_flight == 2
    assert ReadContext(requests_in_flight=1).granules_in_flight == 1


@pytest.mark.parametrize(
    "code,error,kind",
    [
        ("NoSuchKey", obstore.exceptions.NotFoundError, FailureKind.MISSING),
        ("", FileNotFoundError, FailureKind.MISSING),
        ("", PermissionError, FailureKind.DENIED),
        ("ExpiredToken", obstore.exceptions.GenericError, FailureKind.DENIED),
        ("AccessDenied", obstore.exceptions.PermissionDeniedError, FailureKind.DENIED),
        ("", obstore.exceptions.UnauthenticatedError, FailureKind.DENIED),
        ("InvalidAccessKeyId", obstore.exceptions.GenericError, FailureKind.DENIED),
        ("SlowDown", obstore.exceptions.GenericError, FailureKind.TRANSIENT),
        ("InternalError", obstore.exceptions.GenericError, FailureKind.TRANSIENT),
        ("InvalidRange", obstore.exceptions.GenericError, FailureKind.CORRUPT),  # 416: the object is truncated
    ],
)
def test_s3_errors_are_classified(code, error, kind):
    message = (
        "Client error with status 400: <?xml "
        f'version="1.0"?><Error><Code>{code}</Code><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId></Error>'
    )
    assert error_code(message) == code
    assert classify_error(error_code(message), error(message)) == kind

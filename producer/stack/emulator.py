"""The embedded stack's AWS emulator: moto's server app, served the way AWS endpoints behave.

    python -m producer.stack.emulator -H 127.0.0.1 -p PORT      (what ``stack up`` starts)
    python -m producer.stack.emulator -p PORT --s3-latency-ms 20 --s3-first-byte-ms 100 --s3-bandwidth-mbps 90

``python -m moto.server`` serves moto's app with werkzeug's development server, which closes
the connection after every response (and starts a thread for each): every boto3 call and every
ranged read of a granule pays a new TCP connection at both ends, where AWS endpoints keep
connections alive. Here the same app is served by waitress (a production WSGI server:
keep-alive connections, a pool of threads), with response buffers large enough that a
multi-megabyte read is not spooled through a temporary file.

Stock moto 5 also answers a ranged GET by reading the whole object (from a temporary file, for
objects over 5 MB) and cutting the range from it, and looks through its package folders on
every request to find the service addressed. For a 19 MB granule that is ~4 ms of the
emulator's CPU per request whatever the range, so a reader that fetches a few kilobytes pays as
much per request as one that fetches megabytes, unlike S3 where a request's cost does not grow
with the object's size. Two fixes, applied only where moto has the shape they expect (otherwise
moto runs as shipped, slower but the same):

* objects stay in memory and a GET takes their stored bytes without copying them, so only the
  range is copied;
* the list of moto's service modules is computed once.

Even so a ranged GET cost ~0.9 ms of the emulator's CPU, ~0.65 ms of it in moto's way to its S3
code (its dispatcher, flask's routing, werkzeug's request and response, S3Response's set-up) for
what is a dictionary look-up and a slice; a shard's readers make hundreds of them. One more fix:

* a plain GET of an object (whole, or one ``bytes=`` range) is answered from moto's S3 backend by
  the steps moto's GET takes, without its flask app; every other request, and any GET whose answer
  would depend on more (a query, conditions, a versioned bucket, moto checking signatures...), goes
  to moto as before. ``python -m bench.s3_get --compare`` measures it: ~0.8 -> ~0.3 ms of the
  emulator's CPU per GET of 64 kB, most of what is left waitress's. S3 delays (below) apply to it.

moto's SQS also goes through the whole queue, reading the clock for each message, whenever
anything reads a queue's attributes: a send does (for one setting), and so does every message a
receive hands out (for its retention period). Filling a queue took time quadratic in its length
(SendMessageBatch 73 -> 650 ms as a queue grew to 1,400 messages). Two more fixes:

* a send computes none of the queue's message counts, GetQueueAttributes only those it asks for;
* a scan of a queue reads the clock once, not once per message.

moto's DynamoDB gathers a table query's candidates from the whole table, every page again, so
reading one run's records grew slower with every run the table held; and it writes each value of
an answer through a generic serializer. Two more fixes:

* a query reads its own partition only (a table's, or the items holding an index's key);
* an item's attribute values are written to the answer as stored, not walked through their
  shape member by member (most of a query's time when it returns a few hundred items).

``python -m bench.queue --compare`` measures them (``--without-fix NAME`` leaves one out).

moto also answers each request on a thread of its own without isolating one request from
another. Its DynamoDB transaction checks its conditions, writes, and on a failed condition
restores a copy of the whole table taken when it began: measured here, two concurrent
transactions on one item both applied, and a cancelled one erased writes made meanwhile by others
(a run counted shards twice, or lost them). Its SQS receive tests a message's visibility and
marks it received in two steps, and a delete rebuilds the queue's list of messages while a send
may be appending to it. So requests to DynamoDB, and to SQS, run one at a time per service (S3,
the hot path, stays concurrent); a long-polling receive gives SQS's turn up while it waits, as
it holds no message then.

Nothing else changes: the same moto app, the same responses (but for request ids, drawn afresh
for each request anyway). Optionally (``--s3-*``), S3 requests take S3's time rather than
loopback's: a latency before each answer, a first-byte delay for a GET and a bandwidth cap on its
body (per connection); other services are not delayed.

Over 400 lines on purpose: what differs from stock moto is all in this one file, each fix
beside the probe that decides whether it applies.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Objects up to this size are kept in memory by moto (its default spools objects over 5 MB to disk).
IN_MEMORY_OBJECT_BYTES = 2**31
# waitress: threads answering requests, open connections allowed (every worker pools up to 64),
# and response bytes held in memory before spooling to a temporary file (its default is 1 MB).
SERVER_THREADS = 16
# With S3 delays, a thread waits out each S3 request it answers: more threads, so that concurrent
# readers wait side by side as they would on S3, not behind one another.
DELAYED_SERVER_THREADS = 64
CONNECTION_LIMIT = 1000
OUTPUT_BUFFER_BYTES = 256 * 2**20

log = logging.getLogger(__name__)


def _service_modules_once() -> bool:
    import moto.backends

    listing = getattr(moto.backends, "list_of_moto_modules", None)
    if listing is None:
        return False
    if hasattr(listing, "cache_info"):  # applied already
        return True
    moto.backends.list_of_moto_modules = functools.cache(lambda: list(listing()))
    return True


def _object_bytes_without_copy() -> bool:
    from moto.s3.models import FakeKey

    stock = getattr(FakeKey, "value", None)
    if not isinstance(stock, property) or stock.fset is None:
        return False
    if getattr(stock.fget, "without_copy", False):  # applied already
        return True

    def value(self) -> bytes:
        spooled = getattr(self, "_value_buffer", None)
        in_memory = getattr(spooled, "_file", None)
        if getattr(spooled, "_rolled", True) or not hasattr(in_memory, "getvalue"):
            return stock.fget(self)
        with self.lock:
            return in_memory.getvalue()  # bytes are immutable: the caller cannot alter the object

    value.without_copy = True  # type: ignore[attr-defined]
    FakeKey.value = property(value, stock.fset)
    return True


class ServiceLock:
    """One service's turn: a lock that the thread holding it can give up while it waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mine = threading.local()

    def __enter__(self) -> None:
        self._lock.acquire()
        self._mine.held = True

    def __exit__(self, *exc: object) -> None:
        self._mine.held = False
        self._lock.release()

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let other requests in meanwhile, if this thread holds the lock (else do nothing)."""
        if not getattr(self._mine, "held", False):
            yield
            return
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


# X-Amz-Target prefixes of the JSON protocols (DynamoDB Streams is "DynamoDBStreams_...").
TARGET_SERVICES = {"DynamoDB_": "dynamodb", "AmazonSQS.": "sqs"}
SERVICE_LOCKS = {"dynamodb": ServiceLock(), "sqs": ServiceLock()}


def service_of(environ: dict[str, Any]) -> str | None:
    """The AWS service a request addresses: its X-Amz-Target, else its SigV4 credential scope."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    for prefix, service in TARGET_SERVICES.items():
        if target.startswith(prefix):
            return service
    auth = environ.get("HTTP_AUTHORIZATION", "")
    credential = auth.partition("Credential=")[2].split(",", 1)[0]
    scope = credential.split("/")  # key id / date / region / service / aws4_request
    return scope[3] if len(scope) == 5 else None


class Isolation:
    """WSGI middleware: requests to the given services run one at a time per service."""

    def __init__(self, app: Callable, services: Iterable[str]) -> None:
        self.app = app
        self.locks = {s: SERVICE_LOCKS.setdefault(s, ServiceLock()) for s in services}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        lock = self.locks.get(service_of(environ))
        if lock is None:
            return self.app(environ, start_response)
        with lock:  # the whole response is produced under the lock: moto may work while it is iterated
            response = self.app(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                if hasattr(response, "close"):
                    response.close()


def _sqs_long_poll_gives_way() -> bool:
    """A receive waiting for messages releases SQS's turn (otherwise no send could wake it)."""
    from moto.sqs.models import Queue

    stock = getattr(Queue, "wait_for_messages", None)
    if stock is None:
        return False
    if getattr(stock, "gives_way", False):  # applied already
        return True

    def wait_for_messages(self: Any, timeout: int) -> None:
        with SERVICE_LOCKS["sqs"].released():
            stock(self, timeout)

    wait_for_messages.gives_way = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = wait_for_messages
    return True


# Queue attributes that count messages: moto computes each by a scan of the queue that reads the clock per
# message (~10 us each), and computes all three whenever anything reads ``Queue.attributes``.
SQS_COUNT_ATTRIBUTES = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
)
_attribute_reads = threading.local()  # per thread, a stack of (counts wanted, attributes computed) per backend call


class _CountsLeftOut:
    """A queue as moto's ``Queue.attributes`` reads it, with the message counts not wanted read as None."""

    def __init__(self, queue: Any, left_out: frozenset[str]) -> None:
        self._queue, self._left_out = queue, left_out

    def __getattr__(self, name: str) -> Any:
        return None if name in self._left_out else getattr(self._queue, name)


def _reading_counts(counts_of: Callable[..., frozenset[str]]) -> Callable[[Callable], Callable]:
    """Run a backend method with ``Queue.attributes`` counting only what ``counts_of(*args)`` names, each
    queue's attributes computed once in the call (the queue does not change meanwhile)."""

    def wrap(stock: Callable) -> Callable:
        @functools.wraps(stock)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            reads = _attribute_reads.__dict__.setdefault("stack", [])
            reads.append((counts_of(*args, **kwargs), {}))
            try:
                return stock(self, *args, **kwargs)
            finally:
                reads.pop()

        method.counts_only_when_asked = True  # type: ignore[attr-defined]
        return method

    return wrap


def _sqs_counts_only_when_asked() -> bool:
    """A send computes no message count, GetQueueAttributes only those it asks for.

    moto's send reads ``queue.attributes`` for one setting (ContentBasedDeduplication), which counts
    the queue's messages three times: every send costs time proportional to the queue, and filling a
    queue takes time quadratic in its length (SendMessageBatch 73 -> 650 ms as a queue grows to 1,400
    messages). A receive checks each message's retention period through GetQueueAttributes, which
    reads ``queue.attributes`` three times per name: nine scans per message received.
    """
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    stock = getattr(Queue, "attributes", None)
    counts = {name: camelcase_to_underscores(name) for name in SQS_COUNT_ATTRIBUTES}
    methods = ("send_message", "send_message_batch", "get_queue_attributes")
    if (
        not isinstance(stock, property)
        or not SQS_COUNT_ATTRIBUTES <= set(getattr(Queue, "BASE_ATTRIBUTES", ()))
        or not all(isinstance(getattr(Queue, p, None), property) for p in counts.values())
        or not all(callable(getattr(SQSBackend, m, None)) for m in methods)
    ):
        return False
    if getattr(SQSBackend.get_queue_attributes, "counts_only_when_asked", False):  # applied already
        return True

    def attributes(self: Any) -> dict[str, Any]:
        reads = getattr(_attribute_reads, "stack", None)
        if not reads:  # outside the methods below: as shipped
            return stock.fget(self)
        wanted, computed = reads[-1]
        if id(self) not in computed:
            left_out = frozenset(counts[name] for name in SQS_COUNT_ATTRIBUTES - wanted)
            computed[id(self)] = (self, stock.fget(_CountsLeftOut(self, left_out) if left_out else self))
        return dict(computed[id(self)][1])  # moto hands out a new dict each time

    def none(*args: Any, **kwargs: Any) -> frozenset[str]:
        return frozenset()

    def asked(queue_name: str, attribute_names: list[str], *args: Any, **kwargs: Any) -> frozenset[str]:
        names = set(attribute_names or ())
        return SQS_COUNT_ATTRIBUTES if "All" in names else SQS_COUNT_ATTRIBUTES & names

    Queue.attributes = property(attributes)
    SQSBackend.send_message = _reading_counts(none)(SQSBackend.send_message)
    SQSBackend.send_message_batch = _reading_counts(none)(SQSBackend.send_message_batch)
    SQSBackend.get_queue_attributes = _reading_counts(asked)(SQSBackend.get_queue_attributes)
    return True


_scan_clock = threading.local()  # per thread, the time (ms) a scan of a queue reads for every message


def _sqs_scans_read_the_clock_once() -> bool:
    """A scan of a queue (its visible messages, its message counts) reads the clock once, not per message.

    moto tests each message's visibility and delay against the clock read anew (~10 us: datetime
    arithmetic), so a receive costs ~10 us per message in the queue. Here the scan reads it once and
    its messages are tested against that instant: the same answer, as of the scan's start.
    """
    import moto.sqs.models as sqs

    stock_clock = getattr(sqs, "unix_time_millis", None)
    scans = ("messages", "approximate_number_of_messages_delayed", "approximate_number_of_messages_not_visible")
    if (
        not callable(stock_clock)
        or not all(isinstance(getattr(sqs.Queue, p, None), property) for p in scans)
        or not all(isinstance(getattr(sqs.Message, p, None), property) for p in ("visible", "delayed"))
    ):
        return False
    if getattr(stock_clock, "once_per_scan", False):  # applied already
        return True

    def unix_time_millis(dt: Any = None) -> float:
        now = getattr(_scan_clock, "millis", None)
        return stock_clock(dt) if now is None or dt is not None else now

    def once(scan: property) -> property:
        def fget(self: Any) -> Any:
            if getattr(_scan_clock, "millis", None) is not None:  # within a scan already
                return scan.fget(self)
            _scan_clock.millis = stock_clock()
            try:
                return scan.fget(self)
            finally:
                _scan_clock.millis = None

        return property(fget)

    unix_time_millis.once_per_scan = True  # type: ignore[attr-defined]
    sqs.unix_time_millis = unix_time_millis
    for name in scans:
        setattr(sqs.Queue, name, once(getattr(sqs.Queue, name)))
    return True


_query_partition = threading.local()  # per thread, the partition a table query reads (None: the whole table)


def _dynamodb_query_reads_one_partition() -> bool:
    """A query reads the items of its partition, not the whole table sorted.

    moto gathers a query's candidates from every item of the table, sorted by the table's keys
    (DynamoType comparisons), and keeps those of the queried partition; each page of a paginated
    query does it again. So a query's cost grew with everything the table held: on a run table
    that several runs had filled, reading one run's records took seconds. Here a table query's
    candidates come from its partition alone, in the same order; an index query's are the items
    holding the index's partition key value, in any order (moto sorts them by the index's keys
    next): the same answers.
    """
    import inspect

    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models.table import Table

    query, all_items = Table.query, Table.all_items
    if getattr(query, "one_partition", False):  # applied already
        return True
    signature = inspect.signature(query)
    if (
        not {"hash_key", "range_comparison", "range_objs", "index_name", "hash_key_conditions"}
        <= signature.parameters.keys()
    ):
        return False

    def holds(item: Any, conditions: list) -> bool:
        """Whether ``item`` has each (attribute, value): strings compared as stored (DynamoType's
        equality casts every value first, most of a scan's cost), other types as moto compares them."""
        for name, wanted in conditions:
            value = item.attrs.get(name)
            if value is None or value.type != wanted.type:
                return False
            if not (value.value == wanted.value if wanted.type == "S" else value == wanted):
                return False
        return True

    def within_range(items: list) -> list:
        """A partition's items that meet the query's range condition, sorted by range key: on string
        keys compared as stored (moto's comparison functions, without casting every value)."""
        comparison, bounds = getattr(_query_partition, "range", (None, []))
        if not all(getattr(item.range_key, "type", None) == "S" for item in items) or not all(
            b.type == "S" for b in bounds
        ):
            return sorted(items, key=lambda item: item.range_key)
        if comparison:
            meets = get_comparison_func(comparison)
            items = [item for item in items if meets(item.range_key.value, *(b.value for b in bounds))]
        return sorted(items, key=lambda item: item.range_key.value)

    def partition_items(self: Any) -> list:
        key = getattr(_query_partition, "key", None)
        conditions = getattr(_query_partition, "conditions", None)
        if not self.range_key_attr or (key is None and not conditions):  # not within a query; a table kept item by item
            return all_items(self)
        if key is not None:
            return within_range(list(self.items.get(key, {}).values()))
        return [item for partition in self.items.values() for item in partition.values() if holds(item, conditions)]

    @functools.wraps(query)
    def one_partition_query(*args: Any, **kwargs: Any) -> Any:
        called = signature.bind(*args, **kwargs).arguments
        on_index = bool(called.get("index_name"))
        _query_partition.key = None if on_index else called["hash_key"]
        comparison = None if on_index else called.get("range_comparison")
        _query_partition.range = (comparison, list(called.get("range_objs") or [])) if comparison else (None, [])
        _query_partition.conditions = list(called.get("hash_key_conditions") or []) if on_index else None
        try:
            return query(*args, **kwargs)
        finally:
            _query_partition.key = _query_partition.conditions = None
            _query_partition.range = (None, [])

    one_partition_query.one_partition = True  # type: ignore[attr-defined]
    Table.query = one_partition_query
    Table.all_items = partition_items
    return True


# AttributeValue members whose wire form is what moto stores; B and BS hold bytes, which moto's
# serializer encodes (base64), so an item holding them takes the stock path.
_AS_STORED = {
    "S": lambda v: isinstance(v, str),
    "N": lambda v: isinstance(v, str),
    "BOOL": lambda v: isinstance(v, bool),
    "NULL": lambda v: isinstance(v, bool),
    "SS": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "NS": lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    "M": lambda v: isinstance(v, dict) and all(_as_stored(a) for a in v.values()),
    "L": lambda v: isinstance(v, list) and all(_as_stored(a) for a in v),
}


def _as_stored(value: Any) -> bool:
    """Whether an attribute value (``{"S": "x"}``, ``{"M": {...}}``...) is already in its wire form."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    holds = _AS_STORED.get(kind)
    return holds is not None and holds(inner)


def _dynamodb_items_serialized_as_stored() -> bool:
    """An item's attribute values are written to the answer as stored.

    moto's response serializer walks every attribute value through the AttributeValue shape,
    looking up each of its ten members under several spellings: answering a status query of 269
    shard items took ~0.45 s, almost all of it there. moto already holds the values in their wire
    form, so the same JSON is written as is.
    """
    from moto.core.serialize import BaseJSONSerializer

    stock = BaseJSONSerializer._serialize_type_structure
    if getattr(stock, "as_stored", False):  # applied already
        return True
    if not hasattr(BaseJSONSerializer, "_default_serialize"):
        return False

    @functools.wraps(stock)
    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and key and _as_stored(value):
            self._default_serialize(serialized, value, shape, key)
        else:
            stock(self, serialized, value, shape, key)

    serialize_structure.as_stored = True  # type: ignore[attr-defined]
    BaseJSONSerializer._serialize_type_structure = serialize_structure
    return True


# -- S3: a plain GET of an object answered from moto's S3 backend -------------------------------------------
# A path-style object path whose bucket and key moto reads as written: no percent-escapes (behind waitress
# moto decodes a path twice), nothing outside these characters, no empty, "." or ".." segment.
_PLAIN_OBJECT_PATH = re.compile(r"/([A-Za-z0-9._-]+)/([A-Za-z0-9._~!$&'()*+,;=:@/-]+)")
_PLAIN_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")  # one range, as moto splits it
# Paths moto's dispatcher sends elsewhere than S3, whatever the request's signature says.
_NOT_S3_PATHS = ("/moto-api", "/favicon.ico", "/latest/meta-data/", "/latest/api/", "/v20180820/")
# Request headers moto's answer to a GET depends on beyond the object and the range: conditions, SSE-C
# keys, checksum mode, CORS (moto's and flask-cors's), moto's account header, a body. WSGI names.
_S3_GET_HEADERS_LEFT_TO_MOTO = frozenset(
    {
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_RANGE",
        "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_ALGORITHM",
        "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_KEY",
        "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER_KEY_MD5",
        "HTTP_X_AMZ_CHECKSUM_MODE",
        "HTTP_ORIGIN",
        "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK",
        "HTTP_X_MOTO_ACCOUNT_ID",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_CONTENT_ENCODING",
        "CONTENT_TYPE",
    }
)
S3_HOSTS_REMEMBERED = 64  # (signing region, Host) pairs whose reading by moto's dispatcher is remembered


class _HostOnly:
    """What moto's ``S3Response.subdomain_based_buckets`` reads of a request: its Host header."""

    def __init__(self, host: str) -> None:
        self.headers = {"host": host}


def _s3_gets_answered_directly() -> bool:
    """A plain GET of an S3 object (whole, or one range) is answered from moto's S3 backend.

    Behind waitress moto answers every request through its dispatcher (which reads the request's
    signature to find the service), flask's routing, werkzeug's request and response objects,
    ``S3Response``'s set-up (the body, the query, the headers copied as parameters, the account)
    and its object GET: ~0.65 ms of CPU per request whatever the range, most of what a granule
    reader costs the emulator (hundreds of small ranged GETs per shard). Here such a GET is answered
    from the same backend objects by the steps moto takes for it: the bucket and key named by the
    path, the key's ``response_dict`` and metadata, ``Accept-Ranges``, a request id and a default
    content type as ``_send_response`` adds them, moto's range arithmetic, the headers werkzeug and
    flask-cors add; the key's state advances and moto's request counter counts, as for moto's GET.

    Anything else goes to moto unchanged: a query, another method, a header moto's answer depends
    on (conditions, SSE-C, checksum mode, CORS, a body), a range other than one ``bytes=a-b``,
    ``a-`` or ``-n`` within the object (moto's 416, or its whole object for a range it ignores), a
    Host or path moto reads a bucket or a region from (virtual-host style, amazonaws.com), a missing
    bucket or key, a versioned bucket or a delete marker, a bucket with a policy or logging, an
    archived object, moto's request recorder on, and any request while moto checks signatures (its
    auth counter is finite) or whose access key IAM holds (moto's account, and its record of the
    key's use, then depend on it; keys IAM does not hold are the default account's, as moto has
    them). The answers are the same but for the request id, which is drawn afresh either way.
    """
    import moto.s3.responses as s3_responses
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.responses import BaseResponse
    from moto.iam import models as iam
    from moto.moto_api import recorder
    from moto.moto_api._internal import mock_random
    from moto.moto_server import werkzeug_app
    from moto.s3.models import FakeKey
    from werkzeug.http import HTTP_STATUS_CODES

    dispatcher = werkzeug_app.DomainDispatcherApplication
    stock = dispatcher.__call__
    if getattr(stock, "answers_s3_gets", False):  # applied already
        return True
    s3_response = s3_responses.S3Response
    needed = {
        s3_responses: ("s3_backends", "extract_region_from_aws_authorization", "DEFAULT_REGION_NAME"),
        iam: ("iam_backends", "DEFAULT_ACCOUNT_ID"),
        settings: ("INITIAL_NO_AUTH_ACTION_COUNT", "S3_IGNORE_SUBDOMAIN_BUCKETNAME"),
        werkzeug_app: ("DISABLE_GLOBAL_CORS",),
        recorder: ("_user_enabled",),
        mock_random: ("randbytes",),
        ActionAuthenticatorMixin: ("request_count",),
        BaseResponse: ("access_key_regex",),
        s3_response: ("subdomain_based_buckets",),
        dispatcher: ("get_backend_for_host",),
    }
    key_properties = ("value", "response_dict", "metadata", "storage_class", "version_id")
    if (
        not all(hasattr(owner, name) for owner, names in needed.items() for name in names)
        or not all(isinstance(getattr(FakeKey, p, None), property) for p in key_properties)
        or not all(hasattr(s3_responses, name) for name in ("get_partition", "ARCHIVE_STORAGE_CLASSES", "APP_XML"))
        or not isinstance(s3_responses.s3_backends, dict)
        or not isinstance(iam.iam_backends, dict)
    ):
        return False

    def path_style_s3(app: Any, region: str, host: str) -> bool:
        """Whether moto's dispatcher sends a request signed for S3 in ``region`` to its S3 app, and that
        app reads the bucket from the path: moto's own functions, remembered (they read no more)."""
        known = vars(app).setdefault("_path_style_s3", {})
        asked = (region, host, settings.S3_IGNORE_SUBDOMAIN_BUCKETNAME, os.environ.get("MOTO_S3_CUSTOM_ENDPOINTS"))
        if asked not in known:
            s3 = app.get_backend_for_host(f"s3.{region}.amazonaws.com") == "s3"
            path_style = s3 and not s3_response.subdomain_based_buckets(_HostOnly(host))
            if len(known) >= S3_HOSTS_REMEMBERED:
                return path_style
            known[asked] = path_style
        return known[asked]

    def iam_holds_key_of(auth: str) -> bool:
        """Whether IAM holds the request's access key (read as moto reads it, where IAM holds any)."""
        held = [
            getattr(b, "access_keys", None) for a in list(dict.values(iam.iam_backends)) for b in list(dict.values(a))
        ]
        if any(keys is None for keys in held):  # not the IAM moto has here
            return True
        if not any(held):
            return False
        found = BaseResponse.access_key_regex.search(auth)
        access_key = found.group(1) if found else "AKIAEXAMPLE"
        return any(access_key in keys for keys in held)

    def request_id() -> str:
        """A request id as moto's look: 52 letters and digits (from moto's random numbers, which it can seed)."""
        return base64.b64encode(mock_random.randbytes(39), altchars=b"Aa").decode()

    def answer(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """moto's answer to a plain object GET (status, headers, body), or None where moto should answer."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return None
        path = environ.get("PATH_INFO", "")
        host = environ.get("HTTP_HOST", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        raw = environ.get("RAW_URI")
        plain = _PLAIN_OBJECT_PATH.fullmatch(path)
        if (
            environ.get("SCRIPT_NAME")
            or plain is None
            or path.startswith(_NOT_S3_PATHS)
            or "//" in path
            or "/./" in f"{path}/"
            or "/../" in f"{path}/"
            or (raw and raw.split("?", 1)[0] != path)
            or environ.get("CONTENT_LENGTH", "0") not in ("", "0")
            or not _S3_GET_HEADERS_LEFT_TO_MOTO.isdisjoint(environ)
            or environ.get("HTTP_X_AMZ_CONTENT_SHA256", "").startswith("STREAMING")
            or not auth.startswith("AWS4-HMAC-SHA256 ")
            or not host
            or "amazonaws" in host
            or "amazonaws" in path
            or "s3-control" in host
            or ".s3-accesspoint." in host
            or settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf")
            or recorder._user_enabled
            or "MOTO_ACCOUNT_ID" in os.environ
        ):
            return None
        words = auth.split(",")[0].split()  # the credential scope, as moto's dispatcher reads it
        scope = words[1].split("/") if len(words) > 1 else []
        if len(scope) != 5 or scope[3].lower() != "s3" or not path_style_s3(app, scope[2], host):
            return None
        ranged = environ.get("HTTP_RANGE")
        bounds = None if ranged is None else _PLAIN_RANGE.fullmatch(ranged)
        if (ranged is not None and bounds is None) or iam_holds_key_of(auth):
            return None
        region = s3_responses.extract_region_from_aws_authorization(auth) or s3_responses.DEFAULT_REGION_NAME
        account = dict.get(s3_responses.s3_backends, iam.DEFAULT_ACCOUNT_ID) or {}
        bucket = getattr(dict.get(account, s3_responses.get_partition(region)), "buckets", {}).get(plain.group(1))
        if (
            bucket is None
            or getattr(bucket, "versioning_status", "?") is not None
            or getattr(bucket, "policy", b"?") is not None
            or getattr(bucket, "logging", True)
        ):
            return None
        key = bucket.keys.get(plain.group(2))
        if (
            not isinstance(key, FakeKey)
            or key.version_id != "null"
            or key.storage_class in s3_responses.ARCHIVE_STORAGE_CLASSES
        ):
            return None
        body = key.value
        span = None if bounds is None else _range_of(bounds, len(body))
        if bounds is not None and span is None:  # moto's 416, or its whole object for a range it ignores
            return None

        # moto's auth counter counts the request; the key is fetched twice (each fetch advances its state)
        ActionAuthenticatorMixin.request_count += 1
        key.advance()
        key.advance()
        headers: dict[str, Any] = {}  # get_object's
        headers.update(key.response_dict)
        headers.update(key.metadata)
        headers.update({"Accept-Ranges": "bytes"})
        headers["x-amzn-requestid"] = request_id()  # _send_response's
        if body and "content-type" not in (name.lower() for name in headers):
            headers["content-type"] = s3_responses.APP_XML
        status = 200
        if span is not None:  # _handle_range_header's
            (begin, end), length = span, len(body)
            if begin or end < length - 1:
                for name in [h for h in headers if h.startswith("x-amz-checksum-")]:
                    del headers[name]
            headers["content-range"] = f"bytes {begin}-{end}/{length}"
            body, status = body[begin : end + 1], 206
        # werkzeug's Response: Content-Length from the body, its default type; flask-cors's header
        listed = [(name, str(v)) for name, v in headers.items() if name.lower() != "content-length"]
        listed.append(("Content-Length", str(len(body))))
        if not any(name.lower() == "content-type" for name, _ in listed):
            listed.append(("Content-Type", "text/html; charset=utf-8"))
        if not werkzeug_app.DISABLE_GLOBAL_CORS:
            listed.append(("Access-Control-Allow-Origin", "*"))
        return f"{status} {HTTP_STATUS_CODES[status].upper()}", listed, body

    @functools.wraps(stock)
    def __call__(self: Any, environ: dict[str, Any], start_response: Callable) -> Any:
        answered = answer(self, environ)
        if answered is None:
            return stock(self, environ, start_response)
        status, headers, body = answered
        start_response(status, headers)
        return [body]

    __call__.answers_s3_gets = True  # type: ignore[attr-defined]
    __call__.answer = answer  # type: ignore[attr-defined]
    dispatcher.__call__ = __call__
    return True


def _range_of(bounds: re.Match, length: int) -> tuple[int, int] | None:
    """The first and last byte of ``length`` that a ``bytes=a-b`` range names, as moto reads it; None where
    moto answers otherwise (a 416 past the end or for ``-0``, the whole object for ``-`` or ``b-a``)."""
    begin, end = (int(b) if b else None for b in bounds.groups())
    last = length - 1
    if (begin is None and end == 0) or (begin is not None and begin > last):
        return None
    if begin is not None:
        end = last if end is None else min(end, last)
    elif end is not None:
        begin, end = length - min(end, length), last
    else:
        return None
    return (begin, end) if begin <= min(end, last) else None


def isolated_services() -> list[str]:
    """DynamoDB always; SQS only where its long poll can give way (moto's shape as expected)."""
    try:
        return ["dynamodb", "sqs"] if _sqs_long_poll_gives_way() else ["dynamodb"]
    except ImportError as exc:
        log.warning("SQS requests not isolated: %s", exc)
        return ["dynamodb"]


FIXES = (
    _service_modules_once,
    _object_bytes_without_copy,
    _sqs_counts_only_when_asked,
    _sqs_scans_read_the_clock_once,
    _dynamodb_query_reads_one_partition,
    _dynamodb_items_serialized_as_stored,
    _s3_gets_answered_directly,
)
FIX_NAMES = tuple(fix.__name__.lstrip("_") for fix in FIXES)


def apply_fixes(without: Iterable[str] = ()) -> list[str]:
    """Apply what this moto allows, except the fixes named in ``without`` (to measure one: moto as
    shipped in that respect); returns the names of the fixes applied."""
    skipped = set(without)
    if "object_bytes_without_copy" not in skipped:
        os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(IN_MEMORY_OBJECT_BYTES))
    applied = []
    for fix, name in zip(FIXES, FIX_NAMES):
        if name in skipped:
            continue
        try:
            if fix():
                applied.append(name)
        except (ImportError, AttributeError) as exc:  # a moto of another shape: run it as shipped
            log.warning("emulator fix %s not applied: %s", name, exc)
    return applied


# -- S3's latency and bandwidth, optionally ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class S3Delays:
    """What an S3 request costs in time beyond the emulator's own work (all zero: nothing added).

    Every S3 request waits ``latency_ms`` before it is answered; a GET waits ``first_byte_ms`` more
    before its first byte, then its body flows at no more than ``bandwidth_mbps`` megabits per second
    (per request, so per connection: a connection carries one request at a time).
    """

    latency_ms: float = 0.0
    first_byte_ms: float = 0.0
    bandwidth_mbps: float = 0.0  # 0: unlimited

    def __post_init__(self) -> None:
        if min(self.latency_ms, self.first_byte_ms, self.bandwidth_mbps) < 0:
            raise ValueError(f"S3 delays cannot be negative: {self}")

    def __bool__(self) -> bool:
        return bool(self.latency_ms or self.first_byte_ms or self.bandwidth_mbps)

    def argv(self) -> list[str]:
        """The emulator's command-line options that set these delays."""
        return [
            f"--s3-{flag}={value:g}"
            for flag, value in (
                ("latency-ms", self.latency_ms),
                ("first-byte-ms", self.first_byte_ms),
                ("bandwidth-mbps", self.bandwidth_mbps),
            )
            if value
        ]


def add_s3_delay_options(parser: argparse.ArgumentParser) -> None:
    """The options that set S3Delays (the emulator's, and ``python -m producer stack up``'s)."""
    parser.add_argument(
        "--s3-latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="wait this long before answering any S3 request (default 0)",
    )
    parser.add_argument(
        "--s3-first-byte-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="an S3 GET also waits this long before its first byte (default 0)",
    )
    parser.add_argument(
        "--s3-bandwidth-mbps",
        type=float,
        default=0.0,
        metavar="MBIT/S",
        help="an S3 GET's body flows at no more than this many megabits per second, per "
        "connection (default 0: unlimited)",
    )


def s3_delays_of(args: argparse.Namespace) -> S3Delays:
    return S3Delays(args.s3_latency_ms, args.s3_first_byte_ms, args.s3_bandwidth_mbps)


class DelayedS3:
    """WSGI middleware: S3 requests take the time ``delays`` says; other services are untouched."""

    CHUNK_BYTES = 64 * 2**10  # a throttled body is written in pieces of this size

    def __init__(
        self,
        app: Callable,
        delays: S3Delays,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.delays, self.sleep, self.clock = app, delays, sleep, clock

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if service_of(environ) != "s3":
            return self.app(environ, start_response)
        get = environ.get("REQUEST_METHOD") == "GET"
        wait_ms = self.delays.latency_ms + (self.delays.first_byte_ms if get else 0.0)
        if wait_ms:
            self.sleep(wait_ms / 1000)
        response = self.app(environ, start_response)
        if not (get and self.delays.bandwidth_mbps):
            return response
        return self._throttled(response, self.delays.bandwidth_mbps * 1e6 / 8)

    def _throttled(self, response: Iterable[bytes], bytes_per_s: float) -> Iterator[bytes]:
        """The body in pieces, each written when its last byte would have arrived at that rate."""
        began, sent = self.clock(), 0
        try:
            for block in response:
                view = memoryview(block)
                for at in range(0, len(view), self.CHUNK_BYTES):
                    piece = view[at : at + self.CHUNK_BYTES]
                    sent += len(piece)
                    wait = began + sent / bytes_per_s - self.clock()
                    if wait > 0:
                        self.sleep(wait)
                    yield bytes(piece)
        finally:
            if hasattr(response, "close"):
                response.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m producer.stack.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to listen on (default 5000)")
    add_s3_delay_options(parser)
    parser.add_argument(
        "--without-fix",
        action="append",
        default=[],
        choices=FIX_NAMES,
        metavar="NAME",
        help="leave moto as shipped in this respect, to measure what the fix is worth "
        f"(repeatable; one of {', '.join(FIX_NAMES)})",
    )
    args = parser.parse_args(argv)
    try:
        delays = s3_delays_of(args)
    except ValueError as exc:
        parser.error(str(exc))
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto writes it into URLs it hands out (queue URLs)
    applied = apply_fixes(without=args.without_fix)
    services = isolated_services()
    import waitress
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = Isolation(DomainDispatcherApplication(create_backend_app), services)
    if delays:
        app = DelayedS3(app, delays)
    print(
        f"moto on http://{args.host}:{args.port} (waitress); fixes applied: {', '.join(applied) or 'none'}; "
        f"requests isolated per service: {', '.join(services)}"
        + (f"; S3 delays: {', '.join(delays.argv())}" if delays else ""),
        file=sys.stderr,
        flush=True,
    )
    waitress.serve(
        app,
        host=args.host,
        port=args.port,
        threads=DELAYED_SERVER_THREADS if delays else SERVER_THREADS,
        connection_limit=CONNECTION_LIMIT,
        outbuf_overflow=OUTPUT_BUFFER_BYTES,
        outbuf_high_watermark=OUTPUT_BUFFER_BYTES,
        asyncore_use_poll=True,
        _quiet=True,
    )


if __name__ == "__main__":
    main()

"""The embedded emulator isolates what moto's threads do not: DynamoDB writes and SQS queue state;
its SQS takes a time per request that does not grow with the queue; its S3 can be given S3's latency.

moto serves each request on a thread of its own and its DynamoDB transaction is a check, then a
write, then (on a failed condition) a restore of a deep copy of the whole table taken at its
start: concurrent transactions both apply, or a cancelled one erases another's write.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import boto3
import pytest
from botocore.config import Config
from moto.core import utils as moto_utils
from moto.sqs.models import SQSBackend

from producer.stack import emulator
from producer.stack import lifecycle as stack
from shared.granules.io import GranuleReadError, S3RangeReader
from shared.results import FailureKind

pytestmark = pytest.mark.integration

ROUNDS = 100
THREADS = 2
TABLE_ITEMS = 300  # a run table's worth: moto's transaction copies the whole table, widening the window


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """A bare emulator (``python -m producer.stack.emulator``), nothing deployed."""
    url, pid = stack.start_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        yield url
    finally:
        os.killpg(pid, signal.SIGTERM)


LATENCY_MS = 50


@pytest.fixture(scope="module")
def slow_s3_endpoint(tmp_path_factory):
    """A bare emulator whose S3 answers after LATENCY_MS."""
    url, pid = stack.start_emulator(tmp_path_factory.mktemp("slow-s3"), s3_delays=emulator.S3Delays(LATENCY_MS))
    try:
        yield url
    finally:
        os.killpg(pid, signal.SIGTERM)


def client(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(max_pool_connections=32, retries={"max_attempts": 1}),
    )


def at_once(n: int, call) -> list:
    """Run ``call`` on n threads released together; returns what each returned."""
    barrier, results = threading.Barrier(n), [None] * n

    def one(i: int) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def count_calls(monkeypatch, *targets: tuple[object, str]) -> list[int]:
    """From now on, ``[n]``: how many times any of ``targets`` (an owner, a class or a module, and
    an attribute name: a function, a method, or a property, whose reads are counted) was called."""
    calls = [0]
    for owner, name in targets:
        stock = getattr(owner, name)

        def counting(*args, _stock=stock.fget if isinstance(stock, property) else stock, **kwargs):
            calls[0] += 1
            return _stock(*args, **kwargs)

        monkeypatch.setattr(owner, name, property(counting) if isinstance(stock, property) else counting)
    return calls


def test_concurrent_conditional_transactions_apply_once(endpoint):
    ddb = client(endpoint, "dynamodb")
    table = "isolation"
    key = {"AttributeName": "pk"}
    ddb.create_table(
        TableName=table,
        KeySchema=[{**key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{**key, "AttributeType": "S"}],
    )
    for start in range(0, TABLE_ITEMS, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": f"other{i}"}, "st": {"S": "DONE"}}}}
                    for i in range(start, start + 25)
                ]
            }
        )
    ddb.put_item(TableName=table, Item={"pk": {"S": "run"}, "n": {"N": "0"}})

    def finish(shard: str):  # like RunStatusStore.finish: RUNNING -> DONE, counted on the run item
        def call() -> bool:
            try:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": table,
                                "Key": {"pk": {"S": shard}},
                                "UpdateExpression": "SET st = :done",
                                "ConditionExpression": "st = :running",
                                "ExpressionAttributeValues": {":done": {"S": "DONE"}, ":running": {"S": "RUNNING"}},
                            }
                        },
                        {
                            "Update": {
                                "TableName": table,
                                "Key": {"pk": {"S": "run"}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                    ]
                )
                return True
            except ddb.exceptions.TransactionCanceledException:
                return False

        return call

    applied = []
    for r in range(ROUNDS):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"shard{r}"}, "st": {"S": "RUNNING"}})
        applied.append(sum(at_once(THREADS, finish(f"shard{r}"))))

    def item(key: str) -> dict:
        return ddb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)["Item"]

    counted = int(item("run")["n"]["N"])
    done = sum(item(f"shard{r}")["st"]["S"] == "DONE" for r in range(ROUNDS))
    assert (applied.count(1), counted, done) == (ROUNDS, ROUNDS, ROUNDS), f"per round applied {applied}"


def test_a_long_poll_does_not_hold_up_other_queue_requests(endpoint):
    sqs = client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    got: list = []
    poller = threading.Thread(
        target=lambda: got.extend(
            sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, VisibilityTimeout=60).get("Messages", [])
        )
    )
    poller.start()
    time.sleep(0.5)  # the poller waits inside the emulator
    started = time.monotonic()
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    sqs.send_message(QueueUrl=url, MessageBody="wake up")
    poller.join(timeout=5)
    assert time.monotonic() - started < 2, "other requests waited for the long poll"
    assert [m["Body"] for m in got] == ["wake up"], "the long poll did not return the message sent meanwhile"


def test_concurrent_receives_never_hand_out_one_message_twice(endpoint):
    sqs = client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="receivers")["QueueUrl"]
    for r in range(20):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{r}")
        received = at_once(4, lambda: sqs.receive_message(QueueUrl=url, VisibilityTimeout=60).get("Messages", []))
        assert sum(len(m) for m in received) == 1


def test_the_middleware_serialises_one_service_and_leaves_s3_concurrent():
    inside, most = [0], {"dynamodb": 0, "s3": 0}
    guard = threading.Lock()

    def app(environ, start_response):  # a backend whose requests take a while
        with guard:
            inside[0] += 1
            kind = "s3" if environ["PATH_INFO"].startswith("/bucket") else "dynamodb"
            most[kind] = max(most[kind], inside[0])
        time.sleep(0.05)
        with guard:
            inside[0] -= 1
        start_response("200 OK", [])
        return [b"ok"]

    isolated = emulator.Isolation(app, {"dynamodb", "sqs"})
    ddb = {"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.TransactWriteItems", "PATH_INFO": "/"}
    s3 = {
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=x/20260101/us-west-2/s3/aws4_request, SignedHeaders=host",
        "PATH_INFO": "/bucket/key",
    }
    assert at_once(4, lambda: isolated(dict(ddb), lambda *a: None)) == [[b"ok"]] * 4
    assert at_once(4, lambda: isolated(dict(s3), lambda *a: None)) == [[b"ok"]] * 4
    assert most == {"dynamodb": 1, "s3": 4}


def test_requests_name_their_service():
    scope = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/{}/aws4_request, SignedHeaders=host, Signature=0"
    assert emulator.service_of({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.UpdateItem"}) == "dynamodb"
    assert emulator.service_of({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}) == "sqs"
    assert emulator.service_of({"HTTP_AUTHORIZATION": scope.format("sqs")}) == "sqs"  # SQS's query protocol
    assert emulator.service_of({"HTTP_AUTHORIZATION": scope.format("s3")}) == "s3"
    assert emulator.service_of({}) is None


# -- SQS: a request's work does not grow with the queue's length -----------------------------------------
class CountingList(list):
    """A queue's list of messages that counts the messages moto's code goes through."""

    touched = 0

    def __iter__(self):
        for message in super().__iter__():
            CountingList.touched += 1
            yield message


FIFO = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}


def queue_of(length: int, fifo: bool = False):
    """An in-process moto SQS backend (the emulator's fixes applied) with one queue of ``length`` messages;
    returns the backend, the queue and a batch of 10 messages to send it (numbered from ``start``)."""
    assert "sqs_counts_only_when_asked" in emulator.apply_fixes()
    backend = SQSBackend("us-west-2", "123456789012")
    queue = backend.create_queue("q.fifo", **FIFO) if fifo else backend.create_queue("q")
    group = {"MessageGroupId": "g"} if fifo else {}

    def batch(start: int) -> dict:
        return {
            str(i): {"Id": f"m{i}", "MessageBody": f"body {i}", "MessageAttributes": {}, "DelaySeconds": None, **group}
            for i in range(start, start + 10)
        }

    for start in range(0, length, 10):
        backend.send_message_batch(queue.name, batch(start))
    assert len(queue._messages) == length
    queue._messages = CountingList(queue._messages)
    return backend, queue, batch


def touched(call) -> int:
    CountingList.touched = 0
    call()
    return CountingList.touched


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_send_does_not_go_through_the_queue(fifo):
    """moto's send read every queued message three times (the queue's message counts, for one setting)."""
    per_send = {}
    for length in (100, 400):
        backend, queue, batch = queue_of(length, fifo)
        per_send[length] = touched(lambda: backend.send_message_batch(queue.name, batch(length))) / 10
    if fifo:  # deduplication compares a message with each one queued (moto's way, kept): that many, no more
        assert per_send == {100: pytest.approx(104.5), 400: pytest.approx(404.5)}
    else:
        assert per_send == {100: 0, 400: 0}


def test_a_receive_goes_through_the_queue_once_and_reads_the_clock_once(monkeypatch):
    """moto's receive read every message ten times (once for visibility, nine times for the queue's
    counts while checking the message's retention period) and the clock twice per message."""
    clock_reads = count_calls(monkeypatch, (moto_utils, "unix_time"))
    for length in (100, 400):
        backend, queue, _ = queue_of(length)
        clock_reads[0] = 0
        assert touched(lambda: backend.receive_message("q", 1, 0, 60)) <= length + 1
        assert clock_reads[0] <= 10, f"{clock_reads[0]} clock reads for one receive from {length} messages"
        counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        assert touched(lambda: backend.get_queue_attributes("q", counts)) <= 2 * length
        assert touched(lambda: backend.get_queue_attributes("q", ["VisibilityTimeout"])) == 0
        assert backend.get_queue_attributes("q", counts) == dict(zip(counts, [length - 1, 1]))


def test_fixes_apply_once_and_can_be_left_out():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication as Dispatcher
    from moto.s3.models import FakeKey
    from moto.sqs.models import Queue, SQSBackend

    emulator.apply_fixes()
    patched = (FakeKey.value, Queue.attributes, Queue.messages, SQSBackend.send_message, Dispatcher.__call__)
    assert emulator.apply_fixes() == list(emulator.FIX_NAMES)  # again: all of them, none applied twice
    assert (FakeKey.value, Queue.attributes, Queue.messages, SQSBackend.send_message, Dispatcher.__call__) == patched
    assert "sqs_counts_only_when_asked" not in emulator.apply_fixes(without=["sqs_counts_only_when_asked"])


def test_queue_semantics_through_the_emulator(endpoint):
    """What the SQS fixes must leave as moto had it: FIFO deduplication, delays, visibility, counts, DLQ."""
    sqs = client(endpoint, "sqs")
    fifo = sqs.create_queue(QueueName="dedup.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for dedup in ("a", "a", "b"):
        sqs.send_message(QueueUrl=fifo, MessageBody=dedup, MessageGroupId="g", MessageDeduplicationId=dedup)
    content = sqs.create_queue(
        QueueName="content.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=content,
        Entries=[{"Id": str(i), "MessageBody": body, "MessageGroupId": "g"} for i, body in enumerate("xxy")],
    )
    for url, bodies in ((fifo, ["a", "b"]), (content, ["x", "y"])):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        assert [m["Body"] for m in got] == bodies  # the duplicate dropped, the order kept

    dlq = sqs.create_queue(QueueName="semantics-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="semantics",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})},
    )["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=900)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": b, "MessageBody": b} for b in ("held", "failing")])

    def counts(queue: str) -> tuple[int, int, int]:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        got = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
        every = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        assert {n: every[n] for n in names} == got
        return tuple(int(got[n]) for n in names)

    assert counts(url) == (2, 0, 1)
    (held,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]
    assert counts(url) == (1, 1, 1)
    for receive in range(2):  # received twice and let go at once, as a failing worker would
        (failing,) = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
        assert failing["Body"] != held["Body"] and failing["Body"] != "later"
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", []) == []  # the third: to the DLQ
    assert counts(url) == (0, 1, 1) and counts(dlq) == (1, 0, 0)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]] == ["held"]


# -- S3 latency and bandwidth, optionally -------------------------------------------------------------
class FakeTime:
    """A clock that moves only when slept on: what the middleware waits, without waiting."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


S3_SCOPE = "AWS4-HMAC-SHA256 Credential=x/20260101/us-west-2/{}/aws4_request, SignedHeaders=host"


def test_s3_delays_add_latency_first_byte_and_bandwidth_to_s3_only():
    body = b"x" * 1_000_000

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    t = FakeTime()
    delayed = emulator.DelayedS3(
        app, emulator.S3Delays(latency_ms=20, first_byte_ms=100, bandwidth_mbps=80), sleep=t.sleep, clock=t.clock
    )

    def request(service: str, method: str) -> bytes:
        environ = {"REQUEST_METHOD": method, "HTTP_AUTHORIZATION": S3_SCOPE.format(service), "PATH_INFO": "/b/k"}
        return b"".join(delayed(environ, lambda *a: None))

    assert request("sqs", "POST") == body and t.sleeps == []
    assert request("s3", "PUT") == body and t.sleeps == [pytest.approx(0.020)]  # latency; no bandwidth cap
    t.sleeps.clear()
    assert request("s3", "GET") == body
    assert t.sleeps[0] == pytest.approx(0.120)  # latency + first byte
    assert sum(t.sleeps[1:]) == pytest.approx(len(body) * 8 / 80e6)  # 1 MB at 80 Mbit/s: 0.1 s
    assert len(t.sleeps) - 1 == -(-len(body) // emulator.DelayedS3.CHUNK_BYTES)  # paced piece by piece


def test_s3_delays_options():
    assert not emulator.S3Delays() and emulator.S3Delays().argv() == []
    delays = emulator.S3Delays(20, 100, 90)
    assert delays.argv() == ["--s3-latency-ms=20", "--s3-first-byte-ms=100", "--s3-bandwidth-mbps=90"]
    with pytest.raises(ValueError):
        emulator.S3Delays(-1)


def fastest_ms(call, times: int = 5) -> float:
    best = float("inf")
    for _ in range(times):
        began = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def test_an_s3_get_takes_the_latency_given_and_other_services_do_not(endpoint, slow_s3_endpoint):
    figures = {}
    for name, url in (("plain", endpoint), ("slow", slow_s3_endpoint)):
        s3, sqs = client(url, "s3"), client(url, "sqs")
        s3.create_bucket(Bucket="latency", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        s3.put_object(Bucket="latency", Key="k", Body=b"0123456789" * 1000)
        get = lambda: s3.get_object(Bucket="latency", Key="k", Range="bytes=100-199")["Body"].read()  # noqa: E731
        reader = S3RangeReader({"accessKeyId": "x", "secretAccessKey": "x", "endpointUrl": url})
        plain_get = lambda: reader.get("latency", "k", 100, 200)  # noqa: E731  (emulator's fast path)
        assert get() == plain_get() == (b"0123456789" * 10)
        figures[name] = {"s3": fastest_ms(get), "plain s3": fastest_ms(plain_get), "sqs": fastest_ms(sqs.list_queues)}
    assert figures["slow"]["s3"] >= LATENCY_MS and figures["slow"]["plain s3"] >= LATENCY_MS, figures
    assert figures["plain"]["s3"] < LATENCY_MS / 2 and figures["plain"]["plain s3"] < LATENCY_MS / 2, figures
    assert figures["slow"]["sqs"] < LATENCY_MS / 2, figures


def ranged_table(ddb, name: str) -> None:
    """A run table's shape: partition key, numeric range key, one index on another attribute."""
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "colour", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-colour",
                "KeySchema": [{"AttributeName": "colour", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def fill(ddb, name: str, sizes: dict[str, int]) -> None:
    for pk, n in sizes.items():
        for start in range(0, n, 25):
            ddb.batch_write_item(
                RequestItems={
                    name: [
                        {"PutRequest": {"Item": {"pk": {"S": pk}, "sk": {"N": str(i)}, "colour": {"S": "rgb"[i % 3]}}}}
                        for i in range(start, min(n, start + 25))
                    ]
                }
            )


def query_all(ddb, **query) -> list[tuple[str, int]]:
    pages = ddb.get_paginator("query").paginate(**query)
    return [(i["pk"]["S"], int(i["sk"]["N"])) for page in pages for i in page["Items"]]


def test_table_queries_answer_as_before_through_the_emulator(endpoint):
    """What the DynamoDB fix must leave as moto had it: a partition's items in order, pages, conditions, indexes."""
    ddb = client(endpoint, "dynamodb")
    ranged_table(ddb, "partitions")
    fill(ddb, "partitions", {"run-a": 40, "run-b": 7, "run-c": 0})
    pk = {":p": {"S": "run-b"}}
    assert query_all(ddb, TableName="partitions", KeyConditionExpression="pk = :p", ExpressionAttributeValues=pk) == [
        ("run-b", i) for i in range(7)
    ]
    paged = query_all(
        ddb,
        TableName="partitions",
        KeyConditionExpression="pk = :p AND sk >= :s",
        ExpressionAttributeValues={":p": {"S": "run-a"}, ":s": {"N": "10"}},
        ScanIndexForward=False,
        PaginationConfig={"PageSize": 4},
    )
    assert paged == [("run-a", i) for i in range(39, 9, -1)]
    none = {":p": {"S": "run-c"}}
    assert (
        query_all(ddb, TableName="partitions", KeyConditionExpression="pk = :p", ExpressionAttributeValues=none) == []
    )
    by_colour = query_all(
        ddb,
        TableName="partitions",
        IndexName="by-colour",
        KeyConditionExpression="colour = :c",
        ExpressionAttributeValues={":c": {"S": "g"}},
    )
    assert sorted(by_colour) == sorted([("run-a", i) for i in range(1, 40, 3)] + [("run-b", i) for i in (1, 4)])


def test_a_table_query_reads_its_own_partition_only(monkeypatch):
    """moto compared every item of the table with the queried partition key, each page again."""
    from moto import mock_aws
    from moto.dynamodb.models.dynamo_type import DynamoType

    assert "dynamodb_query_reads_one_partition" in emulator.apply_fixes()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-west-2")
        ranged_table(ddb, "partitions")
        fill(ddb, "partitions", {"small": 5, "large": 600})
        compared = count_calls(monkeypatch, (DynamoType, "__eq__"))
        got = query_all(
            ddb,
            TableName="partitions",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "small"}},
            PaginationConfig={"PageSize": 2},
        )
    assert got == [("small", i) for i in range(5)]
    assert compared[0] < 100, f"{compared[0]} key comparisons to read 5 items in 3 pages from a table of 605"


def count_casts(monkeypatch) -> list[int]:
    """From now on, ``[n]``: how many DynamoDB values moto has cast (its comparisons cast both sides)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    return count_calls(monkeypatch, (DynamoType, "cast_value"))


def test_an_index_query_casts_no_value_of_items_it_does_not_answer(monkeypatch):
    """moto sorted every item of the table by its keys, then compared each with the index's key,
    casting both values every time: an index query cost grew with the whole table."""
    from moto import mock_aws

    assert "dynamodb_query_reads_one_partition" in emulator.apply_fixes()

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-west-2")
        ranged_table(ddb, "partitions")
        fill(ddb, "partitions", {"small": 5})
        for start in range(0, 3000, 25):  # a large partition none of whose items the query answers
            ddb.batch_write_item(
                RequestItems={
                    "partitions": [
                        {"PutRequest": {"Item": {"pk": {"S": "large"}, "sk": {"N": str(i)}, "colour": {"S": "z"}}}}
                        for i in range(start, start + 25)
                    ]
                }
            )
        casts = count_casts(monkeypatch)
        got = query_all(
            ddb,
            TableName="partitions",
            IndexName="by-colour",
            KeyConditionExpression="colour = :c",
            ExpressionAttributeValues={":c": {"S": "b"}},
        )
    assert got == [("small", 2)]
    assert casts[0] < 100, f"{casts[0]} values cast to answer an index query of 1 item in a table of 3,005"


def test_a_range_condition_casts_no_value_of_the_partition_items_it_does_not_answer(monkeypatch):
    """A run's counter items (``begins_with(sk, "COUNT#")``) share the run's partition with its shard
    items: moto sorted and cast every one of them to answer."""
    from moto import mock_aws

    assert "dynamodb_query_reads_one_partition" in emulator.apply_fixes()

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-west-2")
        ddb.create_table(
            TableName="runs",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
            BillingMode="PAY_PER_REQUEST",
        )
        keys = [f"SHARD#{i:020d}" for i in range(3000)] + [f"COUNT#{i:02d}" for i in (3, 1, 2)] + ["RUN"]
        for start in range(0, len(keys), 25):
            ddb.batch_write_item(
                RequestItems={
                    "runs": [
                        {"PutRequest": {"Item": {"pk": {"S": "RUN#r"}, "sk": {"S": k}}}}
                        for k in keys[start : start + 25]
                    ]
                }
            )
        casts = count_casts(monkeypatch)
        got = ddb.query(
            TableName="runs",
            KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
            ExpressionAttributeValues={":p": {"S": "RUN#r"}, ":c": {"S": "COUNT#"}},
        )["Items"]
        between = ddb.query(
            TableName="runs",
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":p": {"S": "RUN#r"}, ":a": {"S": "COUNT#02"}, ":b": {"S": "RUN"}},
            ScanIndexForward=False,
        )["Items"]
    assert [i["sk"]["S"] for i in got] == ["COUNT#01", "COUNT#02", "COUNT#03"]
    assert [i["sk"]["S"] for i in between] == ["RUN", "COUNT#03", "COUNT#02"]
    assert casts[0] < 200, f"{casts[0]} values cast to answer two queries of 3 items in a partition of 3,004"


# Every kind of attribute value, nested ones too; B and BS hold bytes, which moto's serializer encodes.
EVERY_KIND = {
    "empty": {"S": ""},
    "text": {"S": 'é "quoted" \\ text'},
    "number": {"N": "-1.50"},
    "no": {"BOOL": False},
    "nothing": {"NULL": True},
    "texts": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "bytes": {"B": b"\x00\xff"},
    "byte_sets": {"BS": [b"a", b"\x01"]},
    "map": {"M": {"a": {"S": "x"}, "b": {"L": [{"N": "1"}, {"M": {}}, {"L": []}]}}},
    "map_with_bytes": {"M": {"z": {"B": b"z"}}},
    "list": {"L": [{"S": "y"}, {"BOOL": True}, {"NS": ["3"]}]},
}


def test_item_values_are_answered_as_moto_serializes_them():
    """The fix writes a value as stored only where that is moto's own answer, byte for byte."""
    from moto.core.responses import get_service_model
    from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class

    assert "dynamodb_items_serialized_as_stored" in emulator.apply_fixes()
    as_stored = BaseJSONSerializer._serialize_type_structure
    operation = get_service_model("dynamodb").operation_model("Query")
    serializer_class = get_serializer_class("dynamodb", "json")
    items = [EVERY_KIND, {"pk": {"S": "p"}, "only": {"M": {"deep": {"M": {"x": {"NULL": True}}}}}}, {}]
    answer = {"Items": items, "Count": 3, "ScannedCount": 3, "LastEvaluatedKey": {"pk": {"S": "p"}}}

    def serialized() -> str:
        body = serializer_class(operation_model=operation, value_picker=XFormedAttributePicker()).serialize(answer)
        return body["body"]

    fast = serialized()
    try:
        BaseJSONSerializer._serialize_type_structure = as_stored.__wrapped__
        stock = serialized()
    finally:
        BaseJSONSerializer._serialize_type_structure = as_stored
    assert fast == stock
    assert json.loads(fast)["Items"][0]["bytes"] == {"B": "AP8="}


def test_a_query_answer_is_not_walked_value_by_value(monkeypatch, endpoint):
    """moto's serializer looked each AttributeValue member up under several spellings, for every
    value of every item: 0.45 s of a status query returning 269 shard items."""
    from moto import mock_aws
    from moto.core.serialize import AttributePicker

    assert "dynamodb_items_serialized_as_stored" in emulator.apply_fixes()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-west-2")
        ranged_table(ddb, "wide")
        item = {k: v for k, v in EVERY_KIND.items() if k not in ("bytes", "byte_sets", "map_with_bytes")}
        for start in range(0, 100, 25):
            ddb.batch_write_item(
                RequestItems={
                    "wide": [
                        {"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"N": str(i)}, "colour": {"S": "r"}, **item}}}
                        for i in range(start, start + 25)
                    ]
                }
            )
        picked = count_calls(monkeypatch, (AttributePicker, "__call__"))
        got = ddb.query(
            TableName="wide", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
        )
    assert len(got["Items"]) == 100
    assert got["Items"][7]["map"] == item["map"] and got["Items"][7]["sk"] == {"N": "7"}
    assert picked[0] < 50, f"{picked[0]} member look-ups to answer 100 items of 12 attributes"

    # and through the emulator, values holding bytes too
    ddb = client(endpoint, "dynamodb")
    ranged_table(ddb, "every-kind")
    ddb.put_item(TableName="every-kind", Item={"pk": {"S": "p"}, "sk": {"N": "1"}, "colour": {"S": "r"}, **EVERY_KIND})
    back = ddb.query(
        TableName="every-kind", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
    )
    assert back["Items"] == [{"pk": {"S": "p"}, "sk": {"N": "1"}, "colour": {"S": "r"}, **EVERY_KIND}]


# -- S3: a plain object GET answered from moto's backend ------------------------------------------------
FAST_GET = "s3_gets_answered_directly"
OBJECT = bytes(range(256)) * 4  # 1,024 bytes
ITS_ETAG = object()  # stands for the object's ETag in a request's headers (known once the object is put)
# (what, path, headers, query): every GET below is asked of moto with and without the fix
PLAIN_GETS = [
    ("whole", "/reads/obj", {}, ""),
    ("first byte", "/reads/obj", {"Range": "bytes=0-0"}, ""),
    ("range", "/reads/obj", {"Range": "bytes=10-19"}, ""),
    ("open-ended", "/reads/obj", {"Range": "bytes=1000-"}, ""),
    ("suffix", "/reads/obj", {"Range": "bytes=-5"}, ""),
    ("suffix longer than the object", "/reads/obj", {"Range": "bytes=-5000"}, ""),
    ("end past the end", "/reads/obj", {"Range": "bytes=1020-99999"}, ""),
    ("empty object", "/reads/empty", {}, ""),
    ("key of several characters", "/reads/dir/a+b=c,d~e.h5", {"Range": "bytes=3-6"}, ""),
]
LEFT_TO_MOTO = [
    ("start past the end", "/reads/obj", {"Range": "bytes=1024-"}, ""),
    ("empty suffix", "/reads/obj", {"Range": "bytes=-0"}, ""),
    ("range of an empty object", "/reads/empty", {"Range": "bytes=0-"}, ""),
    ("two ranges", "/reads/obj", {"Range": "bytes=0-1,5-6"}, ""),
    ("reversed range", "/reads/obj", {"Range": "bytes=5-3"}, ""),
    ("missing key", "/reads/nothing", {"Range": "bytes=0-9"}, ""),
    ("missing bucket", "/no-such-bucket/obj", {}, ""),
    ("if-none-match", "/reads/obj", {"If-None-Match": ITS_ETAG}, ""),
    ("if-match", "/reads/obj", {"If-Match": '"other"', "Range": "bytes=0-9"}, ""),
    ("if-modified-since", "/reads/obj", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, ""),
    ("checksum mode", "/reads/obj", {"x-amz-checksum-mode": "ENABLED"}, ""),
    ("query", "/reads/obj", {"Range": "bytes=0-9"}, "response-content-type=text/plain"),
    ("percent-escaped key", "/reads/with%20space.h5", {}, ""),
]


def sigv4(method: str, path: str, query: str = "", body: bytes = b"", host: str = "localhost", **headers) -> dict:
    """The headers of an S3 request signed (SigV4) as obstore and boto3 sign theirs; Host is the client's to send."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"http://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method=method, url=url, data=body, headers={**headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    )
    SigV4Auth(Credentials("testing", "testing"), "s3", "us-west-2").add_auth(request)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items() if k.lower() != "host"}


def comparable(status: int | str, headers, body: bytes) -> tuple:
    """An answer as a client reads it: request ids (in the headers, in an error's XML) and the date left out."""
    import re

    kept = sorted((k.lower(), v) for k, v in headers if k.lower() not in ("x-amzn-requestid", "date"))
    return int(str(status).split()[0]), kept, re.sub(rb"<RequestId>[^<]*</RequestId>", b"", body)


@pytest.fixture
def moto_apps():
    """moto's server app in this process, with the fix and as shipped (test clients), holding a bucket
    ``reads`` of a few objects."""
    import functools

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.s3.models import s3_backends
    from werkzeug.test import Client

    assert FAST_GET in emulator.apply_fixes()
    app = DomainDispatcherApplication(create_backend_app)
    fast, stock = Client(app), Client(functools.partial(DomainDispatcherApplication.__call__.__wrapped__, app))
    config = (
        b"<CreateBucketConfiguration><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>"
    )
    assert stock.put("/reads", data=config, headers=sigv4("PUT", "/reads", body=config)).status_code == 200
    meta = {"Content-Type": "application/x-hdf5", "x-amz-meta-colour": "blue"}
    for key, body in (("obj", OBJECT), ("empty", b""), ("dir/a+b=c,d~e.h5", OBJECT), ("with%20space.h5", OBJECT)):
        put = stock.put(f"/reads/{key}", data=body, headers=sigv4("PUT", f"/reads/{key}", body=body, **meta))
        assert put.status_code == 200
    yield app, fast, stock
    backend = s3_backends["123456789012"]["aws"]  # the next test puts the bucket anew
    dict.clear(backend.buckets["reads"].keys)  # every version of every key, delete markers too
    backend.delete_bucket("reads")


def ask(client, path: str, headers: dict, query: str, etag: str) -> tuple:
    headers = {k: etag if v is ITS_ETAG else v for k, v in headers.items()}
    got = client.get(path, query_string=query, headers=sigv4("GET", path, query, **headers))
    return comparable(got.status, got.headers.items(), got.get_data())


def moto_invocations(monkeypatch) -> list[int]:
    """From now on, ``[n]``: how many requests reached moto's flask app (and its S3Response)."""
    import flask
    from moto.s3.responses import S3Response

    return count_calls(monkeypatch, (flask.Flask, "__call__"), (S3Response, "key_response"))


def test_plain_s3_gets_answer_as_moto_does(moto_apps, monkeypatch):
    """Status, body and the headers a client reads (ETag, Last-Modified, Content-Length, Content-Range,
    Content-Type, Accept-Ranges, metadata...) are moto's own, for every GET the fast path answers and
    every one it leaves to moto; the key's state and moto's request counter move as under moto."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.s3.models import s3_backends

    app, fast, stock = moto_apps
    etag = stock.get("/reads/obj", headers=sigv4("GET", "/reads/obj")).headers["ETag"]
    calls = moto_invocations(monkeypatch)
    for what, path, headers, query in PLAIN_GETS + LEFT_TO_MOTO:
        calls[0] = 0
        answered = ask(fast, path, headers, query, etag)
        by_fast_path = calls[0] == 0
        assert answered == ask(stock, path, headers, query, etag), what
        assert by_fast_path == ((what, path, headers, query) in PLAIN_GETS), what
    status, headers, body = ask(fast, "/reads/obj", {"Range": "bytes=10-19"}, "", etag)
    assert (status, body) == (206, OBJECT[10:20])
    assert {"etag", "last-modified", "content-range", "accept-ranges", "x-amz-meta-colour"} <= dict(headers).keys()
    assert dict(headers)["content-type"] == "application/x-hdf5"

    key = s3_backends["123456789012"]["aws"].buckets["reads"].keys["obj"]
    moved = {}
    for name, client in (("fast", fast), ("moto", stock)):
        tick, counted = key._tick, ActionAuthenticatorMixin.request_count
        client.get("/reads/obj", headers=sigv4("GET", "/reads/obj", Range="bytes=0-9"))
        moved[name] = (key._tick - tick, ActionAuthenticatorMixin.request_count - counted)
    assert moved["fast"] == moved["moto"] == (2, 1)


def test_a_plain_ranged_get_does_not_reach_moto_s3_code(moto_apps, monkeypatch):
    """moto answered every GET through flask's routing and its S3Response (~0.65 ms of CPU per ranged
    GET); read over HTTP (waitress, obstore, as the granule readers read), a plain one reaches neither,
    and moto still answers what the fast path leaves to it."""
    import waitress

    app, fast, stock = moto_apps
    server = waitress.create_server(emulator.Isolation(app, ["dynamodb"]), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}"
        reader = S3RangeReader({"accessKeyId": "testing", "secretAccessKey": "testing", "endpointUrl": url})
        calls = moto_invocations(monkeypatch)
        got, version = reader.get_ranges_versioned("reads", "obj", [(0, 8), (100, 356), (1000, 1024)])
        assert [bytes(g) for g in got] == [OBJECT[0:8], OBJECT[100:356], OBJECT[1000:1024]]
        assert version.size == len(OBJECT) and version.etag
        assert reader.get("reads", "dir/a+b=c,d~e.h5", 5, 9) == OBJECT[5:9]
        assert calls[0] == 0, "a plain ranged GET went through moto's flask app"
        with pytest.raises(GranuleReadError) as missing:
            reader.get("reads", "nothing", 0, 8)
        assert missing.value.kind == FailureKind.MISSING and "NoSuchKey" in str(missing.value)
        assert calls[0] == 2  # moto answered it: its flask app, its S3Response
    finally:
        server.close()


def raw_get(endpoint: str, path: str, query: str = "", **headers) -> tuple:
    import http.client
    from urllib.parse import urlparse

    host = urlparse(endpoint).netloc
    connection = http.client.HTTPConnection(host, timeout=10)
    try:
        target = path + (f"?{query}" if query else "")
        connection.request("GET", target, headers=sigv4("GET", path, query, host=host, **headers))
        answer = connection.getresponse()
        return comparable(answer.status, answer.getheaders(), answer.read())
    finally:
        connection.close()


def test_the_emulator_answers_plain_gets_as_moto_does(endpoint):
    """Over HTTP, the emulator's answers are those moto gives the same GET with a query it ignores
    (``x-id=GetObject``, which the fast path leaves to moto)."""
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket="http-reads", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_object(Bucket="http-reads", Key="granules/obj.h5", Body=OBJECT, Metadata={"colour": "blue"})
    path = "/http-reads/granules/obj.h5"
    for headers in (
        {},
        {"Range": "bytes=10-19"},
        {"Range": "bytes=-5"},
        {"Range": "bytes=1000-"},
        {"Range": "bytes=5000-"},
    ):
        answered = raw_get(endpoint, path, **headers)
        assert answered == raw_get(endpoint, path, "x-id=GetObject", **headers), headers
    assert raw_get(endpoint, path, Range="bytes=10-19")[::2] == (206, OBJECT[10:20])
    assert raw_get(endpoint, path, Range="bytes=5000-")[0] == 416
    missing = raw_get(endpoint, "/http-reads/granules/gone.h5", Range="bytes=0-9")
    assert missing[0] == 404 and b"<Code>NoSuchKey</Code>" in missing[2]
    assert missing == raw_get(endpoint, "/http-reads/granules/gone.h5", "x-id=GetObject", Range="bytes=0-9")


def test_gets_whose_answer_depends_on_more_are_left_to_moto(moto_apps, monkeypatch):
    """A versioned bucket, a delete marker, moto counting requests towards checking signatures: moto answers."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    app, fast, stock = moto_apps
    versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
    path = "/reads/obj"
    calls = moto_invocations(monkeypatch)

    def same_answer_from_moto(headers: dict) -> None:
        calls[0] = 0
        assert ask(fast, path, headers, "", "") == ask(stock, path, headers, "", "")
        assert calls[0] == 4  # both reached moto's flask app and its S3Response

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 1000)  # moto counts requests, then checks
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    same_answer_from_moto({"Range": "bytes=0-9"})
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    put = stock.put(
        "/reads", query_string="versioning", data=versioning, headers=sigv4("PUT", "/reads", "versioning", versioning)
    )
    assert put.status_code == 200
    same_answer_from_moto({"Range": "bytes=0-9"})
    assert stock.delete(path, headers=sigv4("DELETE", path)).status_code == 204  # a delete marker on top
    same_answer_from_moto({})

"""The embedded emulator isolates what moto's threads do not: DynamoDB writes and SQS queue state.

moto serves each request on a thread of its own and its DynamoDB transaction is a check, then a
write, then (on a failed condition) a restore of a deep copy of the whole table taken at its
start: concurrent transactions both apply, or a cancelled one erases another's write.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import boto3
import pytest
from botocore.config import Config

from producer.stack import emulator
from producer.stack import lifecycle as stack

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


def client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-west-2", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(max_pool_connections=32, retries={"max_attempts": 1}))


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


def test_concurrent_conditional_transactions_apply_once(endpoint):
    ddb = client(endpoint, "dynamodb")
    table = "isolation"
    key = {"AttributeName": "pk"}
    ddb.create_table(TableName=table, KeySchema=[{**key, "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{**key, "AttributeType": "S"}])
    for start in range(0, TABLE_ITEMS, 25):
        ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"other{i}"}, "st": {"S": "DONE"}}}} for i in range(start, start + 25)
        ]})
    ddb.put_item(TableName=table, Item={"pk": {"S": "run"}, "n": {"N": "0"}})

    def finish(shard: str):  # like RunStatusStore.finish: RUNNING -> DONE, counted on the run item
        def call() -> bool:
            try:
                ddb.transact_write_items(TransactItems=[
                    {"Update": {"TableName": table, "Key": {"pk": {"S": shard}}, "UpdateExpression": "SET st = :done",
                                "ConditionExpression": "st = :running",
                                "ExpressionAttributeValues": {":done": {"S": "DONE"}, ":running": {"S": "RUNNING"}}}},
                    {"Update": {"TableName": table, "Key": {"pk": {"S": "run"}}, "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                ])
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
    poller = threading.Thread(target=lambda: got.extend(
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10, VisibilityTimeout=60).get("Messages", [])))
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
    s3 = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=x/20260101/us-west-2/s3/aws4_request, SignedHeaders=host",
          "PATH_INFO": "/bucket/key"}
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

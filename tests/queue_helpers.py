"""Drive the real Lambda handler with real SQS records from the embedded stack, in this process."""

from __future__ import annotations

import importlib
import json
import time
import uuid
from pathlib import Path

import boto3

from producer.cli import main as producer_main
from producer.stack import upload_granules
from shared.deployed import load_stack
from shared.runstatus import RunStatusStore
from shared.settings import StackOutputs
from worker import handler
from worker.runner import LambdaContext, read_mapping, sqs_event

SECRET_PARTS = ("AKIATESTREADKEY", "read-secret-value", "read-session-token")


def credentials_file(folder: Path, expiration: str = "2099-01-01T00:00:00+00:00", name: str = "creds.json") -> Path:
    path = folder / name
    path.write_text(
        json.dumps(
            {
                "accessKeyId": SECRET_PARTS[0],
                "secretAccessKey": SECRET_PARTS[1],
                "sessionToken": SECRET_PARTS[2],
                "expiration": expiration,
            }
        )
    )
    return path


def worker_environment(monkeypatch) -> StackOutputs:
    """The function's own environment, as Lambda would set it; a fresh handler state."""
    outputs = load_stack()
    for key, value in read_mapping(outputs.function_name).environment.items():
        monkeypatch.setenv(key, value)
    importlib.reload(handler)  # Powertools reads its settings from the environment at import, as in Lambda
    return outputs


def upload(bucket: str, files: list[Path], prefix: str = "ATL06/") -> str:
    return upload_granules(files, bucket, prefix)


def submit(catalog: Path, creds: Path, run_id: str, *extra: str) -> int:
    return producer_main(
        ["--catalog", str(catalog), "--yes", "--credentials-file", str(creds), "--run-id", run_id, *extra]
    )


def deliver(outputs: StackOutputs, seconds_left: float = 300.0, visibility: int = 1) -> list[dict]:
    """Receive one batch (batch size 1) and invoke the handler like the event source mapping.

    Returns the handler's batchItemFailures; successful records are deleted. A short visibility
    timeout brings failed records back quickly.
    """
    sqs = boto3.client("sqs")
    got = sqs.receive_message(
        QueueUrl=outputs.queue_url,
        MaxNumberOfMessages=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=visibility,
        WaitTimeSeconds=0,
    )
    messages = got.get("Messages", [])
    if not messages:
        return []
    context = LambdaContext(
        outputs.function_name,
        f"arn:aws:lambda:us-west-2:123456789012:function:{outputs.function_name}",
        2048,
        time.monotonic() + seconds_left,
        aws_request_id=str(uuid.uuid4()),
    )
    response = handler.lambda_handler(sqs_event(messages, outputs.queue_arn), context)
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=outputs.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [m for m in messages if m["MessageId"] in failed]


def queue_counts(url: str) -> tuple[int, int]:
    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def drain(outputs: StackOutputs, limit: int = 500) -> int:
    """Deliver until the queue holds nothing, waiting out short visibility timeouts. Returns deliveries."""
    deliveries = 0
    while deliveries < limit:
        visible, hidden = queue_counts(outputs.queue_url)
        if visible == 0 and hidden == 0:
            return deliveries
        if visible == 0:
            time.sleep(0.5)
            continue
        deliver(outputs)
        deliveries += 1
    raise AssertionError(f"queue not drained after {limit} deliveries")


def empty_queue(url: str) -> None:
    """Delete every visible message of a queue (PurgeQueue is allowed once a minute)."""
    sqs = boto3.client("sqs")
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages"):
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )


def runs(outputs: StackOutputs) -> RunStatusStore:
    return RunStatusStore(outputs.run_table)

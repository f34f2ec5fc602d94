"""Reading the dead-letter queue without losing sight of any message.

SQS has no "list": a message is seen by receiving it, which hides it for its visibility timeout.
A sweep receives until the queue has nothing more to give, holding every message hidden so that
none is returned twice and none is missed; the caller then deletes (moves) or releases each one.
Released messages are visible again at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.envelope import FAILURE_REASON, RECORDED, peek_ids

# How long a sweep keeps messages hidden. Long enough to move a whole DLQ by hand; if a sweep
# dies, its messages come back after this on their own.
HOLD_SECONDS = 300
# A receive waits this long for messages, so SQS asks all its servers, not a sample: an empty
# answer then means the queue has nothing visible.
WAIT_SECONDS = 1
SQS_BATCH = 10


class DeadLetter(BaseModel):
    """One received DLQ message, held hidden until deleted or released."""

    message_id: str
    receipt_handle: str
    body: str
    run_id: str | None
    shard_key: int | None
    reason: str | None
    shard_recorded_failed: bool | None  # None: dead-lettered by the queue itself, not the worker

    @classmethod
    def of(cls, message: dict[str, Any]) -> DeadLetter:
        attributes = message.get("MessageAttributes") or {}
        recorded = attributes.get(RECORDED, {}).get("StringValue")
        run_id, shard_key = peek_ids(message["Body"])
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            run_id=run_id,
            shard_key=shard_key,
            reason=attributes.get(FAILURE_REASON, {}).get("StringValue"),
            shard_recorded_failed=None if recorded is None else recorded == "yes",
        )


def sweep(sqs: Any, queue_url: str, hold_seconds: int = HOLD_SECONDS) -> list[DeadLetter]:
    """Every message of the queue, received and held hidden for ``hold_seconds``."""
    held: dict[str, DeadLetter] = {}
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=SQS_BATCH,
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=WAIT_SECONDS,
            MessageAttributeNames=["All"],
        )
        messages = got.get("Messages", [])
        if not messages:
            return list(held.values())
        for m in messages:  # a message seen again (the hold ran out) keeps its newest receipt
            held[m["MessageId"]] = DeadLetter.of(m)


def release(sqs: Any, queue_url: str, letters: list[DeadLetter]) -> None:
    """Make held messages visible again at once."""
    for i in range(0, len(letters), SQS_BATCH):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(j), "ReceiptHandle": d.receipt_handle, "VisibilityTimeout": 0}
                for j, d in enumerate(letters[i : i + SQS_BATCH])
            ],
        )

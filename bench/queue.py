"""``python -m bench.queue``: how the embedded emulator's SQS time grows with a queue's length.

Starts a bare emulator (``python -m producer.stack.emulator``, nothing deployed), creates a
standard queue and fills it the way ``python -m producer submit`` does: SendMessageBatch of 10
messages (a shard message's size), one batch after the other. Prints the mean time of the first
and last 10 batches and the total, then, with the queue full, the mean time of a ReceiveMessage
(one message, as the local runner asks) and of a GetQueueAttributes of the three message counts.
A linear-time emulator sends its last batches as fast as its first.

    python -m bench.queue                       # 1,400 messages
    python -m bench.queue --compare             # first with moto's SQS as shipped (the "before")
    python -m bench.queue --without-fix sqs_scans_read_the_clock_once   # one fix's worth
    python -m bench.queue --messages 3000 --json out.json

The last line printed is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.measures import add_emulator_options, emit, per_emulator

SQS_FIXES = ["sqs_counts_only_when_asked", "sqs_scans_read_the_clock_once"]  # the emulator's fixes to moto's SQS
COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
BODY_BYTES = 300  # a shard message: run id, shard key, catalog location, credentials parameter name
EDGE = 10  # batches averaged at each end
PROBES = 10  # receives and attribute reads timed on the full queue


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=1400, help="messages sent (default 1400: a run of ~1,340 shards)")
    p.add_argument(
        "--batch",
        type=int,
        default=10,
        choices=range(1, 11),
        metavar="N",
        help="messages per SendMessageBatch (1..10, default 10)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help=f"run twice: first with the emulator's fixes to SQS left out ({', '.join(SQS_FIXES)}: "
        "moto's SQS as shipped), then with them",
    )
    add_emulator_options(p)
    args = p.parse_args(argv)
    if args.messages < args.batch * 2 * EDGE:
        p.error(f"--messages must be at least {args.batch * 2 * EDGE} ({2 * EDGE} batches)")
    return args


def client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"max_attempts": 1}),
    )


def fill(endpoint: str, messages: int, batch: int) -> dict:
    """Send ``messages`` in batches, time each batch; then probe the full queue."""
    sqs = client(endpoint)
    url = sqs.create_queue(QueueName="bench-queue", Attributes={"VisibilityTimeout": "1800"})["QueueUrl"]
    body = json.dumps({"shard_key": 0, "pad": "x" * BODY_BYTES})[:BODY_BYTES]
    batches: list[float] = []
    began = time.perf_counter()
    for start in range(0, messages, batch):
        entries = [{"Id": str(i), "MessageBody": body} for i in range(min(batch, messages - start))]
        t0 = time.perf_counter()
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        batches.append(time.perf_counter() - t0)
        if failed:
            raise SystemExit(f"SendMessageBatch failed: {failed}")
    total = time.perf_counter() - began

    def mean_ms(call) -> float:
        t0 = time.perf_counter()
        for _ in range(PROBES):
            call()
        return (time.perf_counter() - t0) / PROBES * 1000

    receive_ms = mean_ms(lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=1800))
    counts_ms = mean_ms(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS))
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]
    return {
        "messages": messages,
        "batch": batch,
        "batches": len(batches),
        "first_batches_ms": sum(batches[:EDGE]) / EDGE * 1000,
        "last_batches_ms": sum(batches[-EDGE:]) / EDGE * 1000,
        "send_total_s": total,
        "receive_full_queue_ms": receive_ms,
        "counts_full_queue_ms": counts_ms,
        "counts": {k: int(v) for k, v in counts.items()},
    }


def report(name: str, r: dict) -> str:
    return (
        f"{name:<16} {r['batches']} SendMessageBatch of {r['batch']}: first {EDGE} {r['first_batches_ms']:7.1f} ms"
        f" a batch, last {EDGE} {r['last_batches_ms']:7.1f} ms, total {r['send_total_s']:6.2f} s;"
        f" full queue: ReceiveMessage {r['receive_full_queue_ms']:6.1f} ms,"
        f" GetQueueAttributes (3 counts) {r['counts_full_queue_ms']:6.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = {"moto as shipped": SQS_FIXES} if args.compare else {}
    runs["emulator"] = args.without_fix
    results = per_emulator(runs, lambda endpoint, _: fill(endpoint, args.messages, args.batch), report)
    emit({"moto_as_shipped" if name != "emulator" else name: r for name, r in results.items()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

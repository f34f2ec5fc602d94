"""A local stand-in for Lambda's SQS event source mapping, driving the real handler.

It reads the mapping from the (emulated) Lambda service: queue, batch size, maximum concurrency,
and the function's timeout, reserved concurrency and environment. Each of up to N worker
processes long-polls the queue, invokes ``worker.handler.lambda_handler`` with a Lambda-like
context (deadline from the function timeout), and deletes the records the handler did not
report as failed. Failed records are left alone, so the queue's redrive policy moves them to the
DLQ after maxReceiveCount receives. Ctrl-C stops polling; a record in flight is either finished
or left on the queue for redelivery: none is lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from pydantic import BaseModel

POLL_WAIT_SECONDS = 2  # long-poll length: short, so a stop request is honoured quickly
MAX_DEATHS_PER_WORKER = 5  # a worker that keeps dying (say, it cannot import) is not restarted forever


class Mapping(BaseModel):
    """What the runner takes from the deployed event source mapping and function."""

    function_name: str
    function_arn: str
    queue_arn: str
    queue_url: str
    batch_size: int
    concurrency: int
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]


def read_mapping(function_name: str, lambda_client: Any = None, sqs: Any = None) -> Mapping:
    lam = lambda_client or boto3.client("lambda")
    sqs = sqs or boto3.client("sqs")
    function = lam.get_function(FunctionName=function_name)
    config = function["Configuration"]
    mappings = [m for m in lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"] if ":sqs:" in m["EventSourceArn"]]
    if not mappings:
        raise RuntimeError(f"function {function_name} has no SQS event source mapping")
    mapping = mappings[0]
    reserved = function.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    maximum = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    limits = [c for c in (reserved, maximum) if c]
    queue_name = mapping["EventSourceArn"].rsplit(":", 1)[-1]
    return Mapping(
        function_name=config["FunctionName"],
        function_arn=config["FunctionArn"],
        queue_arn=mapping["EventSourceArn"],
        queue_url=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"],
        batch_size=int(mapping.get("BatchSize") or 1),
        concurrency=min(limits) if limits else 1,
        timeout_s=int(config.get("Timeout", 3)),
        memory_mb=int(config.get("MemorySize", 128)),
        environment={k: str(v) for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()},
    )


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handler and Powertools use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline: float
    aws_request_id: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = "local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda builds from received SQS messages."""
    region = queue_arn.split(":")[3]
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for m in messages]}


def poll_loop(mapping: Mapping, stop: Any, busy: Any, slot: int, visibility_timeout: int | None, log_path: str | None = None) -> None:
    """One worker process: receive, invoke, delete what succeeded, until asked to stop.

    ``busy[slot]`` is 1 while this process holds records; the parent clears it if the process dies.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if log_path:  # the function's log lines go where CloudWatch Logs would keep them
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    os.environ.update(mapping.environment)
    from worker.handler import lambda_handler  # imported after the function's environment is set

    sqs = boto3.client("sqs")
    extra = {"VisibilityTimeout": visibility_timeout} if visibility_timeout else {}
    while not stop.is_set():
        got = sqs.receive_message(
            QueueUrl=mapping.queue_url, MaxNumberOfMessages=mapping.batch_size, WaitTimeSeconds=POLL_WAIT_SECONDS,
            AttributeNames=["All"], MessageAttributeNames=["All"], **extra,
        )
        messages = got.get("Messages", [])
        if not messages:
            continue
        busy[slot] = 1
        try:
            context = LambdaContext(mapping.function_name, mapping.function_arn, mapping.memory_mb,
                                    time.monotonic() + mapping.timeout_s, aws_request_id=str(uuid.uuid4()))
            try:
                response = lambda_handler(sqs_event(messages, mapping.queue_arn), context)
                failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
            except Exception:  # a function error fails the whole batch, as in Lambda
                failed = {m["MessageId"] for m in messages}
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(QueueUrl=mapping.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ])
        finally:
            busy[slot] = 0


def queue_drained(sqs: Any, queue_url: str) -> bool:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return all(int(attrs.get(k, 0)) == 0 for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"))


def run(
    mapping: Mapping,
    concurrency: int | None = None,
    until_empty: bool = False,
    visibility_timeout: int | None = None,
    log=print,
    log_path: str | None = None,
) -> int:
    """Run worker processes until Ctrl-C (or, with ``until_empty``, until the queue is drained).

    ``log_path`` collects the function's own (JSON) log lines, as CloudWatch Logs would.
    """
    workers = min(mapping.concurrency, concurrency or mapping.concurrency)
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited clients, threads or locks
    stop, busy = ctx.Event(), ctx.Array("b", workers)

    def start(slot: int) -> Any:
        process = ctx.Process(target=poll_loop, args=(mapping, stop, busy, slot, visibility_timeout, log_path), daemon=True)
        process.start()
        return process

    procs = [start(slot) for slot in range(workers)]
    log(f"polling {mapping.queue_url} with {workers} worker process(es) (batch size {mapping.batch_size}, timeout {mapping.timeout_s} s)"
        + (f"; function logs: {log_path}" if log_path else ""))
    sqs = boto3.client("sqs")
    quiet, deaths, code = 0, 0, 0
    try:
        while True:
            time.sleep(1.0)
            for slot, process in enumerate(procs):
                if not process.is_alive():
                    # Like Lambda replacing a crashed execution environment: its records were not
                    # deleted, so the queue redelivers them after the visibility timeout.
                    deaths += 1
                    log(f"worker process {process.pid} died (exit code {process.exitcode}); starting another")
                    busy[slot] = 0
                    procs[slot] = start(slot)
            if deaths > MAX_DEATHS_PER_WORKER * workers:
                log(f"giving up: {deaths} worker processes died (see the function log)")
                code = 1
                break
            if until_empty:
                quiet = quiet + 1 if not any(busy[:]) and queue_drained(sqs, mapping.queue_url) else 0
                if quiet >= 3:  # the queue's counts are approximate: drained three checks in a row
                    break
    except KeyboardInterrupt:
        log("stopping: letting records in flight finish (unfinished ones return to the queue)")
    stop.set()
    for p in procs:
        p.join(timeout=mapping.timeout_s + 10)
        if p.is_alive():
            p.terminate()  # its record was not deleted, so the queue redelivers it
    if deaths:
        log(f"{deaths} worker process(es) died during the run; records they held return to the queue")
    return code

"""A local stand-in for Lambda's SQS event source mapping, driving the real handler.

It reads the mapping from the (emulated) Lambda service: queue, batch size, maximum concurrency,
and the function's timeout, reserved concurrency and environment. Each of up to N worker
processes long-polls the queue, invokes the function's handler (``worker.handler.lambda_handler``
for shards, ``worker.index_handler.lambda_handler`` for granule indexes) with a Lambda-like
context (deadline from the function timeout), and deletes the records the handler did not
report as failed. Failed records are left alone, so the queue's redrive policy moves them to the
DLQ after maxReceiveCount receives. A stop signal to the runner (SIGINT, SIGTERM, SIGHUP) stops
polling, and its workers stop with it, as they do if the runner is killed; a record in flight is
either finished and deleted or left on the queue for redelivery: none is lost. A queue that
disappears (deleted, or the embedded stack stopped) ends the run with one line saying so.

Over 400 lines because polling, signals and the worker processes' lifecycle depend on each other:
split, each part would need the others' state.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, EndpointConnectionError
from pydantic import BaseModel

from shared.envelope import peek_ids
from shared.errors import RunError, StackError
from shared.runstatus import RunStatusStore
from shared.settings import WorkerSettings
from worker.progress import Progress, Tally, summary_lines

POLL_WAIT_SECONDS = 2  # long-poll length: short, so a stop request is honoured quickly
IDLE, RECEIVING, HOLDING = 0, 1, 2  # what a worker process is doing (its slot in ``Workers.busy``)
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
    handler: str = "worker.handler.lambda_handler"  # module.function, as the function's Handler names it


def read_mapping(function_name: str, lambda_client: Any = None, sqs: Any = None) -> Mapping:
    lam = lambda_client or boto3.client("lambda")
    sqs = sqs or boto3.client("sqs")
    function = lam.get_function(FunctionName=function_name)
    config = function["Configuration"]
    mappings = [
        m
        for m in lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
        if ":sqs:" in m["EventSourceArn"]
    ]
    if not mappings:
        raise StackError(
            f"function {function_name} has no SQS event source mapping: was the stack deployed from this template.yaml?"
        )
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
        handler=config.get("Handler") or Mapping.model_fields["handler"].default,
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
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class QueueUnavailable(RunError):
    """The queue cannot be polled any more: it was deleted, or its endpoint is gone."""


# Exit codes of a worker process that found the queue unusable; the runner says why and stops.
QUEUE_GONE_EXIT, ENDPOINT_DOWN_EXIT = 3, 4
NO_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
TICK_SECONDS = 0.1  # how often the runner looks at its signals while it waits
SUPERVISE_SECONDS = 0.5  # how often the runner looks at its workers and the queue
DRAINED_CHECKS = 4  # an empty queue and idle workers this many looks in a row: drained
UNAVAILABLE_GRACE_SECONDS = 5  # with the queue gone, records in flight cannot be recorded: stop soon


def unavailable_exit(exc: BaseException) -> int | None:
    """The worker exit code for an error that no retry can mend (after botocore's own retries), else None."""
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
        return ENDPOINT_DOWN_EXIT
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NO_QUEUE_CODES:
        return QUEUE_GONE_EXIT
    return None


EMBEDDED_GONE = "the embedded stack was stopped or restarted; run python -m producer stack up and submit again"
WHAT_TO_DO = {  # (exit code, on AWS?) -> what to do
    (QUEUE_GONE_EXIT, True): "was the stack deleted? deploy it (sam deploy) and submit again",
    (ENDPOINT_DOWN_EXIT, True): "check the network and run this again",
    (QUEUE_GONE_EXIT, False): EMBEDDED_GONE,
    (ENDPOINT_DOWN_EXIT, False): EMBEDDED_GONE,
}


def unavailable(exit_code: int, queue_url: str, endpoint: str) -> QueueUnavailable:
    """What happened and what to do, in one line."""
    if exit_code == QUEUE_GONE_EXIT:
        what = f"the queue {queue_url} no longer exists"
    else:
        what = f"the queue's endpoint {endpoint} refuses connections"
    return QueueUnavailable(f"{what}: {WHAT_TO_DO[exit_code, 'amazonaws.com' in endpoint]}")


class StopRequests:
    """The stop signals (SIGINT, SIGTERM, SIGHUP) a process has received, counted, not raised.

    A handler that only records keeps every stop at a point the process chooses (between records,
    between checks), never in the middle of a receive or a delete.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _record(self, signum: int, frame: Any) -> None:
        self.received.append(signum)

    def listen(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # only there can Python handle signals
            self._previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
        return self

    def __enter__(self) -> StopRequests:
        return self.listen()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def nap(self, seconds: float) -> None:
        """Sleep, waking early when a stop signal arrives."""
        deadline = time.monotonic() + seconds
        heard = len(self.received)
        while len(self.received) == heard and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(TICK_SECONDS, left))


def poll_loop(
    mapping: Mapping,
    stop: Any,
    busy: Any,
    slot: int,
    visibility_timeout: int | None,
    log_path: str | None = None,
    runner_pid: int | None = None,
    tally: Tally | None = None,
) -> None:
    """One worker process: receive, invoke, delete what succeeded, until asked to stop.

    It stops after the record in hand when the runner sets ``stop``, when a stop signal reaches
    the process itself (a terminal's Ctrl-C or hang-up, a service manager's SIGTERM to the whole
    group) and when the runner is gone (killed: its children are re-parented). ``busy[slot]`` says
    whether it is IDLE, RECEIVING or HOLDING records; the parent resets it if the process dies.
    """
    requests = StopRequests().listen()  # for the life of the process
    runner_pid = runner_pid or os.getppid()
    if log_path:  # the function's log lines go where CloudWatch Logs would keep them
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    os.environ.update(mapping.environment)
    module, _, function = mapping.handler.rpartition(".")
    lambda_handler = getattr(importlib.import_module(module), function)  # after the function's environment is set

    def carry_on() -> bool:  # the runner's liveness first: a runner killed while holding ``stop``'s lock
        return not requests.received and os.getppid() == runner_pid and not stop.is_set()

    sqs = boto3.client("sqs")
    extra = {"VisibilityTimeout": visibility_timeout} if visibility_timeout else {}
    try:
        while True:
            # RECEIVING before the last look at ``stop``: the runner, which sets ``stop`` before it
            # kills the IDLE workers, never kills one that may have a receive under way.
            busy[slot] = RECEIVING
            if not carry_on():
                break
            messages = sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=mapping.batch_size,
                WaitTimeSeconds=POLL_WAIT_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                **extra,
            ).get("Messages", [])
            busy[slot] = HOLDING if messages else IDLE
            if messages:
                try:
                    invoke(lambda_handler, mapping, messages, sqs, tally)
                finally:
                    busy[slot] = IDLE
    except (ClientError, BotoCoreError) as exc:
        code = unavailable_exit(exc)
        if code is None:
            raise
        sys.exit(code)  # quietly: the runner explains, once, and stops the others


def invoke(lambda_handler: Any, mapping: Mapping, messages: list[dict], sqs: Any, tally: Tally | None = None) -> None:
    """Invoke the handler with one batch, as Lambda would, and delete the records it did not report as failed."""
    if tally is not None:
        for run_id in {peek_ids(m["Body"])[0] for m in messages} - _runs_told:
            if run_id is not None:
                tally.run_ids.put(run_id)
                _runs_told.add(run_id)
    context = LambdaContext(
        mapping.function_name,
        mapping.function_arn,
        mapping.memory_mb,
        time.monotonic() + mapping.timeout_s,
        aws_request_id=str(uuid.uuid4()),
    )
    try:
        response = lambda_handler(sqs_event(messages, mapping.queue_arn), context)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
    except Exception:  # a function error fails the whole batch, as in Lambda
        failed = {m["MessageId"] for m in messages}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=mapping.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    if tally is not None:
        tally.add(len(done), len(messages) - len(done))


_runs_told: set[str] = set()  # the run ids this worker process has told the runner of


QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queued(sqs: Any, queue_url: str) -> int:
    """Messages in the queue: visible, in flight and delayed (SQS's approximate counts)."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(QUEUE_COUNTS))["Attributes"]
    return sum(int(attrs.get(k, 0)) for k in QUEUE_COUNTS)


class Workers:
    """The runner's worker processes: started, replaced when they die, stopped together."""

    def __init__(self, mapping: Mapping, count: int, visibility_timeout: int | None, log_path: str | None) -> None:
        self.ctx = mp.get_context("spawn")  # fresh interpreters: no inherited clients, threads or locks
        self.stop_event, self.busy = self.ctx.Event(), self.ctx.Array("b", count)
        self.tally = Tally(self.ctx)
        self.mapping = mapping
        self.options = (visibility_timeout, log_path, os.getpid(), self.tally)
        self.deaths = 0
        self.procs = [self._start(slot) for slot in range(count)]

    def _start(self, slot: int) -> Any:
        args = (self.mapping, self.stop_event, self.busy, slot, *self.options)
        process = self.ctx.Process(target=poll_loop, args=args, daemon=True)
        process.start()
        return process

    def any_busy(self) -> bool:
        """Does a worker hold records?"""
        return HOLDING in self.busy[:]

    def replace_dead(self, log: Callable[[str], Any]) -> int | None:
        """Like Lambda replacing a crashed execution environment: the records a dead worker held were
        not deleted, so the queue redelivers them after the visibility timeout. A worker that found
        the queue unusable is not replaced: its exit code is returned, the run cannot go on."""
        for slot, process in enumerate(self.procs):
            if process.is_alive():
                continue
            if process.exitcode in (QUEUE_GONE_EXIT, ENDPOINT_DOWN_EXIT):
                return process.exitcode
            self.deaths += 1
            log(f"worker process {process.pid} died (exit code {process.exitcode}); starting another")
            self.busy[slot] = 0
            self.procs[slot] = self._start(slot)
        return None

    def stop(self, grace: float, requests: StopRequests, log: Callable[[str], Any]) -> None:
        """Let the records in flight finish (up to ``grace`` seconds), then kill what is left.

        A stop signal arriving meanwhile stops them at once. A killed worker deleted nothing of
        what it held: the queue redelivers it after the visibility timeout.
        """
        self.stop_event.set()
        for slot, process in enumerate(self.procs):
            if self.busy[slot] == IDLE:  # starting up or between polls: it holds nothing, nothing to wait for
                process.kill()
        deadline, heard = time.monotonic() + grace, len(requests.received)
        while (alive := [p.sentinel for p in self.procs if p.is_alive()]) and time.monotonic() < deadline:
            if len(requests.received) > heard:
                log("stopping now: records in flight return to the queue after its visibility timeout")
                break
            mp_connection.wait(alive, timeout=TICK_SECONDS)
        for process in self.procs:
            if process.is_alive():
                process.kill()
            process.join()


def supervise(
    workers: Workers, until_empty: bool, requests: StopRequests, log: Callable[[str], Any], progress: Progress | None
) -> int:
    """Watch the workers until a stop signal, too many deaths or (``until_empty``) a drained queue."""
    sqs, queue_url = boto3.client("sqs"), workers.mapping.queue_url
    quiet = 0
    while True:
        requests.nap(SUPERVISE_SECONDS)
        waiting = count_queued(sqs, queue_url)
        if progress is not None:
            progress.update(workers.tally.done.value, waiting)
        if requests.received:
            log(
                "stopping: letting records in flight finish (unfinished ones return to the queue; "
                "signal again to stop now)"
            )
            return 0
        if code := workers.replace_dead(log):
            raise unavailable(code, queue_url, sqs.meta.endpoint_url)
        if workers.deaths > MAX_DEATHS_PER_WORKER * len(workers.procs):
            log(f"giving up: {workers.deaths} worker processes died (see the function log)")
            return 1
        if until_empty:
            quiet = quiet + 1 if not workers.any_busy() and waiting == 0 else 0
            if quiet >= DRAINED_CHECKS:  # the queue's counts are approximate: drained several checks in a row
                return 0


def count_queued(sqs: Any, queue_url: str) -> int:
    try:
        return queued(sqs, queue_url)
    except (ClientError, BotoCoreError) as exc:
        code = unavailable_exit(exc)
        if code is None:
            raise
        raise unavailable(code, queue_url, sqs.meta.endpoint_url) from None


def run(
    mapping: Mapping,
    concurrency: int | None = None,
    until_empty: bool = False,
    visibility_timeout: int | None = None,
    log=print,
    log_path: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Run worker processes until a stop signal (or, with ``until_empty``, until the queue is drained).

    SIGINT, SIGTERM and SIGHUP stop it the same way: no new receives, records in flight finish
    (bounded by the function timeout), then the workers exit with it; a second signal stops them
    at once. ``log_path`` collects the function's own (JSON) log lines, as CloudWatch Logs would.
    Raises QueueUnavailable when the queue was deleted or its endpoint went away.
    """
    count = min(mapping.concurrency, concurrency or mapping.concurrency)
    with StopRequests() as requests:
        workers = Workers(mapping, count, visibility_timeout, log_path)
        log(
            f"polling {mapping.queue_url} with {count} worker process(es) (batch size {mapping.batch_size}, "
            f"timeout {mapping.timeout_s} s)" + (f"; function logs: {log_path}" if log_path else "")
        )
        grace = mapping.timeout_s + 10
        try:
            code = supervise(workers, until_empty, requests, log, progress)
        except QueueUnavailable:
            grace = UNAVAILABLE_GRACE_SECONDS
            raise
        finally:
            if progress is not None:
                progress.clear()
            workers.stop(grace, requests, log)
            if workers.deaths:
                log(f"{workers.deaths} worker process(es) died during the run; records they held return to the queue")
        if progress is not None:
            left = 0 if code == 0 and until_empty else count_queued(boto3.client("sqs"), mapping.queue_url)
            progress.update(workers.tally.done.value, left, final=True)
        settings = WorkerSettings.from_env(mapping.environment)
        for line in summary_lines(
            RunStatusStore(settings.run_table),
            boto3.client("sqs"),
            settings.dead_letter_queue_url,
            workers.tally.runs(),
        ):
            log(line)
        return code

"""What the worker does with one SQS message, independent of the Lambda plumbing.

Outcomes:
- DONE: the shard is finished (or was already): delete the message.
- RETRY: a transient problem: leave the message for redelivery after the visibility timeout.
- DEAD_LETTERED: it can never succeed as it is (invalid body, wrong grid, refused credentials,
  every granule unreadable): recorded FAILED, sent to the DLQ at once, deleted from the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from shared.contenthash import code_version, shard_hashes
from shared.credentials import EXPIRY_MARGIN_MINUTES, S3Credentials, read_parameter
from shared.envelope import FAILURE_REASON, RECORDED, peek_ids
from shared.errors import CredentialsError, StoreError, StoreRefusedError
from shared.granules import ReadContext, S3RangeReader, split_s3_url
from shared.grid import DEFAULT_GRID
from shared.messages import GranuleList, ShardMessage
from shared.redaction import redact
from shared.results import FailureKind, ShardResult, ShardStatus, plural
from shared.runstatus import RunStatusStore, ShardRecord, StartOutcome
from shared.settings import WorkerSettings
from shared.store import write_shard
from shared.written import WrittenShards
from worker.control import DeadlineReached, PoisonMessage
from worker.shard import process_shard

CREDENTIALS_CACHE_SECONDS = 300
COMPLETE = (ShardStatus.SUCCEEDED, ShardStatus.EMPTY)  # every granule read: the windows are whole


class Outcome(str, Enum):
    DONE = "DONE"
    RETRY = "RETRY"
    DEAD_LETTERED = "DEAD_LETTERED"


@dataclass
class Services:
    """AWS clients and settings, built once per warm Lambda container."""

    settings: WorkerSettings
    runs: RunStatusStore
    ssm: Any
    sqs: Any
    s3: Any
    parameters: SSMProvider = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = SSMProvider(boto3_client=self.ssm)

    @classmethod
    def from_env(cls) -> Services:
        settings = WorkerSettings.from_env()
        return cls(
            settings, RunStatusStore(settings.run_table), boto3.client("ssm"), boto3.client("sqs"), boto3.client("s3")
        )

    def credentials(self, name: str, refresh: bool = False) -> S3Credentials:
        """From SSM, cached for a warm container; ``refresh`` reads the parameter again at once.

        Expiry is checked on every use (SSM's own policy acts late); expired cached credentials
        are read again once, since the operator may have refreshed the parameter meanwhile.
        """
        if not self.settings.allows_parameter(name):
            raise PoisonMessage(
                f"credentials parameter {name} is outside this stack's prefix {self.settings.parameter_prefix}"
            )
        credentials = read_parameter(self.parameters, name, CREDENTIALS_CACHE_SECONDS, refresh)
        if credentials.expired() and not refresh:
            credentials = read_parameter(self.parameters, name, CREDENTIALS_CACHE_SECONDS, refresh=True)
        if credentials.expired():
            raise CredentialsError(
                f"S3 credentials in {name} have expired (or expire within {EXPIRY_MARGIN_MINUTES} minutes): "
                "refresh them (python -m producer redrive --refresh-credentials)"
            )
        return credentials


def dead_letter(services: Services, body: str, reason: str, attributes: dict[str, str]) -> Outcome:
    """Send ``body`` to the DLQ with its reason (and whether the shard record says FAILED)."""
    services.sqs.send_message(
        QueueUrl=services.settings.dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes={  # SQS refuses an attribute with an empty value
            k: {"DataType": "String", "StringValue": v}
            for k, v in {FAILURE_REASON: redact(reason)[:1000] or "unknown", **attributes}.items()
            if v
        },
    )
    return Outcome.DEAD_LETTERED


def invalid(what: str, exc: ValidationError) -> str:
    """Why a message body is refused: how many errors, and the first with where it is."""
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"])) + ": " if first["loc"] else ""
    return f"invalid {what}: {plural(exc.error_count(), 'error')}, first: {where}{first['msg']}"


class Invocation:
    """One message's handling: it holds the shard from a successful start until it ends it."""

    def __init__(
        self,
        body: str,
        receive_count: int,
        services: Services,
        time_left: Callable[[], float],
        log: Any,
        on_result: Callable[[ShardResult], None] = lambda result: None,
    ):
        self.body = body
        self.receive_count = receive_count
        self.services = services
        self.time_left = time_left
        self.log = log
        self.on_result = on_result
        self.holder = uuid.uuid4().hex  # only this invocation may end the shard once it holds it
        self.run_id, self.shard_key = peek_ids(body)

    def give_up(self, reason: str) -> Outcome:
        """Record FAILED (retried inside the invocation) and dead-letter the message with the reason.

        The record is written only where this invocation holds the shard or nobody does; if
        DynamoDB still refuses, the DLQ message says so (``status`` lists it)."""
        self.log.error(reason)
        recorded = "no"
        if self.run_id is not None and self.shard_key is not None:
            try:
                recorded = "yes" if self.services.runs.fail(self.run_id, self.shard_key, reason, self.holder) else "no"
            except (ClientError, BotoCoreError) as exc:
                self.log.error(
                    "cannot record the failure on the shard record", extra={"error": f"{type(exc).__name__}: {exc}"}
                )
        ids = {"run_id": self.run_id or "", "shard_key": "" if self.shard_key is None else str(self.shard_key)}
        return dead_letter(self.services, self.body, reason, {**ids, RECORDED: recorded})

    def guarded(self, step: Callable[[], Outcome], **log_keys: str) -> Outcome:
        """``step``'s outcome, with ``log_keys`` on every log line meanwhile. AWS errors (the run
        table, the queue) are worth retrying; a bug must still leave a trace on the record."""
        self.log.append_keys(**log_keys)
        try:
            return step()
        except (ClientError, BotoCoreError) as exc:
            return self.retry(f"AWS error: {type(exc).__name__}: {exc}")
        except Exception as exc:
            self.log.exception("unexpected error")
            return self.retry(f"unexpected {type(exc).__name__}: {exc}")
        finally:
            self.log.remove_keys(list(log_keys))

    def retry(self, reason: str) -> Outcome:
        """Leave the message for redelivery; on the queue's last receive, give up instead."""
        if self.receive_count >= self.services.settings.max_receive_count:
            return self.give_up(f"gave up after {self.receive_count} attempts: {reason}")
        self.log.warning("will retry", extra={"reason": reason})
        try:
            self.services.runs.retry_later(
                self.run_id, self.shard_key, f"attempt {self.receive_count}: {reason}", self.holder
            )
        except (ClientError, BotoCoreError) as exc:  # the message comes back anyway; the next receive records
            self.log.error(
                "cannot record the retry on the shard record", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
        return Outcome.RETRY


def handle(
    body: str,
    receive_count: int,
    services: Services,
    time_left: Callable[[], float],
    log: Any,
    on_result: Callable[[ShardResult], None] = lambda result: None,
) -> Outcome:
    """Process one shard message. Never raises for the shard's own problems: they are recorded.
    ``on_result`` is given the shard's result once its granules have been read (for metrics)."""
    invocation = Invocation(body, receive_count, services, time_left, log, on_result)
    try:
        message = ShardMessage.model_validate_json(body)
    except ValidationError as exc:
        return invocation.give_up(invalid("shard message", exc))

    return invocation.guarded(
        lambda: _handle_valid(message, invocation), run_id=message.run_id, shard_key=str(message.shard_key)
    )


def _handle_valid(message: ShardMessage, invocation: Invocation) -> Outcome:
    services, log = invocation.services, invocation.log
    runs, settings = services.runs, services.settings

    if message.grid != DEFAULT_GRID:
        return invocation.give_up(
            f"grid {message.grid.model_dump()} differs from the worker's grid {DEFAULT_GRID.model_dump()}"
        )
    if not settings.allows_store(message.store):
        return invocation.give_up(
            f"refusing to write {message.store}: this stack writes only under {settings.output_root}"
        )

    start = runs.start(message.run_id, message.shard_key, message.digest(), invocation.holder)
    if start.outcome is StartOutcome.NO_RECORD:
        return invocation.give_up("no shard record for this run and shard: submit it with python -m producer")
    if start.outcome is StartOutcome.DISAGREES:
        return invocation.give_up(
            f"this message is not the one submitted for shard {message.shard_key}: "
            f"{_disagreement(message, start.record)}"
        )
    if start.outcome is StartOutcome.FINISHED:
        log.info("shard already finished; redelivered message ignored", extra={"status": start.record.status})
        return Outcome.DONE

    # Until this shard finishes complete, the store does not hold its windows whole.
    written = WrittenShards(runs.table, message.store, runs.client)
    written.forget(message.shard_key, [w.index for w in message.windows])
    try:
        granules = message.granules if message.granules is not None else _granule_list(services, message.granules_url)
        result = _process(message, granules, invocation)
    except (PoisonMessage, CredentialsError) as exc:
        return invocation.give_up(str(exc))
    except StoreRefusedError as exc:
        return invocation.give_up(str(exc))
    except DeadlineReached as exc:
        return invocation.retry(str(exc))
    except StoreError as exc:
        return invocation.retry(f"store write failed: {exc}")

    invocation.on_result(result)
    kinds = {f.kind for f in result.granules_failed}
    if FailureKind.DENIED in kinds:
        denied = sum(f.kind == FailureKind.DENIED for f in result.granules_failed)
        return invocation.give_up(f"S3 credentials were refused reading {denied} granule(s): refresh them and redrive")
    if FailureKind.TRANSIENT in kinds:
        first = next(f for f in result.granules_failed if f.kind == FailureKind.TRANSIENT)
        return invocation.retry(f"transient read errors, first: {first.reason}")
    if result.status in COMPLETE:  # a later run into this store may skip it while its inputs stay the same
        hashes = shard_hashes(granules, message.config, message.grid, list(message.windows), code_version())
        written.record(message.shard_key, hashes, message.run_id)
    counted = runs.finish(message.run_id, result, invocation.holder)
    log.info(
        "shard finished",
        extra={
            "status": result.status,
            "observations": result.observations,
            "counted": counted,
            "strategies": result.strategies,
            "granules_failed": len(result.granules_failed),
            "duration_s": round(result.duration_s, 3),
        },
    )
    if result.status == ShardStatus.FAILED:
        return dead_letter(
            services,
            invocation.body,
            result.error or "no granule could be read",
            {"run_id": message.run_id, "shard_key": str(message.shard_key), RECORDED: "yes" if counted else "no"},
        )
    return Outcome.DONE


def _process(message: ShardMessage, granules: list, invocation: Invocation) -> ShardResult:
    """Read, aggregate and write the shard. Credentials the stores refuse are read from SSM once
    more before deciding: the operator may have refreshed them while this container cached the old ones."""
    services = invocation.services
    margin = services.settings.deadline_margin_seconds
    output = message.output_credentials_parameter

    def attempt(refresh: bool) -> ShardResult:
        read = services.credentials(message.credentials_parameter, refresh)
        out = services.credentials(output, refresh).for_client() if output else None
        windows = [w.index for w in message.windows]
        return process_shard(
            message.shard_key,
            granules,
            message.config,
            message.grid,
            list(message.windows),
            lambda stats: write_shard(message.store, message.shard_index, windows, stats, out),
            # granules with the run's read credentials; their indexes, in the stack's bucket, with the function's role
            ReadContext(s3=S3RangeReader(read.for_client()), index_s3=S3RangeReader()),
            should_stop=lambda: invocation.time_left() < margin,
        )

    try:
        result = attempt(refresh=False)
        if not any(f.kind == FailureKind.DENIED for f in result.granules_failed):
            return result
    except StoreRefusedError:
        if not output:
            raise
    invocation.log.warning("credentials refused: reading the parameter again before deciding")
    return attempt(refresh=True)


def _disagreement(message: ShardMessage, record: ShardRecord | None) -> str:
    """How ``message`` differs from the one submitted for the shard, as far as the record tells."""
    if record is not None and message.shard_index != record.shard_index:
        return f"its shard_index is {message.shard_index}, the shard record's is {record.shard_index}"
    return "its digest differs from the submitted message's (another store, configuration or granule list)"


def _granule_list(services: Services, url: str | None) -> list:
    if url is None or not services.settings.allows_granule_list(url):
        raise PoisonMessage(f"granule list {url} is outside this stack's run files")
    bucket, key = split_s3_url(url)
    body = services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return GranuleList.model_validate_json(body).granules
    except ValidationError:
        raise PoisonMessage(f"granule list {url} is not a valid list of granules") from None

"""What the worker does with one SQS message, independent of the Lambda plumbing.

Outcomes:
- DONE: the shard is finished (or was already): delete the message.
- RETRY: a transient problem: leave the message for redelivery after the visibility timeout.
- DEAD_LETTERED: it can never succeed as it is (invalid body, wrong grid, refused credentials,
  every granule unreadable): recorded FAILED, sent to the DLQ at once, deleted from the queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from shared.credentials import CredentialsError, S3Credentials, get_credentials
from shared.errors import StoreError
from shared.grid import DEFAULT_GRID
from shared.messages import GranuleList, ShardMessage, peek_ids
from shared.results import FailureKind, ShardStatus
from shared.runstatus import RunStatusStore
from shared.settings import WorkerSettings
from worker.granule_io import ReadContext, S3RangeReader, split_s3_url
from worker.shard import DeadlineReached, process_shard
from worker.store import write_shard

CREDENTIALS_CACHE_SECONDS = 300


class Outcome(str, Enum):
    DONE = "DONE"
    RETRY = "RETRY"
    DEAD_LETTERED = "DEAD_LETTERED"


class PoisonMessage(Exception):
    """The message can never succeed as it is."""


@dataclass
class Services:
    """AWS clients and settings, built once per warm Lambda container."""

    settings: WorkerSettings
    runs: RunStatusStore
    ssm: Any
    sqs: Any
    s3: Any
    _credentials: dict[str, tuple[float, S3Credentials]] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Services":
        settings = WorkerSettings.from_env()
        return cls(settings, RunStatusStore(settings.run_table), boto3.client("ssm"), boto3.client("sqs"), boto3.client("s3"))

    def credentials(self, name: str) -> S3Credentials:
        """From SSM, cached briefly; expiry is checked on every use (SSM's own policy acts late)."""
        if not self.settings.allows_parameter(name):
            raise PoisonMessage(f"credentials parameter {name} is outside this stack's prefix {self.settings.parameter_prefix}")
        cached = self._credentials.get(name)
        if cached is None or time.monotonic() - cached[0] > CREDENTIALS_CACHE_SECONDS:
            cached = (time.monotonic(), get_credentials(self.ssm, name))
            self._credentials[name] = cached
        if cached[1].expired():
            self._credentials.pop(name, None)
            raise CredentialsError(f"S3 credentials in {name} have expired: refresh them (python -m producer redrive --refresh-credentials)")
        return cached[1]


def dead_letter(services: Services, body: str, reason: str, attributes: dict[str, str]) -> Outcome:
    services.sqs.send_message(
        QueueUrl=services.settings.dead_letter_queue_url,
        MessageBody=body,
        MessageAttributes={"failure_reason": {"DataType": "String", "StringValue": reason[:1000]}, **{
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        }},
    )
    return Outcome.DEAD_LETTERED


def handle(body: str, receive_count: int, services: Services, time_left: Callable[[], float], log: Any) -> Outcome:
    """Process one shard message. Never raises for the shard's own problems: they are recorded."""
    try:
        message = ShardMessage.model_validate_json(body)
    except ValidationError as exc:
        run_id, shard_key = peek_ids(body)
        reason = f"invalid shard message: {exc.error_count()} error(s), first: {'.'.join(map(str, exc.errors()[0]['loc']))}: {exc.errors()[0]['msg']}"
        log.error(reason, extra={"run_id": run_id, "shard_key": shard_key})
        if run_id and shard_key is not None:
            services.runs.fail(run_id, shard_key, reason)
        return dead_letter(services, body, reason, {})

    log.append_keys(run_id=message.run_id, shard_key=str(message.shard_key))
    try:
        return _handle_valid(message, body, receive_count, services, time_left, log)
    except (ClientError, BotoCoreError) as exc:  # the run table or the queue itself: worth retrying
        return _retry(message, receive_count, services, f"AWS error: {type(exc).__name__}: {exc}", log)
    except Exception as exc:  # a bug must still leave a trace on the shard record
        log.exception("unexpected error")
        return _retry(message, receive_count, services, f"unexpected {type(exc).__name__}: {exc}", log)
    finally:
        log.remove_keys(["run_id", "shard_key"])


def _handle_valid(message: ShardMessage, body: str, receive_count: int, services: Services, time_left: Callable[[], float], log: Any) -> Outcome:
    runs, settings = services.runs, services.settings

    def poison(reason: str) -> Outcome:
        log.error(reason)
        runs.fail(message.run_id, message.shard_key, reason)
        return dead_letter(services, body, reason, {"run_id": message.run_id})

    if message.grid != DEFAULT_GRID:
        return poison(f"grid {message.grid.model_dump()} differs from the worker's grid {DEFAULT_GRID.model_dump()}")
    if not settings.allows_store(message.store):
        return poison(f"refusing to write {message.store}: this stack writes only under {settings.output_root}")

    started, record = runs.start(message.run_id, message.shard_key)
    if not started:
        if record is None:
            return poison("no shard record for this run and shard: submit it with python -m producer")
        log.info("shard already finished; redelivered message ignored", extra={"status": record.status})
        return Outcome.DONE

    try:
        read_credentials = services.credentials(message.credentials_parameter)
        output_credentials = services.credentials(message.output_credentials_parameter) if message.output_credentials_parameter else None
        granules = message.granules if message.granules is not None else _granule_list(services, message.granules_url)
    except (PoisonMessage, CredentialsError) as exc:
        return poison(str(exc))
    except (ClientError, BotoCoreError) as exc:
        return _retry(message, receive_count, services, f"cannot load the granule list: {exc}", log)

    context = ReadContext(s3=S3RangeReader(read_credentials.for_client()))
    margin = settings.deadline_margin_seconds
    out_creds = output_credentials.for_client() if output_credentials else None
    try:
        result = process_shard(
            message.shard_key, granules, message.config, message.grid,
            lambda stats: write_shard(message.store, message.shard_index, stats, out_creds),
            context, should_stop=lambda: time_left() < margin,
        )
    except DeadlineReached as exc:
        return _retry(message, receive_count, services, str(exc), log)
    except StoreError as exc:
        return _retry(message, receive_count, services, f"store write failed: {exc}", log)

    kinds = {f.kind for f in result.granules_failed}
    if FailureKind.DENIED in kinds:
        return poison(f"S3 credentials were refused reading {sum(f.kind == FailureKind.DENIED for f in result.granules_failed)} granule(s): refresh them and redrive")
    if FailureKind.TRANSIENT in kinds:
        first = next(f for f in result.granules_failed if f.kind == FailureKind.TRANSIENT)
        return _retry(message, receive_count, services, f"transient read errors, first: {first.reason}", log)
    counted = runs.finish(message.run_id, result)
    log.info("shard finished", extra={"status": result.status, "observations": result.observations, "counted": counted,
                                      "granules_failed": len(result.granules_failed), "duration_s": round(result.duration_s, 3)})
    if result.status == ShardStatus.FAILED:
        return dead_letter(services, body, result.error or "no granule could be read", {"run_id": message.run_id})
    return Outcome.DONE


def _retry(message: ShardMessage, receive_count: int, services: Services, reason: str, log: Any) -> Outcome:
    """Leave the message for redelivery; on the queue's last receive, record FAILED (the queue dead-letters it)."""
    if receive_count >= services.settings.max_receive_count:
        services.runs.fail(message.run_id, message.shard_key, f"gave up after {receive_count} attempts: {reason}")
        log.error("giving up", extra={"reason": reason})
    else:
        services.runs.retry_later(message.run_id, message.shard_key, f"attempt {receive_count}: {reason}")
        log.warning("will retry", extra={"reason": reason})
    return Outcome.RETRY


def _granule_list(services: Services, url: str | None) -> list:
    if url is None or not services.settings.allows_granule_list(url):
        raise PoisonMessage(f"granule list {url} is outside this stack's run files")
    bucket, key = split_s3_url(url)
    body = services.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return GranuleList.model_validate_json(body).granules
    except ValidationError:
        raise PoisonMessage(f"granule list {url} is not a valid list of granules") from None

"""The Lambda entry point: an SQS event source mapping delivers one shard message per record."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from shared.redaction import redact
from shared.results import ShardResult
from worker.control import RetryLater
from worker.service import Outcome, Services, handle


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Every log line, tracebacks included, passes the redaction point."""

    def serialize(self, log: dict) -> str:
        return redact(super().serialize(log))


logger = Logger(logger_formatter=RedactingFormatter())
metrics = Metrics()
# With batch size 1 every failure fails the entire batch; report it as a batch item failure
# instead of raising, so Lambda does not treat it as a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_services: Services | None = None


def services() -> Services:
    global _services
    if _services is None:
        _services = Services.from_env()
    return _services


def count_reads(result: ShardResult) -> None:
    """Granules read per read strategy: metric GranulesRead<Strategy> (e.g. GranulesReadRecordedChunks;
    a fallback, ``latitude_search (index stale)``, is GranulesReadLatitudeSearchIndexStale)."""
    for strategy, granules in result.strategies.items():
        metrics.add_metric(
            name="GranulesRead" + re.sub(r"[^A-Za-z0-9]", "", strategy.title()), unit=MetricUnit.Count, value=granules
        )


def record_handler_of(handle_body: Callable[..., Outcome], what: str) -> Callable[..., None]:
    """The record handler of one queue: ``handle_body(body, receive_count, services, time_left, log)``
    handles a message; its outcome is counted as metric ``<what>Done`` (``...Retry``,
    ``...DeadLettered``) and a retry is reported as the record's failure."""

    def record_handler(record: SQSRecord, lambda_context: Any = None) -> None:
        receive_count = int(record.attributes.approximate_receive_count or 1)
        time_left = (
            (lambda: lambda_context.get_remaining_time_in_millis() / 1000) if lambda_context else (lambda: float("inf"))
        )
        outcome = handle_body(record.body, receive_count, services(), time_left, logger)
        metrics.add_metric(name=f"{what}{outcome.value.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
        if outcome is Outcome.RETRY:
            raise RetryLater(f"message {record.message_id} will be retried")

    return record_handler


record_handler = record_handler_of(functools.partial(handle, on_result=count_reads), "Shards")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

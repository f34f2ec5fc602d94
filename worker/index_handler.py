"""The index builder's Lambda entry point: an SQS event source mapping delivers one granule per record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from worker.control import RetryLater
from worker.handler import logger, metrics, services
from worker.indexing import handle_index
from worker.service import Outcome

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord, lambda_context: Any = None) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    time_left = (
        (lambda: lambda_context.get_remaining_time_in_millis() / 1000) if lambda_context else (lambda: float("inf"))
    )
    outcome = handle_index(record.body, receive_count, services(), time_left, logger)
    metrics.add_metric(name=f"Indexes{outcome.value.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    if outcome is Outcome.RETRY:
        raise RetryLater(f"index message {record.message_id} will be retried")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

"""The index builder's Lambda entry point: an SQS event source mapping delivers one granule per record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from worker.handler import logger, metrics, record_handler_of
from worker.indexing import handle_index

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
record_handler = record_handler_of(handle_index, "Indexes")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

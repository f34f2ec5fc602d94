"""What the index builder does with one SQS message: build one granule's index and store it.

The same outcomes and the same record keeping as a shard (:mod:`worker.service`): the run's item
for the granule is started, held and finished by one invocation; a granule that cannot be
indexed (missing, corrupt, refused) is recorded FAILED and dead-lettered, a transient error
leaves the message for redelivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.errors import CredentialsError
from shared.granules import GranuleReadError, ReadContext, S3RangeReader
from shared.granules.index import build_index, write_index
from shared.grid import DEFAULT_GRID
from shared.messages import IndexMessage
from shared.results import FailureKind, ShardResult, ShardStatus
from shared.runstatus import StartOutcome
from worker.control import PoisonMessage
from worker.service import Invocation, Outcome, Services, invalid


def handle_index(
    body: str, receive_count: int, services: Services, time_left: Callable[[], float], log: Any
) -> Outcome:
    """Build one granule's index. Never raises for the granule's own problems: they are recorded."""
    invocation = Invocation(body, receive_count, services, time_left, log)
    try:
        message = IndexMessage.model_validate_json(body)
    except ValidationError as exc:
        return invocation.give_up(invalid("index message", exc))
    return invocation.guarded(lambda: _build(message, invocation), run_id=message.run_id, granule=message.granule.id)


def _build(message: IndexMessage, invocation: Invocation) -> Outcome:
    services, log = invocation.services, invocation.log
    if message.grid != DEFAULT_GRID:
        return invocation.give_up(
            f"grid {message.grid.model_dump()} differs from the worker's grid {DEFAULT_GRID.model_dump()}"
        )
    if not services.settings.allows_store(message.index):
        return invocation.give_up(
            f"refusing to write {message.index}: this stack writes indexes only under {services.settings.output_root}"
        )
    start = services.runs.start(message.run_id, message.granule_key, message.digest(), invocation.holder)
    if start.outcome is StartOutcome.NO_RECORD:
        return invocation.give_up("no record of this granule in the run: submit it with python -m producer index")
    if start.outcome is StartOutcome.DISAGREES:
        return invocation.give_up(f"this message is not the one submitted for granule {message.granule.id}")
    if start.outcome is StartOutcome.FINISHED:
        log.info("index already built; redelivered message ignored", extra={"status": start.record.status})
        return Outcome.DONE

    began = time.monotonic()
    try:
        credentials = services.credentials(message.credentials_parameter)
        context = ReadContext(s3=S3RangeReader(credentials.for_client()))
        index = build_index(message.granule.location, message.granule.id, message.config, message.grid, context)
        # with the function's own role: the index root is the stack's bucket, not the granules'
        write_index(index, message.index, ReadContext(s3=S3RangeReader()))
    except (PoisonMessage, CredentialsError) as exc:
        return invocation.give_up(str(exc))
    except GranuleReadError as exc:
        if exc.kind is FailureKind.TRANSIENT:
            return invocation.retry(exc.reason)
        if exc.kind is FailureKind.DENIED:
            return invocation.give_up(f"S3 credentials were refused reading {message.granule.id}: refresh them")
        return invocation.give_up(f"{message.granule.id}: {exc.kind}: {exc.reason}")

    result = ShardResult(
        shard_key=message.granule_key,
        status=ShardStatus.SUCCEEDED,
        granules_read=1,
        cells_with_data=len(index.shards),  # shards the granule crosses
        duration_s=time.monotonic() - began,
        bytes_fetched=context.stats.bytes,
        requests=context.stats.requests,
    )
    counted = services.runs.finish(message.run_id, result, invocation.holder)
    log.info(
        "index built",
        extra={
            "index": message.index,
            "shards": len(index.shards),
            "counted": counted,
            "duration_s": result.duration_s,
        },
    )
    return Outcome.DONE

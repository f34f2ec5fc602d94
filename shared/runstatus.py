"""Run status in DynamoDB: one run item, one item per shard and a few counter items, in one table.

Every status change is a conditional write, and a shard's final status is counted in the same
transaction, so an at-least-once redelivery can never count a shard twice. The counts live on
:data:`COUNTER_ITEMS` counter items per run, a shard always counted on the same one: no item is
written by every shard, so a thousand workers finishing at once do not queue up on one item.
Shard items are lean (no message body): a message is rebuilt from the run's catalog.
Per-run and per-status reads are Queries (on the table or its ``gsi1`` index), never Scans.

One module on purpose, over 400 lines: every transition of the shard state machine and the
counting that goes with it sit together, so that their conditions can be read side by side.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from shared.redaction import redact
from shared.results import FINISHED, GranuleFailure, ShardResult, ShardStatus
from shared.settings import TABLE_GSI, TABLE_GSI_PK, TABLE_GSI_SK, TABLE_PK, TABLE_SK, TABLE_TTL

RUN_SK = "RUN"
COUNTER_SK = "COUNT#"
# Counter items per run. At 1,000 workers finishing a shard every ~2 min, each takes ~0.1 write/s.
COUNTER_ITEMS = 64
BATCH_WRITE = 25  # BatchWriteItem's limit
RUNS_INDEX_KEY = "RUNS"
RECORD_TTL_DAYS = 90
# Writes retried inside the invocation: ~6 s in all at worst, then the error is the caller's.
WRITE_ATTEMPTS = 8
WRITE_BACKOFF_BASE_S = 0.05
WRITE_BACKOFF_CAP_S = 2.0
RETRYABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
}
RETRYABLE_CANCELLATIONS = {
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
}
# Conditions for ending a shard: only the invocation holding it, or (for FAILED) nobody holds it.
HELD = "#st = :running AND holder = :holder"
HELD_OR_PENDING = f"({HELD}) OR #st = :pending"
_ser, _de = TypeSerializer(), TypeDeserializer()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def shard_sk(shard_key: int) -> str:
    return f"SHARD#{shard_key:020d}"


def counter_sk(shard_key: int) -> str:
    """The counter item a shard is counted on: always the same one, spread evenly over the run's."""
    return f"{COUNTER_SK}{zlib.crc32(str(shard_key).encode()) % COUNTER_ITEMS:02d}"


def status_key(run_id: str, status: ShardStatus) -> str:
    return f"{run_id}#{status}"


def counter(status: ShardStatus) -> str:
    return f"count_{status}"


def _held(holder: str) -> dict[str, str]:
    return {":holder": holder, ":running": str(ShardStatus.RUNNING), ":pending": str(ShardStatus.PENDING)}


class StartOutcome(str, Enum):
    STARTED = "STARTED"  # this invocation holds the shard
    FINISHED = "FINISHED"  # already finished: a redelivered message
    DISAGREES = "DISAGREES"  # the message is not the one submitted for this shard
    NO_RECORD = "NO_RECORD"  # no such shard in the run


@dataclass(frozen=True)
class Start:
    outcome: StartOutcome
    record: ShardRecord | None


COUNTED = ("counts", "observations", "compute_seconds", "last_finished_at")  # RunRecord fields from counter items


class RunKind(str, Enum):
    SHARDS = "shards"  # statistics, one item per shard
    INDEXES = "indexes"  # granule indexes, one item per granule (its key: the granule's position in the run)


class RunRecord(BaseModel):
    run_id: str
    kind: RunKind = RunKind.SHARDS
    created_at: str = Field(default_factory=now_iso)
    catalog: str
    catalog_hash: str
    config: dict[str, Any]
    store: str
    credentials_parameter: str
    shards: int
    granules: int
    memory_mb: int = 0
    catalog_url: str | None = None  # the catalog as submitted, from which any shard's message is rebuilt
    windows: list[dict[str, Any]] = []  # the windows the run writes (PlacedWindow), for rebuilt messages
    output_credentials_parameter: str | None = None
    # Summed from the counter items when read:
    counts: dict[ShardStatus, int] = {}
    observations: int = 0
    compute_seconds: float = 0.0
    last_finished_at: str | None = None


class ShardRecord(BaseModel):
    run_id: str
    shard_key: int
    shard_index: int
    status: ShardStatus
    granules: int
    attempts: int = 0
    message_digest: str = ""
    holder: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    granules_read: int | None = None
    granules_failed: list[GranuleFailure] = []
    observations: int | None = None
    cells_with_data: int | None = None
    last_error: str | None = None


def _item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain Python -> DynamoDB attribute values (floats go through Decimal; None is left out)."""
    return {k: _ser.serialize(_to_decimal(v)) for k, v in values.items() if v is not None}


def _to_decimal(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)  # every text of a record passes the redaction point
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_decimal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_decimal(v) for v in value]
    return value


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB item -> plain Python (numbers come back as Decimal)."""
    return _decimals({k: _de.deserialize(v) for k, v in item.items()})


def _decimals(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _retryable(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    if code == "TransactionCanceledException":
        reasons = {r.get("Code") for r in exc.response.get("CancellationReasons") or []}
        return bool(reasons & RETRYABLE_CANCELLATIONS) and "ConditionalCheckFailed" not in reasons
    return code in RETRYABLE_CODES


def _conditional_failed(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or "ConditionalCheckFailed" in str(exc)
    return False


class RunStatusStore:
    def __init__(self, table: str, client: Any = None, sleep: Callable[[float], None] = time.sleep):
        self.table = table
        self.client = client or boto3.client("dynamodb")
        self._sleep = sleep

    # -- runs ------------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        """Create the run item; for an existing run id with the same catalog, return the existing one."""
        item = {
            TABLE_PK: run_pk(run.run_id),
            TABLE_SK: RUN_SK,
            TABLE_GSI_PK: RUNS_INDEX_KEY,
            TABLE_GSI_SK: run.created_at,
            TABLE_TTL: int(time.time()) + RECORD_TTL_DAYS * 86400,
            **run.model_dump(exclude=set(COUNTED) | {"config"}),
            "config": json.dumps(run.config),
        }
        try:
            self._write(
                self.client.put_item,
                TableName=self.table,
                Item=_item(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TABLE_PK},
            )
            return run
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        existing = self.get_run(run.run_id)
        assert existing is not None
        if existing.catalog_hash != run.catalog_hash:
            raise ValueError(f"run {run.run_id} already exists for another catalog; choose a new run id")
        return existing

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run item with its counts summed from its counter items (one Query of small items)."""
        got = self.client.get_item(
            TableName=self.table, Key=_item({TABLE_PK: run_pk(run_id), TABLE_SK: RUN_SK}), ConsistentRead=True
        )
        return self._run(got["Item"]) if "Item" in got else None

    def _counted(self, run_id: str) -> dict[str, Any]:
        totals: dict[str, Any] = {
            "counts": {s: 0 for s in FINISHED},
            "observations": 0,
            "compute_seconds": 0.0,
            "last_finished_at": None,
        }
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :c)",
            ConsistentRead=True,
            ExpressionAttributeNames={"#pk": TABLE_PK, "#sk": TABLE_SK},
            ExpressionAttributeValues=_item({":pk": run_pk(run_id), ":c": COUNTER_SK}),
        )
        for item in (_plain(i) for page in pages for i in page["Items"]):
            for s in FINISHED:
                totals["counts"][s] += int(item.get(counter(s), 0))
            totals["observations"] += int(item.get("observations", 0))
            totals["compute_seconds"] += float(item.get("compute_seconds", 0))
            last = item.get("last_finished_at")
            if last and (totals["last_finished_at"] is None or last > totals["last_finished_at"]):
                totals["last_finished_at"] = last
        return totals

    def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        got = self.client.query(
            TableName=self.table,
            IndexName=TABLE_GSI,
            KeyConditionExpression="#g = :runs",
            ExpressionAttributeNames={"#g": TABLE_GSI_PK},
            ExpressionAttributeValues=_item({":runs": RUNS_INDEX_KEY}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [self._run(i) for i in got["Items"]]

    def _run(self, item: dict[str, Any]) -> RunRecord:
        plain = _plain(item)
        plain["config"] = json.loads(plain["config"])
        fields = {k: v for k, v in plain.items() if k in RunRecord.model_fields and k not in COUNTED}
        return RunRecord.model_validate({**fields, **self._counted(plain["run_id"])})

    # -- shards ----------------------------------------------------------------------------------
    @staticmethod
    def _pending_item(record: ShardRecord) -> dict[str, Any]:
        return _item(
            {
                TABLE_PK: run_pk(record.run_id),
                TABLE_SK: shard_sk(record.shard_key),
                TABLE_GSI_PK: status_key(record.run_id, ShardStatus.PENDING),
                TABLE_GSI_SK: shard_sk(record.shard_key),
                TABLE_TTL: int(time.time()) + RECORD_TTL_DAYS * 86400,
                **record.model_dump(exclude={"granules_failed"}, exclude_none=True),
                "status": str(ShardStatus.PENDING),
            }
        )

    def add_shard(self, record: ShardRecord) -> bool:
        """Record a PENDING shard unless it is already recorded. True when it was added."""
        try:
            self._write(
                self.client.put_item,
                TableName=self.table,
                Item=self._pending_item(record),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": TABLE_PK},
            )
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def put_shards(self, records: list[ShardRecord]) -> None:
        """Record new PENDING shards in batches of 25 (the caller knows none of them exists yet:
        :meth:`shard_statuses`); what DynamoDB leaves unprocessed is sent again with backoff."""
        for i in range(0, len(records), BATCH_WRITE):
            pending = [{"PutRequest": {"Item": self._pending_item(r)}} for r in records[i : i + BATCH_WRITE]]
            for attempt in range(WRITE_ATTEMPTS):
                got = self._write(self.client.batch_write_item, RequestItems={self.table: pending})
                pending = got.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
                self._sleep(random.uniform(0, min(WRITE_BACKOFF_CAP_S, WRITE_BACKOFF_BASE_S * 2**attempt)))
            if pending:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "ProvisionedThroughputExceededException",
                            "Message": f"{len(pending)} shard items left unprocessed",
                        }
                    },
                    "BatchWriteItem",
                )

    def shard_statuses(self, run_id: str) -> dict[int, ShardStatus]:
        """Every recorded shard of a run with its status, reading only those two attributes."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :shard)",
            ConsistentRead=True,
            ProjectionExpression="shard_key, #st",
            ExpressionAttributeNames={"#pk": TABLE_PK, "#sk": TABLE_SK, "#st": "status"},
            ExpressionAttributeValues=_item({":pk": run_pk(run_id), ":shard": "SHARD#"}),
        )
        return {int(i["shard_key"]): ShardStatus(i["status"]) for page in pages for i in map(_plain, page["Items"])}

    def count(self, run_id: str, status: ShardStatus) -> int:
        """How many shards of a run have ``status``, from the index (the answer is a number, not items)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=TABLE_GSI,
            KeyConditionExpression="#g = :g",
            Select="COUNT",
            ExpressionAttributeNames={"#g": TABLE_GSI_PK},
            ExpressionAttributeValues=_item({":g": status_key(run_id, status)}),
        )
        return sum(page["Count"] for page in pages)

    def get_shard(self, run_id: str, shard_key: int) -> ShardRecord | None:
        got = self.client.get_item(TableName=self.table, Key=self._key(run_id, shard_key), ConsistentRead=True)
        return ShardRecord.model_validate(_plain(got["Item"])) if "Item" in got else None

    def shards(self, run_id: str, status: ShardStatus | None = None) -> Iterator[ShardRecord]:
        """All shards of a run, or those with one status (from the index), page by page."""
        if status is None:
            query = dict(
                TableName=self.table,
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :shard)",
                ExpressionAttributeNames={"#pk": TABLE_PK, "#sk": TABLE_SK},
                ExpressionAttributeValues=_item({":pk": run_pk(run_id), ":shard": "SHARD#"}),
                ConsistentRead=True,
            )
        else:
            query = dict(
                TableName=self.table,
                IndexName=TABLE_GSI,
                KeyConditionExpression="#g = :g",
                ExpressionAttributeNames={"#g": TABLE_GSI_PK},
                ExpressionAttributeValues=_item({":g": status_key(run_id, status)}),
            )
        for page in self.client.get_paginator("query").paginate(**query):
            for item in page["Items"]:
                yield ShardRecord.model_validate(_plain(item))

    def _key(self, run_id: str, shard_key: int) -> dict[str, Any]:
        return _item({TABLE_PK: run_pk(run_id), TABLE_SK: shard_sk(shard_key)})

    def start(self, run_id: str, shard_key: int, digest: str, holder: str) -> Start:
        """PENDING/RUNNING/FAILED -> RUNNING, held by ``holder``, with the attempt counted.

        Only a message equal to the one submitted for the shard (``digest``) may start it: the
        shard record is the truth, and a message that disagrees with it (another shard's chunk
        index, another store) is poison. The holder is the only invocation that may end the
        shard (:meth:`finish`, :meth:`fail`, :meth:`retry_later`): a duplicate that starts the
        shard again takes it over, so the one that finishes last counts it, once.

        FAILED may start again: that is a redriven message (its earlier failure is taken off the
        run's counters in the same transaction). SUCCEEDED, EMPTY and PARTIAL never run twice.
        """
        names = {"#st": "status", "#g": TABLE_GSI_PK}
        values = {
            ":running": str(ShardStatus.RUNNING),
            ":g": status_key(run_id, ShardStatus.RUNNING),
            ":now": now_iso(),
            ":one": 1,
            ":holder": holder,
            ":digest": digest,
        }
        update = "SET #st = :running, #g = :g, started_at = :now, holder = :holder ADD attempts :one"
        try:
            got = self._write(
                self.client.update_item,
                TableName=self.table,
                Key=self._key(run_id, shard_key),
                UpdateExpression=update,
                ConditionExpression="#st IN (:pending, :running) AND message_digest = :digest",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item({**values, ":pending": str(ShardStatus.PENDING)}),
                ReturnValues="ALL_NEW",
            )
            return Start(StartOutcome.STARTED, ShardRecord.model_validate(_plain(got["Attributes"])))
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        record = self.get_shard(run_id, shard_key)
        if record is None:
            return Start(StartOutcome.NO_RECORD, None)
        if record.message_digest != digest:
            return Start(StartOutcome.DISAGREES, record)
        if record.status != ShardStatus.FAILED:
            return Start(StartOutcome.FINISHED, record)
        restarted = self._transact(
            self._shard_update(
                run_id,
                shard_key,
                update,
                "#st = :failed AND message_digest = :digest",
                names,
                {**values, ":failed": str(ShardStatus.FAILED)},
            ),
            self._uncount(record),
        )
        outcome = StartOutcome.STARTED if restarted else StartOutcome.FINISHED
        return Start(outcome, self.get_shard(run_id, shard_key))

    def _uncount(self, record: ShardRecord) -> dict[str, Any]:
        """Take a finished shard off its counter item (a redrive or resubmit runs it again)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._counter_key(record.run_id, record.shard_key),
                "UpdateExpression": "ADD #c :minus, observations :obs, compute_seconds :dur",
                "ExpressionAttributeNames": {"#c": counter(record.status)},
                "ExpressionAttributeValues": _item(
                    {":minus": -1, ":obs": -(record.observations or 0), ":dur": -(record.duration_s or 0.0)}
                ),
            }
        }

    def _counter_key(self, run_id: str, shard_key: int) -> dict[str, Any]:
        return _item({TABLE_PK: run_pk(run_id), TABLE_SK: counter_sk(shard_key)})

    def finish(self, run_id: str, result: ShardResult, holder: str) -> bool:
        """RUNNING (held by ``holder``) -> final status, counted on the run item in the same
        transaction. False if another invocation holds or already finished the shard."""
        return self._settle(
            run_id,
            result.shard_key,
            result.status,
            {
                "finished_at": now_iso(),
                "duration_s": round(result.duration_s, 3),
                "granules_read": result.granules_read,
                "granules_failed": [f.model_dump(mode="json") for f in result.granules_failed],
                "observations": result.observations,
                "cells_with_data": result.cells_with_data,
                "last_error": result.error,
            },
            holder,
            observations=result.observations,
            duration_s=round(result.duration_s, 3),
        )

    def fail(self, run_id: str, shard_key: int, error: str, holder: str) -> bool:
        """-> FAILED with the reason (poison message, refused credentials, retries spent), from
        RUNNING held by ``holder`` or from PENDING (held by nobody): a message that does not hold
        the shard can never end an invocation that does."""
        # what an earlier attempt measured goes: the counter item is told nothing of it
        fields = {"finished_at": now_iso(), "last_error": error, "duration_s": None, "observations": None}
        return self._settle(run_id, shard_key, ShardStatus.FAILED, fields, holder)

    def _settle(
        self,
        run_id: str,
        shard_key: int,
        status: ShardStatus,
        fields: dict[str, Any],
        holder: str,
        observations: int = 0,
        duration_s: float = 0.0,
    ) -> bool:
        names = {"#st": "status", "#g": TABLE_GSI_PK}
        values: dict[str, Any] = {":status": str(status), ":g": status_key(run_id, status)}
        sets = ["#st = :status", "#g = :g"]
        removes = ["holder"]
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")  # e.g. the last error of an earlier attempt
            else:
                values[f":f{i}"] = value
                sets.append(f"#f{i} = :f{i}")
        update = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
        return self._transact(
            self._shard_update(
                run_id,
                shard_key,
                update,
                HELD_OR_PENDING if status == ShardStatus.FAILED else HELD,
                names,
                {**values, **_held(holder)},
            ),
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._counter_key(run_id, shard_key),
                    "UpdateExpression": "ADD #c :one, observations :obs, compute_seconds :dur SET "
                    "last_finished_at = :now",
                    "ExpressionAttributeNames": {"#c": counter(status)},
                    "ExpressionAttributeValues": _item(
                        {":one": 1, ":obs": observations, ":dur": duration_s, ":now": now_iso()}
                    ),
                }
            },
        )

    def retry_later(self, run_id: str, shard_key: int, error: str, holder: str) -> None:
        """RUNNING (held) or PENDING -> PENDING with the reason: the message comes back after the visibility timeout."""
        try:
            self._write(
                self.client.update_item,
                TableName=self.table,
                Key=self._key(run_id, shard_key),
                UpdateExpression="SET #st = :pending, #g = :g, last_error = :err REMOVE holder",
                ConditionExpression=HELD_OR_PENDING,
                ExpressionAttributeNames={"#st": "status", "#g": TABLE_GSI_PK},
                ExpressionAttributeValues=_item(
                    {
                        ":pending": str(ShardStatus.PENDING),
                        ":g": status_key(run_id, ShardStatus.PENDING),
                        ":err": error,
                        **_held(holder),
                    }
                ),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def _shard_update(
        self, run_id: str, shard_key: int, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any]:
        """A conditional update of a shard item, as one item of a transaction."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(run_id, shard_key),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _item(values),
            }
        }

    def _transact(self, shard_update: dict[str, Any], counter_update: dict[str, Any]) -> bool:
        """A shard's status change and its counter item's change, both or neither. False when the
        shard's condition failed (another invocation holds it, or it already changed)."""
        try:
            self._write(self.client.transact_write_items, TransactItems=[shard_update, counter_update])
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def _write(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        """One write, retried here with jittered exponential backoff while DynamoDB throttles or
        cancels it for a conflicting transaction (botocore retries neither a TransactionConflict
        nor a transaction cancelled for throttling). A condition that fails is not retried."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return call(**kwargs)
            except ClientError as exc:
                if attempt == WRITE_ATTEMPTS - 1 or not _retryable(exc):
                    raise
            self._sleep(random.uniform(0, min(WRITE_BACKOFF_CAP_S, WRITE_BACKOFF_BASE_S * 2**attempt)))
        raise AssertionError("unreachable")

    def reset(self, run_id: str, shard_key: int) -> bool:
        """FAILED/PARTIAL -> PENDING for a redrive or resubmit, taking the shard off the run's counters."""
        record = self.get_shard(run_id, shard_key)
        if record is None or record.status not in (ShardStatus.FAILED, ShardStatus.PARTIAL):
            return False
        pending = {
            ":pending": str(ShardStatus.PENDING),
            ":g": status_key(run_id, ShardStatus.PENDING),
            ":old": str(record.status),
        }
        return self._transact(
            self._shard_update(
                run_id,
                shard_key,
                "SET #st = :pending, #g = :g",
                "#st = :old",
                {"#st": "status", "#g": TABLE_GSI_PK},
                pending,
            ),
            self._uncount(record),
        )

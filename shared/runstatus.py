"""Run status in DynamoDB: one run item and one item per shard, in one table.

Every status change is a conditional write, and a shard's final status is counted on the run
item in the same transaction, so an at-least-once redelivery can never count a shard twice.
Per-run and per-status reads are Queries (on the table or its ``gsi1`` index), never Scans.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Iterator

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from shared.redaction import redact
from shared.results import FINISHED, GranuleFailure, ShardResult, ShardStatus
from shared.settings import TABLE_GSI, TABLE_GSI_PK, TABLE_GSI_SK, TABLE_PK, TABLE_SK, TABLE_TTL

RUN_SK = "RUN"
RUNS_INDEX_KEY = "RUNS"
RECORD_TTL_DAYS = 90
# Writes retried inside the invocation: ~6 s in all at worst, then the error is the caller's.
WRITE_ATTEMPTS = 8
WRITE_BACKOFF_BASE_S = 0.05
WRITE_BACKOFF_CAP_S = 2.0
RETRYABLE_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionConflictException", "TransactionInProgressException",
}
RETRYABLE_CANCELLATIONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
# Conditions for ending a shard: only the invocation holding it, or (for FAILED) nobody holds it.
HELD = "#st = :running AND holder = :holder"
HELD_OR_PENDING = f"({HELD}) OR #st = :pending"
_ser, _de = TypeSerializer(), TypeDeserializer()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def shard_sk(shard_key: int) -> str:
    return f"SHARD#{shard_key:020d}"


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


class RunRecord(BaseModel):
    run_id: str
    created_at: str = Field(default_factory=now_iso)
    catalog: str
    catalog_hash: str
    config: dict[str, Any]
    store: str
    credentials_parameter: str
    shards: int
    granules: int
    memory_mb: int = 0
    counts: dict[ShardStatus, int] = {}
    observations: int = 0


class ShardRecord(BaseModel):
    run_id: str
    shard_key: int
    shard_index: int
    status: ShardStatus
    granules: int
    attempts: int = 0
    message: str = ""
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
            TABLE_PK: run_pk(run.run_id), TABLE_SK: RUN_SK, TABLE_GSI_PK: RUNS_INDEX_KEY, TABLE_GSI_SK: run.created_at,
            TABLE_TTL: int(time.time()) + RECORD_TTL_DAYS * 86400,
            **run.model_dump(exclude={"counts", "observations", "config"}), "config": json.dumps(run.config),
            "observations": 0, **{counter(s): 0 for s in FINISHED},
        }
        try:
            self._write(self.client.put_item, TableName=self.table, Item=_item(item),
                        ConditionExpression="attribute_not_exists(#pk)", ExpressionAttributeNames={"#pk": TABLE_PK})
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
        got = self.client.get_item(TableName=self.table, Key=_item({TABLE_PK: run_pk(run_id), TABLE_SK: RUN_SK}), ConsistentRead=True)
        return self._run(got["Item"]) if "Item" in got else None

    def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        got = self.client.query(
            TableName=self.table, IndexName=TABLE_GSI, KeyConditionExpression="#g = :runs",
            ExpressionAttributeNames={"#g": TABLE_GSI_PK}, ExpressionAttributeValues=_item({":runs": RUNS_INDEX_KEY}),
            ScanIndexForward=False, Limit=limit,
        )
        return [self._run(i) for i in got["Items"]]

    @staticmethod
    def _run(item: dict[str, Any]) -> RunRecord:
        plain = _plain(item)
        plain["config"] = json.loads(plain["config"])
        plain["counts"] = {s: int(plain.get(counter(s), 0)) for s in FINISHED}
        return RunRecord.model_validate({k: v for k, v in plain.items() if k in RunRecord.model_fields})

    # -- shards ----------------------------------------------------------------------------------
    def add_shard(self, record: ShardRecord) -> bool:
        """Record a PENDING shard unless it is already recorded. True when it was added."""
        item = {
            TABLE_PK: run_pk(record.run_id), TABLE_SK: shard_sk(record.shard_key),
            TABLE_GSI_PK: status_key(record.run_id, ShardStatus.PENDING), TABLE_GSI_SK: shard_sk(record.shard_key),
            TABLE_TTL: int(time.time()) + RECORD_TTL_DAYS * 86400,
            **record.model_dump(exclude={"granules_failed"}, exclude_none=True), "status": str(ShardStatus.PENDING),
        }
        try:
            self._write(self.client.put_item, TableName=self.table, Item=_item(item),
                        ConditionExpression="attribute_not_exists(#pk)", ExpressionAttributeNames={"#pk": TABLE_PK})
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def get_shard(self, run_id: str, shard_key: int) -> ShardRecord | None:
        got = self.client.get_item(TableName=self.table, Key=self._key(run_id, shard_key), ConsistentRead=True)
        return ShardRecord.model_validate(_plain(got["Item"])) if "Item" in got else None

    def shards(self, run_id: str, status: ShardStatus | None = None) -> Iterator[ShardRecord]:
        """All shards of a run, or those with one status (from the index), page by page."""
        if status is None:
            query = dict(
                TableName=self.table, KeyConditionExpression="#pk = :pk AND begins_with(#sk, :shard)",
                ExpressionAttributeNames={"#pk": TABLE_PK, "#sk": TABLE_SK},
                ExpressionAttributeValues=_item({":pk": run_pk(run_id), ":shard": "SHARD#"}), ConsistentRead=True,
            )
        else:
            query = dict(
                TableName=self.table, IndexName=TABLE_GSI, KeyConditionExpression="#g = :g",
                ExpressionAttributeNames={"#g": TABLE_GSI_PK}, ExpressionAttributeValues=_item({":g": status_key(run_id, status)}),
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
        values = {":running": str(ShardStatus.RUNNING), ":g": status_key(run_id, ShardStatus.RUNNING), ":now": now_iso(),
                  ":one": 1, ":holder": holder, ":digest": digest}
        update = "SET #st = :running, #g = :g, started_at = :now, holder = :holder ADD attempts :one"
        try:
            got = self._write(
                self.client.update_item,
                TableName=self.table, Key=self._key(run_id, shard_key), UpdateExpression=update,
                ConditionExpression="#st IN (:pending, :running) AND message_digest = :digest", ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item({**values, ":pending": str(ShardStatus.PENDING)}), ReturnValues="ALL_NEW",
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
        try:
            self._write(self.client.transact_write_items, TransactItems=[
                {"Update": {
                    "TableName": self.table, "Key": self._key(run_id, shard_key), "UpdateExpression": update,
                    "ConditionExpression": "#st = :failed AND message_digest = :digest", "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": _item({**values, ":failed": str(ShardStatus.FAILED)}),
                }},
                self._uncount(run_id, ShardStatus.FAILED, record.observations or 0),
            ])
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return Start(StartOutcome.FINISHED, self.get_shard(run_id, shard_key))
        return Start(StartOutcome.STARTED, self.get_shard(run_id, shard_key))

    def _uncount(self, run_id: str, status: ShardStatus, observations: int) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.table, "Key": _item({TABLE_PK: run_pk(run_id), TABLE_SK: RUN_SK}),
            "UpdateExpression": "ADD #c :minus, observations :obs",
            "ExpressionAttributeNames": {"#c": counter(status)},
            "ExpressionAttributeValues": _item({":minus": -1, ":obs": -observations}),
        }}

    def finish(self, run_id: str, result: ShardResult, holder: str) -> bool:
        """RUNNING (held by ``holder``) -> final status, counted on the run item in the same
        transaction. False if another invocation holds or already finished the shard."""
        return self._settle(run_id, result.shard_key, result.status, {
            "finished_at": now_iso(), "duration_s": round(result.duration_s, 3), "granules_read": result.granules_read,
            "granules_failed": [f.model_dump(mode="json") for f in result.granules_failed], "observations": result.observations,
            "cells_with_data": result.cells_with_data, "last_error": result.error,
        }, holder, observations=result.observations)

    def fail(self, run_id: str, shard_key: int, error: str, holder: str) -> bool:
        """-> FAILED with the reason (poison message, refused credentials, retries spent), from
        RUNNING held by ``holder`` or from PENDING (held by nobody): a message that does not hold
        the shard can never end an invocation that does."""
        return self._settle(run_id, shard_key, ShardStatus.FAILED, {"finished_at": now_iso(), "last_error": error}, holder)

    def _settle(self, run_id: str, shard_key: int, status: ShardStatus, fields: dict[str, Any], holder: str, observations: int = 0) -> bool:
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
        try:
            self._write(self.client.transact_write_items, TransactItems=[
                {"Update": {
                    "TableName": self.table, "Key": self._key(run_id, shard_key), "UpdateExpression": update,
                    "ExpressionAttributeNames": names, "ExpressionAttributeValues": _item({**values, **_held(holder)}),
                    "ConditionExpression": HELD_OR_PENDING if status == ShardStatus.FAILED else HELD,
                }},
                {"Update": {
                    "TableName": self.table, "Key": _item({TABLE_PK: run_pk(run_id), TABLE_SK: RUN_SK}),
                    "UpdateExpression": "ADD #c :one, observations :obs",
                    "ExpressionAttributeNames": {"#c": counter(status)},
                    "ExpressionAttributeValues": _item({":one": 1, ":obs": observations}),
                }},
            ])
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    def retry_later(self, run_id: str, shard_key: int, error: str, holder: str) -> None:
        """RUNNING (held) or PENDING -> PENDING with the reason: the message comes back after the visibility timeout."""
        try:
            self._write(
                self.client.update_item,
                TableName=self.table, Key=self._key(run_id, shard_key),
                UpdateExpression="SET #st = :pending, #g = :g, last_error = :err REMOVE holder",
                ConditionExpression=HELD_OR_PENDING,
                ExpressionAttributeNames={"#st": "status", "#g": TABLE_GSI_PK},
                ExpressionAttributeValues=_item({":pending": str(ShardStatus.PENDING), ":g": status_key(run_id, ShardStatus.PENDING),
                                                 ":err": error, **_held(holder)}),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
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
        try:
            self._write(self.client.transact_write_items, TransactItems=[
                {"Update": {
                    "TableName": self.table, "Key": self._key(run_id, shard_key),
                    "UpdateExpression": "SET #st = :pending, #g = :g",
                    "ConditionExpression": "#st = :old",
                    "ExpressionAttributeNames": {"#st": "status", "#g": TABLE_GSI_PK},
                    "ExpressionAttributeValues": _item({":pending": str(ShardStatus.PENDING), ":g": status_key(run_id, ShardStatus.PENDING), ":old": str(record.status)}),
                }},
                self._uncount(run_id, record.status, record.observations or 0),
            ])
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

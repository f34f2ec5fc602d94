"""The run table at scale: no item written by every shard, lean shard items, status reads little."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest

from producer.status import read_run, run_report
from shared.results import ShardStatus
from shared.runstatus import COUNTER_ITEMS, RunStatusStore
from tests.queue_helpers import credentials_file, drain, runs, submit
from worker import handler

pytestmark = pytest.mark.integration


def record_writes(client) -> Counter:
    """Items written through ``client``, by key (every item of a transaction or batch counts)."""
    written: Counter = Counter()

    def note(params, **_):
        items = [
            t.get("Update") or t.get("Put") or t.get("ConditionCheck") or {} for t in params.get("TransactItems", [])
        ]
        items += [{"Key": params["Key"]}] if "Key" in params else []
        items += [{"Key": {k: v for k, v in params["Item"].items() if k in ("pk", "sk")}}] if "Item" in params else []
        for item in items:
            written[json.dumps(item.get("Key"), sort_keys=True)] += 1

    for op in ("UpdateItem", "PutItem", "TransactWriteItems"):
        client.meta.events.register(f"provide-client-params.dynamodb.{op}", note)
    return written


def test_no_item_is_written_by_every_shard_and_counts_stay_exact(env, catalog, tmp_path):
    n = len(json.loads(catalog.read_text())["shard_keys"])
    assert submit(catalog, credentials_file(tmp_path), "no-hot-item") == 0
    written = record_writes(handler.services().runs.client)
    drain(env)
    run = runs(env).get_run("no-hot-item")
    assert sum(run.counts.values()) == n and run.counts[ShardStatus.FAILED] == 0
    busiest, writes = written.most_common(1)[0]
    # a shard's own item takes its start and its finish; a counter item takes ~n / COUNTER_ITEMS
    assert writes < n / 2, f"{busiest} was written {writes} times for {n} shards"
    items = boto3.client("dynamodb").query(
        TableName=env.run_table,
        KeyConditionExpression="pk = :p AND sk = :s",
        ExpressionAttributeValues={":p": {"S": "RUN#no-hot-item"}, ":s": {"S": "RUN"}},
    )["Items"]
    assert not any(k.startswith("count_") for k in items[0]), "the run item carries no counter"
    assert COUNTER_ITEMS > 1


def test_shard_items_are_lean(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "lean") == 0
    items = boto3.client("dynamodb").query(
        TableName=env.run_table,
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": "RUN#lean"}, ":s": {"S": "SHARD#"}},
    )["Items"]
    assert items and all("message" not in item for item in items)
    assert max(len(json.dumps(item)) for item in items) < 1024
    drain(env)


def test_status_reads_counts_and_problem_shards_only(env, catalog, tmp_path):
    doc = json.loads(catalog.read_text())
    key = doc["shard_keys"][0]
    doc["shards"][str(key)].append(
        {
            "id": "ATL06_20220101000000_99991411_006_01.h5",
            "s3": "s3://nsidc-test/never-uploaded/ATL06_20220101000000_99991411_006_01.h5",
        }
    )
    catalog.write_text(json.dumps(doc))
    assert submit(catalog, credentials_file(tmp_path), "reads") == 0
    drain(env)
    client = boto3.client("dynamodb")
    shard_items: list[str] = []

    def note(parsed, **_):
        items = parsed.get("Items", []) + ([parsed["Item"]] if "Item" in parsed else [])
        shard_items.extend(i["sk"]["S"] for i in items if "sk" in i and i["sk"]["S"].startswith("SHARD#"))

    for op in ("Query", "GetItem", "Scan"):
        client.meta.events.register(f"after-call.dynamodb.{op}", note)
    runs = RunStatusStore(env.run_table, client)
    report = run_report(runs, read_run(runs, "reads"))
    assert [p["status"] for p in report["problems"]] == ["PARTIAL"]
    assert sum(report["counts"].values()) == len(doc["shard_keys"]) and report["finished"]
    assert len(shard_items) == 1, "status read the problem shard only, not every shard"

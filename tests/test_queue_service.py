"""The queue service on the embedded stack: submit, the real handler on real SQS records, DynamoDB, DLQ."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import xarray as xr
import xdggs

from producer.cli import main as producer_main
from shared.credentials import S3Credentials
from shared.errors import EXIT_PARTIAL_SHARDS
from shared.results import ShardStatus
from shared.store import open_store
from tests.independent import expected_cells, kept_points
from tests.pipeline import FINEST
from tests.queue_helpers import (
    SECRET_PARTS,
    credentials_file,
    deliver,
    drain,
    empty_queue,
    queue_counts,
    runs,
    submit,
    upload,
)
from tests.test_real_data import assert_matches_independent
from worker.service import Outcome, Services, handle

pytestmark = pytest.mark.integration


def dlq_messages(env) -> list[dict]:
    sqs = boto3.client("sqs")
    got = sqs.receive_message(
        QueueUrl=env.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    )
    return got.get("Messages", [])


def test_run_end_to_end_matches_independent_values(env, catalog, granules, tmp_path, capfd):
    assert submit(catalog, credentials_file(tmp_path), "e2e") == 0
    bodies = [
        m["Body"]
        for m in boto3.client("sqs")
        .receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        .get("Messages", [])
    ]
    drain(env)
    shards = list(runs(env).shards("e2e"))
    n = json.loads(catalog.read_text())["metadata"]["totals"]["shards"]
    assert len(shards) == n and {s.status for s in shards} <= {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}
    run = runs(env).get_run("e2e")
    assert sum(run.counts.values()) == n
    ds = xr.open_zarr(open_store(run.store, read_only=True), group=FINEST)
    assert xdggs.decode(ds).dggs.grid_info.level == 12
    expected = {}
    for g in granules:
        expected.update(expected_cells(kept_points(g)))
    assert_matches_independent(ds, expected)
    assert run.observations == int(ds["count"].values.sum())
    # no credential value anywhere an operator or attacker would look
    client = boto3.client("dynamodb")
    items = client.query(
        TableName=env.run_table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "RUN#e2e"}}
    )["Items"]
    logs = capfd.readouterr()
    for secret in SECRET_PARTS:
        assert all(secret not in b for b in bodies)
        assert secret not in json.dumps(items)
        assert secret not in logs.out and secret not in logs.err
    assert bodies and all("credentials_parameter" in b for b in bodies)


def test_duplicate_delivery_is_processed_and_counted_once(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "dup", "--max-shards", "2") == 0
    first = boto3.client("sqs").receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0)[
        "Messages"
    ][0]
    drain(env)
    boto3.client("sqs").send_message(QueueUrl=env.queue_url, MessageBody=first["Body"])  # at-least-once: again
    drain(env)
    run = runs(env).get_run("dup")
    assert sum(run.counts.values()) == 2
    key = json.loads(first["Body"])["shard_key"]
    assert runs(env).get_shard("dup", key).attempts == 1


class QuietLog:
    """The handler's logger, minus the output."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def finishing_together(services: Services, barrier: threading.Barrier) -> Services:
    """These services' shard-finishing transactions start together with those of the others at the barrier."""
    client = services.runs.client
    transact = client.transact_write_items

    def at_the_barrier(**kwargs):
        barrier.wait(timeout=60)
        return transact(**kwargs)

    client.transact_write_items = at_the_barrier
    return services


def test_duplicate_deliveries_finishing_at_the_same_moment_are_counted_once(env, catalog, tmp_path):
    """At-least-once delivery: two handler calls hold copies of one shard message and finish it together."""
    shards, copies = min(8, len(json.loads(catalog.read_text())["shard_keys"])), 2
    assert submit(catalog, credentials_file(tmp_path), "simultaneous", "--max-shards", str(shards)) == 0
    sqs = boto3.client("sqs")
    bodies = []
    for _ in range(100):  # the queue hands out what it holds over a few receives
        got = sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        for m in got.get("Messages", []):
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=env.queue_url, ReceiptHandle=m["ReceiptHandle"])
        if len(bodies) == shards:
            break
    assert len(bodies) == shards
    for body in bodies:
        barrier = threading.Barrier(copies)
        calls = [finishing_together(Services.from_env(), barrier) for _ in range(copies)]
        with ThreadPoolExecutor(copies) as pool:
            outcomes = list(pool.map(lambda s: handle(body, 1, s, lambda: float("inf"), QuietLog()), calls))
        assert outcomes == [Outcome.DONE] * copies
    records = list(runs(env).shards("simultaneous"))
    statuses = {r.shard_key: r.status for r in records}
    assert set(statuses.values()) <= {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}, statuses
    run = runs(env).get_run("simultaneous")
    assert sum(run.counts.values()) == shards, run.counts
    assert run.observations == sum(r.observations for r in records)


def test_resubmitting_the_same_run_id_sends_nothing_new(env, catalog, tmp_path, capsys):
    creds = credentials_file(tmp_path)
    assert submit(catalog, creds, "again", "--max-shards", "2") == 0
    drain(env)
    assert submit(catalog, creds, "again", "--max-shards", "2") == 0
    assert "0 messages sent" in capsys.readouterr().out
    assert queue_counts(env.queue_url) == (0, 0)


def test_poison_messages_go_to_the_dlq_at_once(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "poison", "--max-shards", "2") == 0
    sqs = boto3.client("sqs")
    good = sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=2, VisibilityTimeout=0)["Messages"]
    bad = json.loads(good[0]["Body"])
    bad["grid"]["child_order"] = 11
    sqs.send_message(QueueUrl=env.queue_url, MessageBody=json.dumps(bad))
    sqs.send_message(QueueUrl=env.queue_url, MessageBody="{not json")
    drain(env)
    letters = dlq_messages(env)
    # SQS refuses an empty attribute value: the unreadable body's letter names no run, rather than ""
    assert all(v["StringValue"] for m in letters for v in m["MessageAttributes"].values())
    reasons = sorted(m["MessageAttributes"]["failure_reason"]["StringValue"] for m in letters)
    assert any("invalid shard message" in r for r in reasons) and any(
        "differs from the worker's grid" in r for r in reasons
    )
    shard = runs(env).get_shard("poison", bad["shard_key"])
    # the valid copy of that shard may have run first; then the bad copy did no work
    assert shard.status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY, ShardStatus.FAILED)
    other = json.loads(good[1]["Body"])["shard_key"]
    assert runs(env).get_shard("poison", other).status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY)
    _purge_dlq(env)


def test_store_outside_the_stack_is_refused(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "elsewhere", "--max-shards", "1") == 0
    sqs = boto3.client("sqs")
    message = sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"][0]
    body = json.loads(message["Body"])
    sqs.delete_message(QueueUrl=env.queue_url, ReceiptHandle=message["ReceiptHandle"])
    body["store"] = "s3://somebody-elses-bucket/x.zarr"
    sqs.send_message(QueueUrl=env.queue_url, MessageBody=json.dumps(body))
    drain(env)
    shard = runs(env).get_shard("elsewhere", body["shard_key"])
    assert shard.status == ShardStatus.FAILED and "refusing to write s3://somebody-elses-bucket" in shard.last_error
    _purge_dlq(env)


def test_expired_credentials_fail_then_refresh_and_redrive_succeed(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "expired", "--max-shards", "1") == 0
    run = runs(env).get_run("expired")
    stale = S3Credentials.model_validate(
        {"accessKeyId": "A", "secretAccessKey": "B", "sessionToken": "C", "expiration": "2020-01-01T00:00:00+00:00"}
    )
    boto3.client("ssm").put_parameter(
        Name=run.credentials_parameter, Value=stale.to_parameter_value(), Type="SecureString", Overwrite=True
    )
    drain(env)
    (shard,) = runs(env).shards("expired")
    assert shard.status == ShardStatus.FAILED and "expired" in shard.last_error and "redrive" in shard.last_error
    assert runs(env).get_run("expired").counts[ShardStatus.FAILED] == 1
    fresh = credentials_file(tmp_path, name="fresh.json")
    assert (
        producer_main(["redrive", "--run-id", "expired", "--refresh-credentials", "--credentials-file", str(fresh)])
        == 0
    )
    assert runs(env).get_shard("expired", shard.shard_key).status == ShardStatus.PENDING
    drain(env)
    run = runs(env).get_run("expired")
    assert runs(env).get_shard("expired", shard.shard_key).status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY)
    assert run.counts[ShardStatus.FAILED] == 0 and sum(run.counts.values()) == 1


def test_missing_granule_makes_a_partial_shard_naming_it_and_resubmit_mends_it(
    env, catalog, granules, tmp_path, capsys
):
    doc = json.loads(catalog.read_text())
    key = doc["shard_keys"][0]
    doc["shards"][str(key)].append(
        {
            "id": "ATL06_20220101000000_99991411_006_01.h5",
            "s3": "s3://nsidc-test/ATL06/ATL06_20220101000000_99991411_006_01.h5",
        }
    )
    catalog.write_text(json.dumps(doc))
    assert submit(catalog, credentials_file(tmp_path), "partial", "--shard", str(key)) == 0
    drain(env)
    shard = runs(env).get_shard("partial", key)
    assert shard.status == ShardStatus.PARTIAL
    assert [f.granule for f in shard.granules_failed] == ["ATL06_20220101000000_99991411_006_01.h5"]
    assert shard.granules_failed[0].kind == "missing"
    capsys.readouterr()
    assert producer_main(["status", "partial"]) == EXIT_PARTIAL_SHARDS
    out = capsys.readouterr().out
    assert "PARTIAL shard" in out and "ATL06_20220101000000_99991411_006_01.h5: missing" in out
    # the operator fixes the cause and resubmits from the run records (no DLQ message exists for PARTIAL)
    boto3.client("s3").upload_file(str(granules[0]), "nsidc-test", "ATL06/ATL06_20220101000000_99991411_006_01.h5")
    assert producer_main(["resubmit", "partial", "--status", "PARTIAL"]) == 0
    assert runs(env).get_shard("partial", key).status == ShardStatus.PENDING
    drain(env)
    shard = runs(env).get_shard("partial", key)
    assert shard.status == ShardStatus.SUCCEEDED and shard.granules_failed == [] and shard.last_error is None
    run = runs(env).get_run("partial")
    assert run.counts[ShardStatus.PARTIAL] == 0 and run.counts[ShardStatus.SUCCEEDED] == 1


def test_truncated_granule_is_corrupt_on_the_first_receive_and_the_shard_partial(env, catalog, granules, tmp_path):
    """S3 answers 416 (or a short body) for a range past a truncated object's end: no retry can
    mend that, so the first receive finishes the shard PARTIAL with the other granules' data."""
    doc = json.loads(catalog.read_text())
    key = doc["shard_keys"][0]
    cut = tmp_path / "ATL06_20220101000000_99981411_006_01.h5"
    cut.write_bytes(granules[0].read_bytes()[: granules[0].stat().st_size // 2])
    upload("nsidc-test", [cut])
    doc["shards"][str(key)].append({"id": cut.name, "s3": f"s3://nsidc-test/ATL06/{cut.name}"})
    catalog.write_text(json.dumps(doc))
    assert submit(catalog, credentials_file(tmp_path), "cut", "--shard", str(key)) == 0
    assert deliver(env) == []  # not left for redelivery
    assert queue_counts(env.queue_url) == (0, 0)
    shard = runs(env).get_shard("cut", key)
    assert shard.status == ShardStatus.PARTIAL and shard.attempts == 1
    assert [(f.granule, f.kind) for f in shard.granules_failed] == [(cut.name, "corrupt")]
    assert "truncated" in shard.granules_failed[0].reason and shard.observations > 0


def test_near_deadline_stops_before_writing_and_retries(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "deadline", "--max-shards", "1") == 0
    failed = deliver(env, seconds_left=5.0)  # under the 30 s margin: stop at once
    assert len(failed) == 1
    (shard,) = runs(env).shards("deadline")
    assert shard.status == ShardStatus.PENDING and "deadline" in shard.last_error
    drain(env)
    assert runs(env).get_shard("deadline", shard.shard_key).status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY)


def test_large_granule_lists_travel_through_s3(env, catalog, tmp_path, monkeypatch):
    import producer.submit as submit_module

    monkeypatch.setattr(submit_module, "INLINE_GRANULES_MAX_BYTES", 10)
    assert submit(catalog, credentials_file(tmp_path), "pointer", "--max-shards", "1") == 0
    body = json.loads(
        boto3.client("sqs").receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0)[
            "Messages"
        ][0]["Body"]
    )
    assert "granules" not in body and body["granules_url"].startswith(f"s3://{env.output_bucket}/runs/pointer/")
    drain(env)
    assert next(runs(env).shards("pointer")).status in (ShardStatus.SUCCEEDED, ShardStatus.EMPTY)


def test_submit_refuses_expired_credentials(env, catalog, tmp_path, capsys):
    creds = credentials_file(tmp_path, expiration="2020-01-01T00:00:00+00:00")
    assert submit(catalog, creds, "stale") == 3
    err = capsys.readouterr().err
    assert "expired" in err and SECRET_PARTS[1] not in err


def _purge_dlq(env) -> None:
    empty_queue(env.dead_letter_queue_url)

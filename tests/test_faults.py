"""Faults found from outside, each against the embedded stack over HTTP with the real handler:
the DLQ redriven whole, failures recorded through throttling, messages that disagree with their
shard record, poison copies of a running shard, refused output and read credentials."""

from __future__ import annotations

import json

import boto3
import botocore.config
import pytest
import xarray as xr

from producer.cli import main as producer_main
from shared.credentials import S3Credentials, put_credentials
from shared.grid import shard_nested_id
from shared.messages import ShardMessage
from shared.results import ShardResult, ShardStatus
from shared.runstatus import StartOutcome
from shared.store import open_store
from tests.fault_helpers import Throttle, refusing_s3
from tests.independent import expected_cells, kept_points
from tests.pipeline import FINEST
from tests.queue_helpers import SECRET_PARTS, credentials_file, deliver, drain, empty_queue, queue_counts, runs, submit
from tests.test_real_data import assert_matches_independent
from worker import handler

pytestmark = pytest.mark.integration

STALE = {
    "accessKeyId": "AKIASTALEKEY00000000",
    "secretAccessKey": "stale-secret-value-0",
    "expiration": "2020-01-01T00:00:00+00:00",
}


def expire_credentials(env, run_id: str) -> None:
    run = runs(env).get_run(run_id)
    put_credentials(boto3.client("ssm"), run.credentials_parameter, S3Credentials.model_validate(STALE))


def held_messages(env, n: int) -> list[dict]:
    """Receive ``n`` messages of the shard queue and keep them hidden until released."""
    sqs, got = boto3.client("sqs"), []
    while len(got) < n:
        got += sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=120).get(
            "Messages", []
        )
    return got


def release(env, messages: list[dict]) -> None:
    for m in messages:
        boto3.client("sqs").change_message_visibility(
            QueueUrl=env.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )


def dlq_reasons(env) -> list[dict[str, str]]:
    from shared.deadletters import release as release_dlq
    from shared.deadletters import sweep

    letters = sweep(boto3.client("sqs"), env.dead_letter_queue_url, hold_seconds=30)
    release_dlq(boto3.client("sqs"), env.dead_letter_queue_url, letters)
    return [d.model_dump() for d in letters]


def purge_dlq(env) -> None:
    empty_queue(env.dead_letter_queue_url)


def store_chunks(store: str) -> list[str]:
    """Statistics chunks written to a run's store (the template writes only its coordinates)."""
    bucket, _, prefix = store.removeprefix("s3://").partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return [
        o["Key"]
        for page in pages
        for o in page.get("Contents", [])
        if "/c/" in o["Key"] and o["Key"].split("/c/")[0].rsplit("/", 1)[1] not in TEMPLATE_ARRAYS
    ]


TEMPLATE_ARRAYS = ("cell_ids", "time", "time_end", "cycle")  # written by the producer, not by shards


def assert_shards_match_independent(store: str, granules, messages: list[dict]) -> None:
    """The shards of ``messages`` in the store equal the independent computation, cell by cell."""
    ds = xr.open_zarr(open_store(store, read_only=True), group=FINEST)
    expected = {}
    for g in granules:
        expected.update(expected_cells(kept_points(g)))
    for m in messages:
        n = m["grid"]["child_order"] - m["grid"]["parent_order"]
        cells = ds.isel(cells=slice(m["shard_index"] * 4**n, (m["shard_index"] + 1) * 4**n))
        nested = shard_nested_id(m["shard_key"])
        assert_matches_independent(cells, {c: v for c, v in expected.items() if c >> (2 * n) == nested})


def throttled_services(operations: tuple[str, ...], times: int) -> Throttle:
    """The warm container's run table client, answering ``times`` writes with ThrottlingException.
    botocore's own retries are off, so what is retried is the service's doing."""
    services = handler.services()
    services.runs.client = boto3.client(
        "dynamodb", config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 1})
    )
    services.runs._sleep = lambda seconds: None
    return Throttle(services.runs.client, operations, times)


# -- 1. redrive moves every message of the selected runs -------------------------------------------
def test_redrive_moves_every_message_of_the_selected_runs_and_releases_the_others(
    env, catalog, tmp_path, capsys, monkeypatch
):
    n = len(json.loads(catalog.read_text())["shard_keys"])
    sizes = {"dlq-a": min(6, n), "dlq-b": min(6, n), "dlq-c": min(2, n)}
    creds = credentials_file(tmp_path)
    for run_id, size in sizes.items():
        assert submit(catalog, creds, run_id, "--max-shards", str(size)) == 0
        expire_credentials(env, run_id)
    drain(env)
    total = sum(sizes.values())
    assert queue_counts(env.dead_letter_queue_url) == (total, 0)
    for run_id, size in sizes.items():
        assert runs(env).get_run(run_id).counts[ShardStatus.FAILED] == size

    fresh = ["--credentials-file", str(credentials_file(tmp_path, name="fresh.json"))]  # expired ones are refreshed
    capsys.readouterr()
    assert producer_main(["redrive", "--run-id", "dlq-a", *fresh]) == 0
    assert f"moved {sizes['dlq-a']} messages" in capsys.readouterr().out
    # the other runs' messages are visible again at once, none is hidden
    assert queue_counts(env.dead_letter_queue_url) == (sizes["dlq-b"] + sizes["dlq-c"], 0)
    assert queue_counts(env.queue_url) == (sizes["dlq-a"], 0)
    assert {s.status for s in runs(env).shards("dlq-a")} == {ShardStatus.PENDING}
    assert runs(env).get_run("dlq-a").counts[ShardStatus.FAILED] == 0

    assert producer_main(["redrive", "--run-id", "dlq-b", *fresh]) == 0
    assert f"moved {sizes['dlq-b']} messages" in capsys.readouterr().out
    assert queue_counts(env.dead_letter_queue_url) == (sizes["dlq-c"], 0)

    # SQS's own move task (the emulator has none: here it moves the messages as SQS would)
    def move_task(stack):
        sqs = boto3.client("sqs")
        while got := sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for m in got:
                sqs.send_message(QueueUrl=stack.queue_url, MessageBody=m["Body"])
                sqs.delete_message(QueueUrl=stack.dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])
        return True

    monkeypatch.setattr("producer.redrive.start_move_task", move_task)
    assert producer_main(["redrive", *fresh]) == 0
    assert "move task" in capsys.readouterr().out
    assert queue_counts(env.dead_letter_queue_url) == (0, 0)
    assert queue_counts(env.queue_url) == (total, 0)
    # the move-task path and the manual path leave the shard records in the same state
    by_hand = {(s.status, s.attempts) for s in runs(env).shards("dlq-a")}
    by_task = {(s.status, s.attempts) for s in runs(env).shards("dlq-c")}
    assert by_hand == by_task == {(ShardStatus.PENDING, 1)}
    assert all(runs(env).get_run(r).counts[ShardStatus.FAILED] == 0 for r in sizes)

    drain(env)
    for run_id, size in sizes.items():
        run = runs(env).get_run(run_id)
        assert run.counts[ShardStatus.FAILED] == 0 and sum(run.counts.values()) == size


def test_redrive_of_an_unknown_run_is_an_error(env, capsys):
    assert producer_main(["redrive", "--run-id", "no-such-run"]) == 2
    assert "no run no-such-run" in capsys.readouterr().err


# -- 2. a failure is recorded through throttling, or shown from the DLQ -------------------------------
def test_failure_is_recorded_while_dynamodb_throttles(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "throttled", "--max-shards", "1") == 0
    expire_credentials(env, "throttled")
    throttle = throttled_services(("TransactWriteItems",), times=5)
    assert deliver(env) == []  # refused credentials: dead-lettered at once
    (shard,) = runs(env).shards("throttled")
    assert shard.status == ShardStatus.FAILED and "expired" in shard.last_error
    assert throttle.calls == 6 and runs(env).get_run("throttled").counts[ShardStatus.FAILED] == 1
    (letter,) = dlq_reasons(env)
    assert letter["shard_recorded_failed"] is True and "expired" in letter["reason"]
    purge_dlq(env)


def test_failure_dynamodb_never_accepts_is_shown_by_status(env, catalog, tmp_path, capsys):
    assert submit(catalog, credentials_file(tmp_path), "unrecorded", "--max-shards", "1") == 0
    throttled_services(("UpdateItem", "TransactWriteItems", "PutItem"), times=10**6)  # not the test's own client
    expire_credentials(env, "unrecorded")
    drain(env)  # every receive fails to start the shard; the last one gives up
    (shard,) = runs(env).shards("unrecorded")
    assert shard.status == ShardStatus.PENDING  # DynamoDB never took the write
    (letter,) = dlq_reasons(env)
    assert letter["shard_recorded_failed"] is False and letter["reason"].startswith(
        "gave up after 5 attempts: AWS error"
    )
    capsys.readouterr()
    assert producer_main(["status", "unrecorded"]) == 1
    out = capsys.readouterr().out
    assert (
        f"DEAD-LETTERED shard {shard.shard_key} [not on its shard record" in out and "gave up after 5 attempts" in out
    )
    assert producer_main(["status", "unrecorded", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["finished"] and report["dead_lettered"][0]["recorded"] is False
    purge_dlq(env)


# -- 3. a message that disagrees with its shard record writes nothing ---------------------------------
def test_message_carrying_another_shards_index_is_poison_and_writes_nothing(env, catalog, granules, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "forged", "--max-shards", "2") == 0
    real = held_messages(env, 2)
    x, y = (json.loads(m["Body"]) for m in real)
    forged = {**x, "shard_index": y["shard_index"]}
    boto3.client("sqs").send_message(QueueUrl=env.queue_url, MessageBody=json.dumps(forged))
    assert deliver(env) == []
    store = runs(env).get_run("forged").store
    assert store_chunks(store) == [], "the forged message wrote chunks"
    (letter,) = dlq_reasons(env)
    assert "not the one submitted" in letter["reason"] and f"shard_index is {y['shard_index']}" in letter["reason"]
    assert runs(env).get_shard("forged", y["shard_key"]).status == ShardStatus.PENDING
    release(env, real)
    drain(env)
    shards = {s.shard_key: s for s in runs(env).shards("forged")}
    assert {s.status for s in shards.values()} <= {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}
    run = runs(env).get_run("forged")
    assert run.counts[ShardStatus.FAILED] == 0 and sum(run.counts.values()) == 2
    assert_shards_match_independent(store, granules, [x, y])
    purge_dlq(env)


def succeeded(shard_key: int) -> ShardResult:
    """What a worker reports for a shard it read: one granule, five points."""
    return ShardResult(
        shard_key=shard_key,
        status=ShardStatus.SUCCEEDED,
        granules_read=1,
        observations=5,
        cells_with_data=1,
        duration_s=1.0,
    )


# -- 4. only the invocation that holds a shard may end it ---------------------------------------------
def test_poison_copy_cannot_end_a_running_shard(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "held", "--max-shards", "1") == 0
    (real,) = held_messages(env, 1)
    body = json.loads(real["Body"])
    message = ShardMessage.model_validate(body)
    start = runs(env).start("held", message.shard_key, message.digest(), "the-real-invocation")
    assert start.outcome is StartOutcome.STARTED
    for copy in ({**body, "schema_version": 99}, {**body, "grid": {**body["grid"], "child_order": 11}}):
        boto3.client("sqs").send_message(QueueUrl=env.queue_url, MessageBody=json.dumps(copy))
        assert deliver(env) == []
        shard = runs(env).get_shard("held", message.shard_key)
        assert shard.status == ShardStatus.RUNNING and shard.holder == "the-real-invocation"
    result = succeeded(message.shard_key)
    assert runs(env).finish("held", result, "the-real-invocation")
    run = runs(env).get_run("held")
    assert run.counts[ShardStatus.SUCCEEDED] == 1 and run.counts[ShardStatus.FAILED] == 0
    boto3.client("sqs").delete_message(QueueUrl=env.queue_url, ReceiptHandle=real["ReceiptHandle"])
    purge_dlq(env)


def test_duplicate_that_takes_a_shard_over_counts_it_once(env, catalog, tmp_path):
    assert submit(catalog, credentials_file(tmp_path), "takeover", "--max-shards", "1") == 0
    (real,) = held_messages(env, 1)
    message = ShardMessage.model_validate_json(real["Body"])
    store = runs(env)
    assert store.start("takeover", message.shard_key, message.digest(), "first").outcome is StartOutcome.STARTED
    assert store.start("takeover", message.shard_key, message.digest(), "second").outcome is StartOutcome.STARTED
    result = succeeded(message.shard_key)
    assert not store.finish("takeover", result, "first")  # taken over: its end is not counted
    assert not store.fail("takeover", message.shard_key, "late failure", "first")
    assert store.finish("takeover", result, "second")
    assert not store.finish("takeover", result, "second")
    assert sum(store.get_run("takeover").counts.values()) == 1
    boto3.client("sqs").delete_message(QueueUrl=env.queue_url, ReceiptHandle=real["ReceiptHandle"])


# -- 8. refused output credentials: FAILED at once, no secret anywhere --------------------------------
OUTPUT_SECRETS = ("AKIAOUTPUTKEY1234567", "output-secret-value-xyz", "output-session-token-abc")


def test_output_store_refusing_the_credentials_fails_at_once_and_leaks_nothing(env, catalog, tmp_path, capfd):
    out = tmp_path / "out.json"
    key, secret, token = OUTPUT_SECRETS
    out.write_text(json.dumps({"accessKeyId": key, "secretAccessKey": secret, "sessionToken": token}))
    assert (
        submit(catalog, credentials_file(tmp_path), "refused-out", "--max-shards", "1", "--output-creds", str(out)) == 0
    )
    body = json.loads(
        boto3.client("sqs").receive_message(QueueUrl=env.queue_url, VisibilityTimeout=0)["Messages"][0]["Body"]
    )
    with refusing_s3() as endpoint:  # the external store now refuses these credentials
        refused = S3Credentials.model_validate(
            {"accessKeyId": key, "secretAccessKey": secret, "sessionToken": token, "endpointUrl": endpoint}
        )
        put_credentials(boto3.client("ssm"), body["output_credentials_parameter"], refused)
        drain(env)
    shard = runs(env).get_shard("refused-out", body["shard_key"])
    assert shard.status == ShardStatus.FAILED and shard.attempts == 1
    assert "the output store refused the credentials" in shard.last_error
    letters = dlq_reasons(env)
    capfd_out = capfd.readouterr()
    items = boto3.client("dynamodb").query(
        TableName=env.run_table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "RUN#refused-out"}},
    )["Items"]
    assert producer_main(["status", "refused-out"]) == 1
    status_out = capfd.readouterr()
    for value in (*OUTPUT_SECRETS, *SECRET_PARTS):
        assert value not in json.dumps(items)
        assert value not in json.dumps(letters)
        assert value not in capfd_out.out + capfd_out.err
        assert value not in status_out.out + status_out.err
    purge_dlq(env)


# -- 9. a refused read drops the cached credentials and reads the parameter again -----------------------
def test_warm_worker_reads_refreshed_credentials_after_a_refusal(env, catalog, tmp_path):
    creds = credentials_file(tmp_path)
    assert submit(catalog, creds, "warm", "--max-shards", "2") == 0
    run = runs(env).get_run("warm")
    good = S3Credentials.model_validate_json(json.dumps(json.loads(creds.read_text())))
    with refusing_s3() as endpoint:
        put_credentials(
            boto3.client("ssm"), run.credentials_parameter, good.model_copy(update={"endpoint_url": endpoint})
        )
        assert deliver(env) == []  # caches the refused credentials, then fails the shard: they are refused twice
        failed = [s for s in runs(env).shards("warm") if s.status == ShardStatus.FAILED]
        assert len(failed) == 1 and "refused" in failed[0].last_error
        put_credentials(boto3.client("ssm"), run.credentials_parameter, good)  # the operator refreshes them
        drain(env)  # the same warm container: its cache still holds the refused ones
    statuses = {s.shard_key: s.status for s in runs(env).shards("warm")}
    assert statuses.pop(failed[0].shard_key) == ShardStatus.FAILED
    assert set(statuses.values()) <= {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}
    purge_dlq(env)

"""Sending shard messages: batches of 10 within SQS's size limit, partial failures retried, nothing silently dropped."""

from __future__ import annotations

from producer.submit import Plan, send_all
from shared.config import load_config
from shared.grid import DEFAULT_GRID
from shared.messages import ShardMessage
from shared.settings import SQS_MAX_MESSAGE_BYTES
from shared.windows import PlacedWindow, cycle_window


def message(i: int, granules: int = 1) -> ShardMessage:
    return ShardMessage(
        run_id="r",
        shard_key=i,
        shard_index=i,
        grid=DEFAULT_GRID,
        config=load_config(),
        store="s3://b/p/r.zarr",
        granules=[{"id": f"g{i}-{k}", "s3": f"s3://src/g{i}-{k}.h5"} for k in range(granules)],
        credentials_parameter="/stack/runs/r/read-credentials",
        windows=[PlacedWindow(**cycle_window(14).model_dump(), index=0)],
    )


class FlakySQS:
    """Fails the first entry of every batch on the first try, and one whole call."""

    def __init__(self, always_failing: set[int] = frozenset()):
        self.calls, self.sent, self.always_failing, self.seen = 0, [], always_failing, set()

    def send_message_batch(self, QueueUrl, Entries):
        self.calls += 1
        assert len(Entries) <= 10
        if sum(len(e["MessageBody"].encode()) for e in Entries) > SQS_MAX_MESSAGE_BYTES:
            raise ValueError("BatchRequestTooLong")  # what SQS answers: the whole call fails
        if self.calls == 2:
            raise ConnectionError("network blip")
        ok, failed = [], []
        for e in Entries:
            key = ShardMessage.model_validate_json(e["MessageBody"]).shard_key
            if key in self.always_failing or (key % 10 == 0 and key not in self.seen):
                self.seen.add(key)
                failed.append({"Id": e["Id"], "Code": "InternalError", "SenderFault": False})
            else:
                ok.append({"Id": e["Id"]})
                self.sent.append(key)
        return {"Successful": ok, "Failed": failed}


def test_partial_batch_failures_are_retried():
    sqs = FlakySQS()
    unsent = send_all(sqs, "url", [message(i) for i in range(25)], sleep=lambda s: None)
    assert unsent == []
    assert sorted(sqs.sent) == list(range(25))


def test_large_messages_go_in_smaller_batches():
    """Shards with many granules make messages of tens of kB: ten of them exceed a batch's limit."""
    messages = [message(i, granules=1000) for i in range(1, 24)]
    assert 30_000 < len(messages[0].body()) < SQS_MAX_MESSAGE_BYTES // 2
    sqs = FlakySQS()
    assert send_all(sqs, "url", messages, sleep=lambda s: None) == []
    assert sorted(sqs.sent) == list(range(1, 24))


def test_messages_that_never_go_are_returned_not_dropped():
    sqs = FlakySQS(always_failing={7, 13})
    unsent = send_all(sqs, "url", [message(i) for i in range(25)], sleep=lambda s: None)
    assert sorted(m.shard_key for m in unsent) == [7, 13]
    assert sorted(sqs.sent) == [i for i in range(25) if i not in (7, 13)]


def test_message_names_the_parameter_not_the_credentials():
    body = message(1).body()
    assert '"credentials_parameter":"/stack/runs/r/read-credentials"' in body
    assert "secret" not in body.lower() and "accessKeyId" not in body


def test_cost_estimate():
    plan = Plan("r", list(range(1330)), 76000, "s3://b/x.zarr", seconds_per_shard=60, memory_mb=2048)
    # 1,330 shards x 60 s x 2 GB x $0.0000133334 per GB-s, plus requests
    assert abs(plan.cost - (1330 * 120 * 0.0000133334 + 1330 * 0.2e-6)) < 1e-9


def test_the_estimate_uses_measured_seconds_and_says_where_they_come_from():
    from producer.submit import ASSUMED_SECONDS_PER_SHARD, seconds_per_shard
    from shared.results import ShardStatus
    from shared.runstatus import RunKind, RunRecord

    class Runs:
        def __init__(self, records):
            self.records = records

        def recent_runs(self, limit):
            return self.records[:limit]

    def run(run_id, counts, compute):
        return RunRecord(
            run_id=run_id,
            catalog="c",
            catalog_hash="h",
            config={},
            store="s",
            credentials_parameter="p",
            shards=10,
            granules=10,
            counts=counts,
            compute_seconds=compute,
        )

    fresh = run("fresh", {}, 0.0)
    done = run("done", {ShardStatus.SUCCEEDED: 8, ShardStatus.EMPTY: 2}, 250.0)
    assert seconds_per_shard(None, Runs([fresh, done])) == (25.0, "measured: mean of run done's 10 finished shards")
    indexes = run("indexes", {ShardStatus.SUCCEEDED: 10}, 20.0).model_copy(update={"kind": RunKind.INDEXES})
    assert seconds_per_shard(None, Runs([indexes, done]))[0] == 25.0  # an index run's granules are not shards
    assert seconds_per_shard(90.0, Runs([done]))[0] == 90.0
    seconds, source = seconds_per_shard(None, Runs([fresh]))
    assert seconds == ASSUMED_SECONDS_PER_SHARD and source.startswith("assumed")

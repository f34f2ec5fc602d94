import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

# Tests never reach a real AWS account.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-west-2")
os.environ.setdefault("AWS_REGION", "us-west-2")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real ATL06 files beside the project (../shared/data); skip where they are absent."""
    if not (DATA / "atl06").is_dir():
        pytest.skip("real ATL06 data not found at ../shared/data (a clone outside the workspace)")
    return DATA


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory):
    """The embedded stack (moto server on loopback, template.yaml deployed), one per test session."""
    import uuid

    from producer import stack

    root = tmp_path_factory.mktemp("stack")
    state = stack.up(root, stack_name=f"t{uuid.uuid4().hex[:8]}")
    try:
        yield state
    finally:
        stack.down(root)


@pytest.fixture(scope="module")
def empty_queues(embedded_stack):
    """Each module starts with the shard queue and the DLQ empty, whatever an earlier module left."""
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        for key, value in embedded_stack.environment().items():
            mp.setenv(key, value)
        from shared.deployed import load_stack

        outputs = load_stack(embedded_stack.stack_name)
        sqs = boto3.client("sqs")
        for url in (outputs.queue_url, outputs.dead_letter_queue_url):  # PurgeQueue is allowed once a minute
            while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages"):
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    return embedded_stack


@pytest.fixture
def stack_env(empty_queues, monkeypatch):
    """Point boto3, h5coro and the Zarr writer at the embedded stack for one test."""
    for key, value in empty_queues.environment().items():
        monkeypatch.setenv(key, value)
    return empty_queues

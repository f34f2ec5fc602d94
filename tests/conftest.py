import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
GREENLAND = "processed_ATL06_20190416093911_02770303_002_01.h5"

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
    from tests.queue_helpers import empty_queue

    with pytest.MonkeyPatch.context() as mp:
        for key, value in embedded_stack.environment().items():
            mp.setenv(key, value)
        from shared.deployed import load_stack

        outputs = load_stack(embedded_stack.stack_name)
        for url in (outputs.queue_url, outputs.dead_letter_queue_url):
            empty_queue(url)
    return embedded_stack


@pytest.fixture
def stack_env(empty_queues, monkeypatch):
    """Point boto3, h5coro and the Zarr writer at the embedded stack for one test."""
    for key, value in empty_queues.environment().items():
        monkeypatch.setenv(key, value)
    return empty_queues


@pytest.fixture
def greenland_catalog(data_dir, tmp_path):
    """A catalog of the real Greenland granule, built by the real command."""
    import subprocess
    import sys

    from tests.pipeline import link_granules

    folder = link_granules([data_dir / "atl06" / GREENLAND], tmp_path / "g")
    path = tmp_path / "catalog.json"
    built = subprocess.run(
        [sys.executable, "-m", "producer", "catalog", "--granules", str(folder), "--output", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return path


# -- the queue service on the embedded stack ------------------------------------------------------
@pytest.fixture(scope="module")
def granules(tmp_path_factory):
    """Three seeded synthetic granules crossing Antarctic shards."""
    from producer.synthetic import generate

    return generate(tmp_path_factory.mktemp("granules"), n_granules=3, n_segments=1500, spacing_m=400.0, seed=7)


@pytest.fixture
def env(stack_env, monkeypatch):
    """The worker function's own environment on the embedded stack, with a fresh handler state."""
    from tests.queue_helpers import worker_environment

    return worker_environment(monkeypatch)


@pytest.fixture
def catalog(env, granules, tmp_path):
    """A catalog of ``granules``, uploaded to the emulator's S3."""
    import uuid

    from producer.cli import main as producer_main
    from tests.queue_helpers import upload

    # a prefix of its own: the stack (and its buckets) outlive the module, other tests upload too
    prefix = upload("nsidc-test", granules, prefix=f"ATL06-{uuid.uuid4().hex[:8]}/")
    path = tmp_path / "catalog.json"
    assert producer_main(["catalog", "--granules", prefix, "--output", str(path)]) == 0
    return path

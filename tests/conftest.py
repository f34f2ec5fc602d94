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


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory):
    """The embedded stack (moto server on loopback, template.yaml deployed), one per test module."""
    import uuid

    from producer import stack

    root = tmp_path_factory.mktemp("stack")
    state = stack.up(root, stack_name=f"t{uuid.uuid4().hex[:8]}")
    try:
        yield state
    finally:
        stack.down(root)


@pytest.fixture
def stack_env(embedded_stack, monkeypatch):
    """Point boto3, h5coro and the Zarr writer at the embedded stack for one test."""
    for key, value in embedded_stack.environment().items():
        monkeypatch.setenv(key, value)
    return embedded_stack

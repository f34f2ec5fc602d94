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
        pytest.skip(f"real ATL06 data not found at ../shared/data (a clone outside the workspace)")
    return DATA

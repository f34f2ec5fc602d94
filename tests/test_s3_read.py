"""The same path with granules on S3, read through the S3 range driver (moto, in-process)."""

from __future__ import annotations

import json

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from producer.stack import upload_granules
from shared.results import FailureKind
from tests.independent import expected_cells, kept_points
from tests.pipeline import assemble_native, run_pipeline
from tests.test_real_data import GREENLAND, assert_matches_independent
from worker.granule_io import classify_client_error

BUCKET = "granules"


@pytest.fixture
def s3_granules(data_dir, tmp_path):
    antarctic = assemble_native(
        sorted((data_dir / "atl06-flat-antarctic").glob("ATL06_20190101001723_00540210_*_gt*.h5")),
        tmp_path / "ATL06_20190101001723_00540210_209_01.h5",
    )
    files = [data_dir / "atl06" / GREENLAND, antarctic]
    with mock_aws():
        upload_granules(files, BUCKET, "atl06/", boto3.client("s3", region_name="us-west-2"))
        yield files


def test_s3_granules_match_independent(s3_granules, tmp_path):
    rc, ds = run_pipeline(f"s3://{BUCKET}/atl06/", tmp_path)
    assert rc == 0
    expected = {}
    for f in s3_granules:
        expected.update(expected_cells(kept_points(f)))
    assert_matches_independent(ds, expected)
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert all(g["s3"].startswith(f"s3://{BUCKET}/atl06/") for gs in catalog["shards"].values() for g in gs)


def test_missing_object_makes_the_shard_partial(s3_granules, tmp_path, capsys):
    from producer.cli import main as producer_main
    from worker.__main__ import main as worker_main

    catalog = tmp_path / "c.json"
    assert producer_main(["catalog", "--granules", f"s3://{BUCKET}/atl06/", "--output", str(catalog)]) == 0
    doc = json.loads(catalog.read_text())
    key = str(doc["shard_keys"][0])
    doc["shards"][key].append({"id": "ATL06_gone.h5", "s3": f"s3://{BUCKET}/atl06/ATL06_gone.h5"})
    catalog.write_text(json.dumps(doc))
    capsys.readouterr()
    assert worker_main(["--catalog", str(catalog), "--store", str(tmp_path / "o.zarr"), "--shard", key, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"shard {key} PARTIAL" in out and "ATL06_gone.h5: missing" in out


@pytest.mark.parametrize(
    "code,status,kind",
    [
        ("NoSuchKey", 404, FailureKind.MISSING),
        ("ExpiredToken", 400, FailureKind.DENIED),
        ("AccessDenied", 403, FailureKind.DENIED),
        ("InvalidAccessKeyId", 403, FailureKind.DENIED),
        ("SlowDown", 503, FailureKind.TRANSIENT),
        ("InternalError", 500, FailureKind.TRANSIENT),
    ],
)
def test_s3_errors_are_classified(code, status, kind):
    err = botocore.exceptions.ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")
    assert classify_client_error(err) == kind

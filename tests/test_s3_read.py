"""The same path with granules on S3, read through the S3 byte source from the embedded emulator over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest

from producer.stack import upload_granules
from shared.errors import EXIT_PARTIAL_SHARDS
from shared.granules.io import GranuleReadError, ReadContext, S3RangeReader, S3Source
from shared.results import FailureKind
from tests.conftest import GREENLAND
from tests.independent import expected_cells, kept_points
from tests.pipeline import assemble_native, run_pipeline
from tests.test_real_data import assert_matches_independent

BUCKET = "granules"


@pytest.fixture
def s3_granules(data_dir, tmp_path, stack_env):
    antarctic = assemble_native(
        sorted((data_dir / "atl06-flat-antarctic").glob("ATL06_20190101001723_00540210_*_gt*.h5")),
        tmp_path / "ATL06_20190101001723_00540210_209_01.h5",
    )
    files = [data_dir / "atl06" / GREENLAND, antarctic]
    upload_granules(files, BUCKET, "atl06/")
    return files


def test_s3_granules_match_independent(s3_granules, tmp_path):
    rc, ds = run_pipeline(f"s3://{BUCKET}/atl06/", tmp_path)
    assert rc == 0
    cycles = [int(c) for c in ds["cycle"].values]
    assert cycles == [2, 3]  # the Antarctic granule's cycle, then Greenland's: one window each
    for f in s3_granules:
        points = kept_points(f)
        window = cycles.index(int(points["cycle"][0]))
        assert_matches_independent(ds.isel(time=[window]), expected_cells(points))
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
    assert (
        worker_main(["--catalog", str(catalog), "--store", str(tmp_path / "o.zarr"), "--shard", key, "--workers", "1"])
        == EXIT_PARTIAL_SHARDS
    )
    out = capsys.readouterr().out
    assert f"shard {key} PARTIAL" in out and "ATL06_gone.h5: missing" in out


@pytest.fixture
def signed_reads_enforced(stack_env):
    """An IAM user allowed to read the bucket; the emulator checks every request's signature
    until the test ends (moto's auth switch, reset afterwards)."""
    import boto3
    import requests

    iam = boto3.client("iam")
    user = f"reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    auth = f"{stack_env.endpoint}/moto-api/reset-auth"
    requests.post(auth, data=b"0", timeout=5).raise_for_status()
    try:
        yield {"accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}
    finally:
        requests.post(auth, data=b"inf", timeout=5).raise_for_status()


def test_signed_range_reads_pass_signature_checks(s3_granules, signed_reads_enforced):
    """The emulator recomputes each request's SigV4 signature: the headers the reader signs are
    the ones it sends, and a wrong secret or an unknown key is refused and classed DENIED."""
    location = f"s3://{BUCKET}/atl06/{GREENLAND}"
    driver = S3Source(location, ReadContext(s3=S3RangeReader(signed_reads_enforced)))
    assert driver.read(0, 8) == b"\x89HDF\r\n\x1a\n"
    expected = s3_granules[0].read_bytes()[1000:5000]
    assert driver.read(1000, 4000) == expected

    for wrong in (
        {**signed_reads_enforced, "secretAccessKey": "not-the-secret"},
        {"accessKeyId": "AKIAUNKNOWN000000000", "secretAccessKey": "x"},
    ):
        refused = S3Source(location, ReadContext(s3=S3RangeReader(wrong)))
        with pytest.raises(GranuleReadError) as info:
            refused.read(0, 8)
        assert info.value.kind == FailureKind.DENIED
        assert wrong["secretAccessKey"] not in str(info.value) and wrong["accessKeyId"] not in str(info.value)

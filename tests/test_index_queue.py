"""Granule indexes as queue work on the embedded stack: ``producer index``, the index queue's real
runner and handler, the run table, then a shard run that reads through the indexes.

The catalog here is what CMR gives (granules per shard, no ranges, no chunks), so without an
index a worker walks each granule's HDF5 metadata and searches latitude; with one, it reads
no metadata. The statistics are checked against an independent computation either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import h5py
import pytest
import xarray as xr

from producer.cli import main as producer_main
from shared.envelope import FAILURE_REASON
from shared.granules.index import index_location, read_index
from shared.granules.io import ReadContext, S3RangeReader
from shared.results import FINISHED, ShardStatus
from shared.runstatus import RunKind
from shared.store import open_store
from tests.independent import expected_cells, kept_points
from tests.pipeline import FINEST
from tests.queue_helpers import credentials_file, queue_counts, runs, submit, upload
from tests.test_real_data import assert_matches_independent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DONE = {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}


@pytest.fixture
def indexes_cleared(env):
    """The stack's index root is shared by every test: leave it as found (empty)."""
    yield env
    bucket, _, prefix = env.index_root.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])


@pytest.fixture
def cmr_like(indexes_cleared, granules, tmp_path):
    """The module's granules on the emulator's S3 and a catalog of them as CMR gives one (no
    ranges, no chunks); returns the catalog path and the S3 prefix."""
    prefix = upload("nsidc-index", granules, prefix=f"ATL06-{uuid.uuid4().hex[:8]}/")
    offline = tmp_path / "offline.json"
    assert producer_main(["catalog", "--granules", prefix, "--output", str(offline)]) == 0
    doc = json.loads(offline.read_text())
    for refs in doc["shards"].values():
        for ref in refs:
            ref.pop("segments", None)
            ref.pop("chunks", None)
    path = tmp_path / "cmr-like.json"
    path.write_text(json.dumps(doc))
    return path, prefix


def index(catalog: Path, creds: Path, *extra: str) -> int:
    return producer_main(["index", "--catalog", str(catalog), "--credentials-file", str(creds), *extra])


def work_queue(queue: str, tmp_path: Path) -> list[dict]:
    """``python -m worker --local --queue QUEUE --until-empty``; returns the function's log records."""
    log = tmp_path / f"{queue}-{uuid.uuid4().hex[:6]}.jsonl"
    got = subprocess.run(
        [sys.executable, "-m", "worker", "--local", "--queue", queue, "--until-empty", "--log-file", str(log)],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def index_run_id(output: str) -> str:
    return next(line.split()[3].rstrip(":") for line in output.splitlines() if line.startswith("submitted index run"))


def strategies_used(records: list[dict]) -> dict[str, int]:
    used: dict[str, int] = {}
    for r in records:
        for name, n in (r.get("strategies") or {}).items():
            used[name] = used.get(name, 0) + n
    return used


def nonzero(counts: dict) -> dict:
    return {status: n for status, n in counts.items() if n}


def expected_of(files: list[Path]) -> dict:
    expected = {}
    for f in files:
        expected.update(expected_cells(kept_points(f)))
    return expected


def test_indexes_are_built_as_queue_work_and_shards_read_through_them(env, cmr_like, granules, tmp_path, capsys):
    catalog, prefix = cmr_like
    creds = credentials_file(tmp_path)
    assert index(catalog, creds) == 0
    out = capsys.readouterr().out
    assert "3 granules" in out and "0 indexes current, 3 missing" in out
    run_id = index_run_id(out)
    assert queue_counts(env.index_queue_url) == (3, 0)

    work_queue("indexes", tmp_path)
    run = runs(env).get_run(run_id)
    assert run.kind is RunKind.INDEXES and nonzero(run.counts) == {ShardStatus.SUCCEEDED: 3}
    items = list(runs(env).shards(run_id))
    assert len(items) == 3 and all(i.status is ShardStatus.SUCCEEDED for i in items)
    for g in granules:  # each index is where the catalog's granules will look for it, and describes the granule
        got = read_index(index_location(env.index_root, g.name), ReadContext(s3=S3RangeReader()))
        assert got is not None and got.identity.size == g.stat().st_size

    # Indexing again finds every index current: nothing is sent.
    assert index(catalog, creds) == 0
    out = capsys.readouterr().out
    assert "3 indexes current, 0 missing, 0 stale" in out and "nothing to build" in out
    assert queue_counts(env.index_queue_url) == (0, 0)

    assert submit(catalog, creds, "through-indexes") == 0
    assert "3 of 3 granules have one" in capsys.readouterr().out
    log = work_queue("shards", tmp_path)
    assert strategies_used(log) == {
        "granule_index": sum(len(v) for v in json.loads(catalog.read_text())["shards"].values())
    }
    shards = list(runs(env).shards("through-indexes"))
    assert shards and {s.status for s in shards} <= DONE
    ds = xr.open_zarr(open_store(runs(env).get_run("through-indexes").store, read_only=True), group=FINEST)
    assert_matches_independent(ds, expected_of(granules))


def test_a_replaced_granule_is_reindexed_and_its_stale_index_never_trusted(env, cmr_like, granules, tmp_path, capsys):
    catalog, prefix = cmr_like
    creds = credentials_file(tmp_path)
    assert index(catalog, creds) == 0
    work_queue("indexes", tmp_path)
    capsys.readouterr()

    # The same granule, reprocessed: new heights in place of the indexed file's.
    replaced = granules[0]
    replacement = tmp_path / "new" / replaced.name
    replacement.parent.mkdir()
    shutil.copyfile(replaced, replacement)
    with h5py.File(replacement, "r+") as f:
        for beam in ("gt1l", "gt2r"):
            heights = f[f"{beam}/land_ice_segments/h_li"]
            heights[...] = heights[...] + 1.5
    bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
    upload(bucket, [replacement], prefix=key_prefix)

    # A shard run before the index is rebuilt reads the new file correctly: the stale index is not used.
    assert submit(catalog, creds, "stale-index") == 0
    capsys.readouterr()
    log = work_queue("shards", tmp_path)
    assert any("stale" in name for name in strategies_used(log)), strategies_used(log)
    shards = list(runs(env).shards("stale-index"))
    assert {s.status for s in shards} <= DONE
    ds = xr.open_zarr(open_store(runs(env).get_run("stale-index").store, read_only=True), group=FINEST)
    assert_matches_independent(ds, expected_of([replacement, *granules[1:]]))

    # Indexing again rebuilds exactly that one.
    assert index(catalog, creds) == 0
    out = capsys.readouterr().out
    assert "2 indexes current, 0 missing, 1 stale" in out
    body = json.loads(
        boto3.client("sqs").receive_message(QueueUrl=env.index_queue_url, VisibilityTimeout=0)["Messages"][0]["Body"]
    )
    assert body["granule"]["id"] == replaced.name
    work_queue("indexes", tmp_path)
    assert index(catalog, creds) == 0
    assert "3 indexes current" in capsys.readouterr().out


def test_a_granule_that_cannot_be_indexed_is_failed_named_and_dead_lettered(env, cmr_like, granules, tmp_path, capsys):
    catalog, prefix = cmr_like
    bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
    missing = granules[1].name
    creds = credentials_file(tmp_path)
    s3 = boto3.client("s3")
    s3.delete_object(Bucket=bucket, Key=f"{key_prefix}{missing}")
    try:
        assert index(catalog, creds) == 0
        out = capsys.readouterr().out
        assert "0 indexes current, 3 missing" in out
        run_id = index_run_id(out)
        work_queue("indexes", tmp_path)
        run = runs(env).get_run(run_id)
        assert nonzero(run.counts) == {ShardStatus.SUCCEEDED: 2, ShardStatus.FAILED: 1}
        (failed,) = [i for i in runs(env).shards(run_id) if i.status is ShardStatus.FAILED]
        assert failed.status in FINISHED and missing in failed.last_error
        letters = boto3.client("sqs").receive_message(
            QueueUrl=env.index_dead_letter_queue_url, MessageAttributeNames=["All"], VisibilityTimeout=0
        )["Messages"]
        assert len(letters) == 1 and missing in letters[0]["MessageAttributes"][FAILURE_REASON]["StringValue"]
        assert producer_main(["status", run_id]) != 0
        shown = capsys.readouterr().out
        assert "FAILED granule" in shown and missing in shown and "dead-letter queue: 1" in shown
    finally:
        sqs = boto3.client("sqs")
        while got := sqs.receive_message(QueueUrl=env.index_dead_letter_queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for m in got:
                sqs.delete_message(QueueUrl=env.index_dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])

"""Incremental runs on the embedded stack: a store remembers what each shard's windows were
written from, and submitting again sends only what changed or never finished complete."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime

import h5py
import pytest
import xarray as xr

from shared.catalog import GranuleRef
from shared.config import load_config
from shared.contenthash import content_hash, shard_hashes
from shared.grid import DEFAULT_GRID, GridSignature
from shared.results import ShardStatus
from shared.store import open_store
from shared.windows import PlacedWindow, TimeWindow
from tests.independent import expected_cells, kept_points
from tests.pipeline import FINEST
from tests.queue_helpers import credentials_file, drain, queue_counts, runs, submit, upload
from tests.test_real_data import assert_matches_independent

DONE = {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}
WINDOW = TimeWindow(start=datetime(2021, 1, 1, tzinfo=UTC), end=datetime(2021, 4, 2, tzinfo=UTC), cycle=10)


# -- the hash (pure) ------------------------------------------------------------------------------
def test_the_content_hash_covers_every_input():
    config = load_config(None)
    base = ({"a.h5": (10, '"e1"'), "b.h5": (20, '"e2"')}, config, DEFAULT_GRID, WINDOW, "code-1")
    digest = content_hash(*base)
    assert content_hash(*base) == digest
    assert content_hash({"b.h5": (20, '"e2"'), "a.h5": (10, '"e1"')}, *base[1:]) == digest  # order is not an input
    changed = [
        ({"a.h5": (11, '"e1"'), "b.h5": (20, '"e2"')}, *base[1:]),  # a granule's size
        ({"a.h5": (10, '"e9"'), "b.h5": (20, '"e2"')}, *base[1:]),  # its ETag
        ({"a.h5": None, "b.h5": (20, '"e2"')}, *base[1:]),  # not found
        ({"a.h5": (10, '"e1"')}, *base[1:]),  # one granule fewer
        (base[0], config.model_copy(update={"beams": ("gt1l",)}), *base[2:]),
        (base[0], config, GridSignature(child_order=11), WINDOW, "code-1"),
        (base[0], config, DEFAULT_GRID, WINDOW.model_copy(update={"end": datetime(2021, 4, 3, tzinfo=UTC)}), "code-1"),
        (*base[:4], "code-2"),
    ]
    assert len({content_hash(*inputs) for inputs in changed} | {digest}) == len(changed) + 1


def test_shard_hashes_use_the_identities_recorded_on_the_granules():
    config = load_config(None)
    windows = [PlacedWindow(**WINDOW.model_dump(), index=3)]
    seen = GranuleRef(id="a.h5", s3="s3://b/a.h5", size=10, etag='"e1"')
    (digest,) = shard_hashes([seen], config, DEFAULT_GRID, windows, "c").values()
    assert digest == content_hash({"a.h5": (10, '"e1"')}, config, DEFAULT_GRID, WINDOW, "c")
    assert shard_hashes([seen], config, DEFAULT_GRID, windows, "c").keys() == {3}
    unseen = GranuleRef(id="a.h5", s3="s3://b/a.h5")
    assert shard_hashes([unseen], config, DEFAULT_GRID, windows, "c")[3] != digest


# -- on the embedded stack ---------------------------------------------------------------------------
@pytest.mark.integration
def test_resubmitting_sends_only_what_changed_or_never_finished(env, catalog, granules, tmp_path, capsys):
    doc = json.loads(catalog.read_text())
    keys = doc["shard_keys"]
    store = f"s3://{env.output_bucket}/{env.output_prefix}incremental-{uuid.uuid4().hex[:6]}.zarr"
    creds = credentials_file(tmp_path)

    assert submit(catalog, creds, "inc-first", "--store", store) == 0
    assert f"sending {len(keys)} shards ({len(keys)} new to the store" in capsys.readouterr().out
    drain(env)
    assert {s.status for s in runs(env).shards("inc-first")} <= DONE

    # Unchanged: nothing is sent, no run is created.
    assert submit(catalog, creds, "inc-again", "--store", store) == 0
    out = capsys.readouterr().out
    assert "sending 0 shards" in out and f"skipping {len(keys)}" in out and "nothing to send" in out
    assert queue_counts(env.queue_url) == (0, 0) and runs(env).get_run("inc-again") is None

    # One granule reprocessed (new heights, same name): exactly the shards that read it run again.
    changed = granules[0]
    replacement = tmp_path / "new" / changed.name
    replacement.parent.mkdir()
    shutil.copyfile(changed, replacement)
    with h5py.File(replacement, "r+") as f:
        heights = f["gt1l/land_ice_segments/h_li"]
        heights[...] = heights[...] + 2.5
    location = next(r["s3"] for refs in doc["shards"].values() for r in refs if r["id"] == changed.name)
    bucket, _, key = location.removeprefix("s3://").partition("/")
    upload(bucket, [replacement], prefix=key.removesuffix(changed.name))
    readers = {int(k) for k, refs in doc["shards"].items() if any(r["id"] == changed.name for r in refs)}
    assert 0 < len(readers) < len(keys), "the test needs a granule that only some shards read"

    assert submit(catalog, creds, "inc-changed", "--store", store) == 0
    out = capsys.readouterr().out
    assert f"sending {len(readers)} shards ({len(readers)} changed since written)" in out
    assert f"skipping {len(keys) - len(readers)}" in out
    assert {s.shard_key for s in runs(env).shards("inc-changed")} == readers
    drain(env)
    ds = xr.open_zarr(open_store(store, read_only=True), group=FINEST)
    expected = {}
    for g in [replacement, *granules[1:]]:
        expected.update(expected_cells(kept_points(g)))
    assert_matches_independent(ds, expected)


@pytest.mark.integration
def test_a_shard_that_did_not_finish_complete_is_sent_again(env, catalog, granules, tmp_path, capsys):
    doc = json.loads(catalog.read_text())
    key = doc["shard_keys"][0]
    missing = {"id": granules[0].name.replace("_01.h5", "_02.h5"), "s3": "s3://nsidc-test/ATL06/absent.h5"}
    doc["shards"][str(key)].append(missing)
    catalog.write_text(json.dumps(doc))
    store = f"s3://{env.output_bucket}/{env.output_prefix}incomplete-{uuid.uuid4().hex[:6]}.zarr"
    creds = credentials_file(tmp_path)
    assert submit(catalog, creds, "inc-partial", "--store", store, "--shard", str(key)) == 0
    drain(env)
    assert runs(env).get_shard("inc-partial", key).status == ShardStatus.PARTIAL
    capsys.readouterr()
    assert submit(catalog, creds, "inc-partial-again", "--store", store, "--shard", str(key)) == 0
    assert "sending 1 shard (1 new to the store (or never finished complete))" in capsys.readouterr().out

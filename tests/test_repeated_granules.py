"""A granule listed twice in a shard (a hand-merged catalog, a hand-written message) is read and
counted once; two entries of one granule at different locations are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from producer.granule_catalog import granule_shards
from shared.config import load_config
from shared.granules import ReadContext
from shared.grid import DEFAULT_GRID
from shared.messages import ShardMessage
from shared.windows import PlacedWindow
from tests.conftest import GREENLAND
from tests.pipeline import ALL_TIME, FINEST
from tests.test_cli import assert_clean_error, run
from worker.shard import process_shard


def process(catalog_path, store):
    result = run("-m", "worker", "--catalog", str(catalog_path), "--store", str(store), "--workers", "1")
    assert result.returncode == 0, result.stderr
    return result


def test_a_hand_merged_catalog_counts_a_repeated_granule_once(greenland_catalog, tmp_path):
    doc = json.loads(greenland_catalog.read_text())
    merged = tmp_path / "merged.json"
    doc["shards"] = {key: granules + granules for key, granules in doc["shards"].items()}
    merged.write_text(json.dumps(doc))

    process(greenland_catalog, tmp_path / "once.zarr")
    result = process(merged, tmp_path / "twice.zarr")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(doc["shard_keys"]), result.stderr
    for key, line in zip(doc["shard_keys"], warnings):
        assert f"shard {key} lists granule {GREENLAND} more than once" in line, line
    once, twice = (xr.open_zarr(tmp_path / name, group=FINEST) for name in ("once.zarr", "twice.zarr"))
    assert int(once["count"].sum()) > 0
    for name in once.data_vars:
        np.testing.assert_array_equal(once[name].values, twice[name].values, err_msg=name)


def test_one_granule_at_two_locations_is_refused(greenland_catalog, tmp_path):
    doc = json.loads(greenland_catalog.read_text())
    key = str(doc["shard_keys"][0])
    entry = doc["shards"][key][0]
    doc["shards"][key].append({**entry, "path": str(tmp_path / "elsewhere" / GREENLAND)})
    greenland_catalog.write_text(json.dumps(doc))
    result = run("-m", "worker", "--catalog", str(greenland_catalog), "--store", str(tmp_path / "o.zarr"))
    assert_clean_error(result, "invalid catalog", f"shard {key} lists granule {GREENLAND} at two locations")


def test_a_message_listing_a_granule_twice_counts_it_once(data_dir):
    config = load_config()
    shards = granule_shards(str(data_dir / "atl06" / GREENLAND), config, DEFAULT_GRID, ReadContext())
    key, ref = next(iter(shards.items()))
    message = ShardMessage(
        run_id="r",
        shard_key=key,
        shard_index=0,
        grid=DEFAULT_GRID,
        config=config,
        store="s3://b/p/r.zarr",
        granules=[ref, ref.model_copy(update={"chunks": None})],
        credentials_parameter="/stack/runs/r/read-credentials",
        windows=[PlacedWindow(**ALL_TIME.model_dump(), index=0)],
    )
    written: dict[str, dict] = {}
    windows = list(message.windows)
    once = process_shard(key, [ref], config, DEFAULT_GRID, windows, lambda stats: written.update(once=stats))
    twice = process_shard(
        key, message.granules, config, DEFAULT_GRID, windows, lambda stats: written.update(twice=stats)
    )
    assert once.observations > 0
    assert (twice.observations, twice.granules_read) == (once.observations, 1)
    for order, stats in written["once"].items():
        for name, values in stats.items():
            np.testing.assert_array_equal(values, written["twice"][order][name], err_msg=f"{name} at order {order}")


@pytest.mark.parametrize("s3", [None, "s3://other/copy.h5"])
def test_entries_that_agree_where_both_give_a_location_are_one_granule(s3):
    from shared.catalog import GranuleRef, same_location

    a = GranuleRef(id="g.h5", path="/data/g.h5")
    b = GranuleRef(id="g.h5", path="/data/g.h5", s3=s3)
    assert same_location(a, b)
    assert not same_location(a, GranuleRef(id="g.h5", path="/other/g.h5"))

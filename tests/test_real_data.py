"""The whole local path on real ATL06 files, checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import xdggs

from tests.conftest import GREENLAND
from tests.independent import expected_cells, kept_points
from tests.pipeline import assemble_native, link_granules, run_pipeline

STATS = ("h_min", "h_max", "h_mean", "h_sigma", "h_variance", "h_q25", "h_q50", "h_q75")


def assert_matches_independent(ds, expected: dict[int, dict[str, float]]) -> None:
    """A store level (or a slice of its cells) with one time window holds exactly ``expected``."""
    assert ds.sizes["time"] == 1, f"one time window expected, the store has {ds.sizes['time']}"
    assert_cells_match(ds["cell_ids"].values, {name: ds[name].values[0] for name in ("count", *STATS)}, expected)


def assert_cells_match(
    cell_ids: np.ndarray, stats: dict[str, np.ndarray], expected: dict[int, dict[str, float]]
) -> None:
    """Statistics of these cells (``stats[name][i]`` for ``cell_ids[i]``) equal the independent ones."""
    count = stats["count"]
    filled = {int(c): i for i, c in enumerate(cell_ids) if count[i] > 0}
    assert set(filled) == set(expected), "cells with data differ from the independent computation"
    for cell, exp in expected.items():
        i = filled[cell]
        assert count[i] == exp["count"]
        for name in STATS:
            np.testing.assert_allclose(
                stats[name][i], exp[name], rtol=2e-6, atol=1e-4, err_msg=f"{name} in cell {cell}"
            )
    empty = count == 0
    for name in STATS:
        assert np.isnan(stats[name][empty]).all(), f"{name} must be NaN where a cell has no data"


def test_greenland_granule_every_cell(data_dir, tmp_path):
    granule = data_dir / "atl06" / GREENLAND
    rc, ds = run_pipeline(str(link_granules([granule], tmp_path / "g")), tmp_path)
    assert rc == 0
    expected = expected_cells(kept_points(granule))
    assert_matches_independent(ds, expected)
    decoded = xdggs.decode(ds)
    assert decoded.dggs.grid_info.level == 12


def test_greenland_observation_total(data_dir, tmp_path):
    """1,593 segments pass the quality filter (data README); all of them carry height and sigma."""
    granule = data_dir / "atl06" / GREENLAND
    points = kept_points(granule)
    rc, ds = run_pipeline(str(link_granules([granule], tmp_path / "g")), tmp_path)
    assert int(ds["count"].values.sum()) == points["h"].size


@pytest.mark.parametrize(
    "name",
    [
        "processed_ATL06_20190613193602_11690305_002_01.h5",  # beams gt1l and gt1r absent
        "processed_ATL06_20190424092231_03990303_002_01.h5",  # only 2 segments pass the filter
        "processed_ATL06_20190625191102_13520305_002_01.h5",  # a beam whose h_li is all fill
    ],
)
def test_awkward_granules(data_dir, tmp_path, name):
    granule = data_dir / "atl06" / name
    rc, ds = run_pipeline(str(link_granules([granule], tmp_path / "g")), tmp_path)
    assert rc == 0
    assert_matches_independent(ds, expected_cells(kept_points(granule)))


def test_mostly_flagged_granule_keeps_two_points(data_dir, tmp_path):
    granule = data_dir / "atl06" / "processed_ATL06_20190424092231_03990303_002_01.h5"
    rc, ds = run_pipeline(str(link_granules([granule], tmp_path / "g")), tmp_path)
    assert int(ds["count"].values.sum()) == 2


def test_antarctic_values_through_the_whole_path(data_dir, tmp_path):
    flat = sorted((data_dir / "atl06-flat-antarctic").glob("ATL06_20190101001723_00540210_*_gt*.h5"))
    folder = tmp_path / "granules"
    folder.mkdir()
    granule = assemble_native(flat, folder / "ATL06_20190101001723_00540210_209_01.h5")
    rc, ds = run_pipeline(str(folder), tmp_path)
    assert rc == 0
    expected = expected_cells(kept_points(granule))
    assert len(expected) > 100
    assert_matches_independent(ds, expected)
    assert ds.sizes["cells"] >= 10 * 4096  # RGT 54 crosses many order-6 shards of Dronning Maud Land

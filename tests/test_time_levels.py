"""A store with time windows and every level, through ``python -m worker --catalog``, against an
independent computation (h5py + healpix-geo + numpy, tests/independent.py) on real and synthetic
granules; and a store built window by window equals one built at once, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
import xdggs

from producer.cli import main as producer_main
from producer.synthetic import generate
from tests.independent import expected_cells, kept_points, subset
from tests.pipeline import assemble_native, link_granules
from tests.test_real_data import STATS, assert_cells_match
from worker.__main__ import main as worker_main

LEVELS = range(12, 5, -1)
THROUGH = (-75.0, 10.0)  # every synthetic granule passes here: their shards are shared across cycles


def build(folder: Path, work: Path, *extra: str) -> Path:
    """Catalog ``folder``, then aggregate it into ``work/out.zarr`` (or the store given in ``extra``)."""
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "catalog.json"
    assert producer_main(["catalog", "--granules", str(folder), "--output", str(catalog)]) == 0
    store = work / "out.zarr"
    args = ["--catalog", str(catalog), "--store", str(store), "--workers", "1", *extra]
    if "--store" in extra:
        args = ["--catalog", str(catalog), "--workers", "1", *extra]
    assert worker_main(args) == 0
    return store


def merged_points(paths) -> dict[str, np.ndarray]:
    points = [kept_points(p) for p in paths]
    return {k: np.concatenate([p[k] for p in points]) for k in points[0]}


def month_of(delta_time: np.ndarray) -> np.ndarray:
    """Calendar month (UTC) of GPS seconds since 2018-01-01T00:00:00Z (no leap second since)."""
    moment = np.datetime64("2018-01-01T00:00:00", "us") + np.round(delta_time * 1e6).astype("timedelta64[us]")
    return moment.astype("datetime64[M]")


def assert_every_level_and_window(store: Path, points: dict[str, np.ndarray], window_of, labels_of) -> None:
    """Each level's each window holds exactly the independent statistics of the points whose own
    time falls in it (``window_of(points)`` compared with ``labels_of(level dataset)``)."""
    label = window_of(points)
    for order in LEVELS:
        ds = xr.open_zarr(store, group=str(order))
        assert xdggs.decode(ds).dggs.grid_info.level == order
        labels = labels_of(ds)
        assert set(np.unique(label)) <= set(labels), "a point's window is missing from the time axis"
        for w, which in enumerate(labels):
            expected = expected_cells(subset(points, label == which), order)
            got = {name: ds[name].values[w] for name in ("count", *STATS)}
            assert_cells_match(ds["cell_ids"].values, got, expected)


def test_real_granules_of_three_cycles_every_level_and_window(data_dir, tmp_path):
    native = sorted((data_dir / "atl06").glob("*.h5"))  # cycles 1 and 3 (orbit_info/cycle_number)
    folder = link_granules(native, tmp_path / "granules")
    flat = sorted((data_dir / "atl06-flat-antarctic").glob("ATL06_20190101001723_00540210_*_gt*.h5"))
    antarctic = assemble_native(flat, folder / "ATL06_20190101001723_00540210_209_01.h5")  # cycle 2
    store = build(folder, tmp_path / "run")
    points = merged_points([*native, antarctic])
    assert set(np.unique(points["cycle"])) == {1, 2, 3}
    ds = xr.open_zarr(store, group="12")
    assert list(ds["cycle"].values) == [1, 2, 3]
    assert ds["count"].values.sum() == points["h"].size
    assert_every_level_and_window(store, points, lambda p: p["cycle"], lambda ds: ds["cycle"].values)


def test_synthetic_granules_of_two_cycles_by_cycle_and_by_month(tmp_path):
    folder = tmp_path / "granules"
    paths = [
        *generate(folder, n_granules=2, n_segments=1500, spacing_m=400.0, seed=3, through=THROUGH, cycle=5),
        *generate(folder, n_granules=2, n_segments=1500, spacing_m=400.0, seed=4, through=THROUGH, cycle=6),
    ]
    points = merged_points(paths)
    store = build(folder, tmp_path / "cycles")
    assert list(xr.open_zarr(store, group="6")["cycle"].values) == [5, 6]
    assert_every_level_and_window(store, points, lambda p: p["cycle"], lambda ds: ds["cycle"].values)

    store = build(folder, tmp_path / "months", "--windows", "month")
    assert "cycle" not in xr.open_zarr(store, group="12").coords
    assert_every_level_and_window(
        store, points, lambda p: month_of(p["t"]), lambda ds: ds["time"].values.astype("datetime64[M]")
    )


def every_object(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_a_store_built_cycle_by_cycle_equals_one_built_at_once(tmp_path):
    """Cycle 5, then cycle 7 added (so cycle 6, empty, between them): every chunk and metadata
    object equals those of one run over both cycles' granules; cycle 5's chunks untouched."""
    a, b, both = tmp_path / "a", tmp_path / "b", tmp_path / "both"
    kw = dict(n_granules=2, n_segments=1500, spacing_m=400.0, through=THROUGH)
    for folder in (a, both):
        generate(folder, seed=3, cycle=5, **kw)
    for folder in (b, both):
        generate(folder, seed=4, cycle=7, **kw)

    once = build(both, tmp_path / "run-both")
    region = ("--region", str(tmp_path / "run-both" / "catalog.json"))  # every run: the same cells
    store = tmp_path / "two-runs.zarr"
    build(a, tmp_path / "run-a", "--store", str(store), *region)
    first = every_object(store)
    chunks = {k for k in first if "/c/" in k and "/cell_ids/" not in k}
    assert chunks and all(k.split("/c/")[1].startswith("0") for k in chunks)
    build(b, tmp_path / "run-b", "--store", str(store))  # the store's region, which it keeps
    second = every_object(store)
    assert all(second[k] == first[k] for k in first if "/c/" in k), "adding a window rewrote an earlier chunk"

    assert every_object(once) == second
    assert list(xr.open_zarr(store, group="12")["cycle"].values) == [5, 6, 7]
    # re-running a window rewrites exactly its own chunks, with identical bytes
    build(b, tmp_path / "run-b-again", "--store", str(store))
    assert every_object(store) == second

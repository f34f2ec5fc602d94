"""The offline catalog builder (``python -m producer catalog --granules``) on bad and odd input:
one bad granule is skipped with a warning, never a traceback, and never aborts the others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from producer.granule_catalog import granule_shards
from shared.catalog import load_catalog
from shared.config import load_config
from shared.granules import ReadContext
from shared.grid import DEFAULT_GRID
from tests.conftest import GREENLAND
from tests.pipeline import assemble_native, link_granules
from tests.test_cli import run

SPARSE = "processed_ATL06_20190424092231_03990303_002_01.h5"
ANTARCTIC = "ATL06_20190101001723_00540210_209_01.h5"  # assembled from the flat per-beam files
LON_FILL = np.finfo(np.float64).max  # ATL06's _FillValue for longitude (1.79769313e+308)


def build_catalog(folder: Path, output: Path):
    result = run("-m", "producer", "catalog", "--granules", str(folder), "--output", str(output))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def shards_of(path: Path) -> dict[int, set[str]]:
    return {key: {g.id for g in granules} for key, granules in load_catalog(path).shards.items()}


def truncated_copy(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def with_fill_longitudes(src: Path, dst: Path, beam: str, where: slice) -> Path:
    """A copy of a granule whose beam has its longitude fill value at ``where`` (missing coordinates)."""
    if src != dst:
        shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        lon = f[f"{beam}/land_ice_segments/longitude"]
        values = lon[:]
        values[where] = LON_FILL
        lon[...] = values
        lon.attrs["_FillValue"] = LON_FILL
    return dst


def catalog_reason(output) -> str:
    (unreadable,) = load_catalog(output).unreadable
    return unreadable.reason


def test_a_truncated_granule_is_skipped_with_a_warning(data_dir, tmp_path):
    folder = link_granules([data_dir / "atl06" / GREENLAND], tmp_path / "g")
    source = data_dir / "atl06" / SPARSE
    cut = truncated_copy(source, folder / SPARSE, 200_000)
    output = tmp_path / "catalog.json"
    result = build_catalog(folder, output)
    assert result.returncode == 0, result.stderr
    (line,) = warnings_of(result.stderr)
    assert line == f"warning: skipped {cut}: {catalog_reason(output)}" and "truncated" in line, line
    catalog = load_catalog(output)
    assert [(u.id, u.location) for u in catalog.unreadable] == [(SPARSE, str(cut))]
    assert catalog.unreadable[0].reason.startswith("truncated: ")
    assert {g for ids in shards_of(output).values() for g in ids} == {GREENLAND}


def test_fill_value_longitudes_are_not_placed_on_the_grid(data_dir, tmp_path):
    """Greenland's fill longitudes made a bogus shard, the Antarctic ones a panic in mortie."""
    flat = data_dir / "atl06-flat-antarctic"
    originals = tmp_path / "originals"
    originals.mkdir()
    shutil.copyfile(data_dir / "atl06" / GREENLAND, originals / GREENLAND)
    assemble_native([flat / "ATL06_20190101001723_00540210_209_01_gt1l.h5"], originals / ANTARCTIC)
    filled = tmp_path / "filled"
    filled.mkdir()
    with_fill_longitudes(originals / GREENLAND, filled / GREENLAND, "gt1l", slice(0, 10))
    with_fill_longitudes(originals / ANTARCTIC, filled / ANTARCTIC, "gt1l", slice(0, 10))

    result = build_catalog(filled, tmp_path / "filled.json")
    assert result.returncode == 0, result.stderr
    assert warnings_of(result.stderr) == []
    assert "panicked" not in result.stderr
    assert load_catalog(tmp_path / "filled.json").unreadable == []
    # every shard a real point is in, and no other: the fill points only move the beam's range start
    config, context = load_config(), ReadContext()
    for name in (GREENLAND, ANTARCTIC):
        expected = granule_shards(str(originals / name), config, DEFAULT_GRID, context)
        got = granule_shards(str(filled / name), config, DEFAULT_GRID, context)
        assert set(got) <= set(expected) and len(got) >= len(expected) - 1
        assert all(ref.segments["gt1l"][0] >= 10 for ref in got.values() if "gt1l" in ref.segments)
    catalogued = shards_of(tmp_path / "filled.json")
    assert {g for ids in catalogued.values() for g in ids} == {GREENLAND, ANTARCTIC}


def test_old_catalogs_without_the_unreadable_list_still_load(data_dir, tmp_path):
    folder = link_granules([data_dir / "atl06" / GREENLAND], tmp_path / "g")
    output = tmp_path / "catalog.json"
    assert build_catalog(folder, output).returncode == 0
    doc = json.loads(output.read_text())
    del doc["unreadable"]
    doc["metadata"]["unreadable_granules"] = [{"granule": "x.h5", "reason": "old form"}]
    output.write_text(json.dumps(doc))
    assert load_catalog(output).unreadable == []


def test_entries_that_are_not_native_granules_are_named(data_dir, tmp_path):
    """Not HDF5, HDF5 of another layout (the flat per-beam files), not .h5, a subfolder: each warned about."""
    flat = data_dir / "atl06-flat-antarctic" / "ATL06_20190101001723_00540210_209_01_gt1l.h5"
    folder = link_granules([data_dir / "atl06" / GREENLAND, flat], tmp_path / "g")
    (folder / "junk.h5").write_bytes(b"this is not HDF5" * 100)
    (folder / "notes.txt").write_text("hello")
    (folder / "cycle_03").mkdir()
    output = tmp_path / "catalog.json"
    result = build_catalog(folder, output)
    assert result.returncode == 0, result.stderr
    reasons = {line.split(": ", 2)[1].rsplit("/", 1)[-1]: line for line in warnings_of(result.stderr)}
    assert set(reasons) == {flat.name, "junk.h5", "notes.txt", "cycle_03"}, result.stderr
    assert "not a native ATL06 granule" in reasons[flat.name]
    assert "not a readable HDF5 file" in reasons["junk.h5"]
    assert "not a .h5 file" in reasons["notes.txt"]
    assert "a folder" in reasons["cycle_03"]
    catalog = load_catalog(output)
    assert {u.id for u in catalog.unreadable} == set(reasons)
    assert {g for ids in shards_of(output).values() for g in ids} == {GREENLAND}


def test_no_usable_granule_is_an_error(data_dir, tmp_path):
    flat = sorted((data_dir / "atl06-flat-antarctic").glob("*.h5"))
    folder = link_granules(flat, tmp_path / "g")
    output = tmp_path / "catalog.json"
    result = build_catalog(folder, output)
    assert result.returncode != 0
    assert len(warnings_of(result.stderr)) == len(flat)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no granule in") and f"{len(flat)} skipped" in last, last
    assert not output.exists()


def test_a_granule_without_valid_points_is_counted_not_warned(data_dir, tmp_path):
    folder = link_granules([data_dir / "atl06" / GREENLAND], tmp_path / "g")
    nowhere = folder / ANTARCTIC
    assemble_native([data_dir / "atl06-flat-antarctic" / "ATL06_20190101001723_00540210_209_01_gt1l.h5"], nowhere)
    with_fill_longitudes(nowhere, nowhere, "gt1l", slice(None))
    result = build_catalog(folder, tmp_path / "catalog.json")
    assert result.returncode == 0, result.stderr
    assert warnings_of(result.stderr) == []
    assert "1 of 2 granules scanned have no valid point in any shard" in result.stderr
    assert {g for ids in shards_of(tmp_path / "catalog.json").values() for g in ids} == {GREENLAND}

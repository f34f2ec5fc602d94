"""Points without valid coordinates (non-finite, the fill value, off the globe) are dropped, never fatal."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from shared.grid import nested_ids, shard_keys_of
from tests.independent import expected_cells, kept_points
from tests.pipeline import assemble_native
from tests.read_paths import assert_every_read_path_matches

FILL64 = 3.4028234663852886e38  # ATL06's latitude and longitude _FillValue
ANTARCTIC = "ATL06_20190101001723_00540210_*_gt*.h5"


def spoil_coordinates(path, seed: int = 7) -> None:
    """Rewrite every beam's latitude and longitude with a declared fill value, and make some of
    them NaN, the fill value or off the globe: at both ends, at the latitude extreme (where the
    search turns) and at random places."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        for beam in [b for b in f if "land_ice_segments" in f[b]]:
            g = f[f"{beam}/land_ice_segments"]
            lat, lon = g["latitude"][:], g["longitude"][:]
            n = lat.size
            picks = rng.choice(n, size=max(8, n // 50), replace=False)
            where = np.concatenate([[0, n - 1, int(np.argmin(lat))], picks])
            bad = [np.nan, FILL64, np.inf, 90.5, -91.0]
            for i, k in enumerate(where):
                if i % 2:
                    lon[k] = [np.nan, FILL64, -np.inf, 360.0, -180.5][i % 5]
                else:
                    lat[k] = bad[i % 5]
            for name, values in (("latitude", lat), ("longitude", lon)):
                chunks = g[name].chunks
                del g[name]
                g.create_dataset(name, data=values, chunks=chunks, compression="gzip", fillvalue=FILL64)
                g[name].attrs["_FillValue"] = FILL64


@pytest.fixture(scope="module")
def spoiled(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spoiled")
    path = assemble_native(
        sorted((data_dir / "atl06-flat-antarctic").glob(ANTARCTIC)), folder / "ATL06_20190101001723_00540210_209_01.h5"
    )
    spoil_coordinates(path)
    return path


def test_spoiled_granule_holds_invalid_coordinates_with_data(spoiled):
    """The test granule is what it claims: points with a height but no valid place on the grid."""
    with h5py.File(spoiled) as f:
        g = f["gt1l/land_ice_segments"]
        lat, lon, h = g["latitude"][:], g["longitude"][:], g["h_li"][:]
        assert g["latitude"].fillvalue == FILL64
    invalid = ~np.isfinite(lat) | ~np.isfinite(lon) | (lat == FILL64) | (lon == FILL64) | (np.abs(lat) > 90)
    assert invalid.sum() > 100 and np.isfinite(h[invalid]).any()


def test_every_read_path_drops_invalid_coordinates(spoiled):
    """Latitude search, catalog segments and recorded chunks: the shards succeed and equal the
    independent computation with those points dropped."""
    expected = expected_cells(kept_points(spoiled))
    assert len(expected) > 100
    assert_every_read_path_matches(spoiled, expected)


def test_grid_refuses_points_it_cannot_place():
    """A clear ValueError, not the library's Rust panic (which escapes ``except Exception``)."""
    for lat, lon in ((np.nan, 0.0), (0.0, np.nan), (91.0, 0.0), (-np.inf, 0.0)):
        with pytest.raises(ValueError, match="off the grid"):
            nested_ids(np.array([lat]), np.array([lon]), 12)
        with pytest.raises(ValueError, match="off the grid"):
            shard_keys_of(np.array([lat]), np.array([lon]))

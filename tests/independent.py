"""Expected statistics computed without the project's code: h5py + healpix-geo + numpy, one cell at a time."""

from __future__ import annotations

import re

import h5py
import numpy as np
from healpix_geo.nested import lonlat_to_healpix

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


def declared_fill(dataset: h5py.Dataset):
    """The dataset's fill value if the file declares one (h5py reports 0 for one never set)."""
    declared = dataset.id.get_create_plist().fill_value_defined() == h5py.h5d.FILL_VALUE_USER_DEFINED
    return dataset.fillvalue if declared else None


def granule_cycle(f: h5py.File, path) -> int:
    """The granule's own cycle: orbit_info/cycle_number, else the ``cc`` of its name (ttttccrr)."""
    if "orbit_info/cycle_number" in f:
        return int(f["orbit_info/cycle_number"][0])
    return int(re.search(r"ATL06_\d{14}_\d{4}(\d{2})\d{2}_", str(path)).group(1))


def kept_points(path) -> dict[str, np.ndarray]:
    """Quality-0 points with real coordinates, height, sigma and time, from every beam present;
    ``t`` is delta_time, ``cycle`` the granule's own cycle number for every point."""
    cols = {k: [] for k in ("lat", "lon", "h", "s", "t", "cycle")}
    with h5py.File(path, "r") as f:
        cycle = granule_cycle(f, path)
        for beam in BEAMS:
            if f"{beam}/land_ice_segments" not in f:
                continue
            g = f[f"{beam}/land_ice_segments"]
            h, s = g["h_li"][:], g["h_li_sigma"][:]
            lat, lon = g["latitude"][:], g["longitude"][:]
            ok = (g["atl06_quality_summary"][:] == 0) & np.isfinite(h) & np.isfinite(s) & (s > 0)
            ok &= h != g["h_li"].fillvalue
            ok &= s != g["h_li_sigma"].fillvalue
            ok &= np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (lon >= -180) & (lon < 360)
            t = g["delta_time"][:]
            ok &= np.isfinite(t)
            for name, values in (("latitude", lat), ("longitude", lon), ("delta_time", t)):
                if declared_fill(g[name]) is not None:
                    ok &= values != declared_fill(g[name])
            for key, arr in (
                ("lat", lat),
                ("lon", lon),
                ("h", h),
                ("s", s),
                ("t", t),
                ("cycle", np.full(h.size, cycle)),
            ):
                cols[key].append(arr[ok])
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}


def expected_cells(points: dict[str, np.ndarray], level: int = 12) -> dict[int, dict[str, float]]:
    cells = lonlat_to_healpix(points["lon"], points["lat"], level, ellipsoid="WGS84").astype(np.uint64)
    out = {}
    for cell in np.unique(cells):
        m = cells == cell
        h = points["h"][m].astype(np.float64)
        s = points["s"][m].astype(np.float64)
        w = 1 / s**2
        out[int(cell)] = {
            "count": m.sum(),
            "h_min": h.min(),
            "h_max": h.max(),
            "h_mean": np.sum(h * w) / np.sum(w),
            "h_sigma": 1 / np.sqrt(np.sum(w)),
            "h_variance": np.var(h),
            "h_q25": np.quantile(h, 0.25),
            "h_q50": np.quantile(h, 0.5),
            "h_q75": np.quantile(h, 0.75),
        }
    return out


def subset(points: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in points.items()}

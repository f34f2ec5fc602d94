"""Helpers that run the project's own path (catalog -> worker -> store) for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from producer.cli import main as producer_main
from shared.windows import TimeWindow
from worker.__main__ import main as worker_main

FILL = np.float32(3.4028235e38)


ALL_TIME = TimeWindow(start=datetime(2018, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC))  # one window
FINEST = "12"  # the group of the child order: the store's finest level
GPS_SECONDS_OF_ATLAS_EPOCH = 1198800018  # ancillary_data/atlas_sdp_gps_epoch


def run_pipeline(granule_source: str, work: Path, *extra: str) -> tuple[int, xr.Dataset | None]:
    """Catalog, then ``python -m worker --catalog``; the store's finest level."""
    catalog, store = work / "catalog.json", work / "out.zarr"
    assert producer_main(["catalog", "--granules", granule_source, "--output", str(catalog)]) == 0
    rc = worker_main(["--catalog", str(catalog), "--store", str(store), "--workers", "1", *extra])
    return rc, (xr.open_zarr(store, group=FINEST) if store.exists() else None)


def link_granules(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


def assemble_native(flat_files: list[Path], out: Path) -> Path:
    """Build a native-layout ATL06 granule from the flattened per-beam files (real Antarctic values)."""
    with h5py.File(out, "w") as dst:
        for flat in flat_files:
            beam = flat.stem.rsplit("_", 1)[-1]
            g = dst.create_group(f"{beam}/land_ice_segments")
            with h5py.File(flat, "r") as src:
                n = src["lat"].shape[0]
                kw = dict(chunks=(min(10000, n),), compression="gzip", compression_opts=6)
                g.create_dataset("latitude", data=src["lat"][:], **kw)
                g.create_dataset("longitude", data=src["lon"][:], **kw)
                g.create_dataset("delta_time", data=src["t_sec"][:] - GPS_SECONDS_OF_ATLAS_EPOCH, **kw)
                g.create_dataset("h_li", data=src["h_elv"][:].astype(np.float32), fillvalue=FILL, **kw)
                g.create_dataset("h_li_sigma", data=src["s_elv"][:].astype(np.float32), fillvalue=FILL, **kw)
                g.create_dataset(
                    "atl06_quality_summary", data=src["q_flg"][:].astype(np.int8), fillvalue=np.int8(127), **kw
                )
    return out

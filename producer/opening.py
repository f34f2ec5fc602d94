"""``python -m producer open STORE``: one level and time range of a store, as an xarray Dataset.

The same as ``xdggs.decode(xarray.open_zarr(store, group=LEVEL)).sel(time=slice(START, END))``,
for a local path or an ``s3://`` store (the stack's, through its endpoint and credentials).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.errors import InputError, StoreError


def open_level(store: str, level: int | None = None, start: str | None = None, end: str | None = None) -> Any:
    """The statistics at ``level`` (default: the finest) of the windows starting in ``[start, end]``."""
    import xarray as xr
    import xdggs
    import zarr

    from shared.grid import GridSignature
    from shared.store import level_group, open_store

    try:
        root = zarr.open_group(open_store(store, read_only=True), mode="r")
    except Exception as exc:
        raise StoreError(f"cannot open store {store}: {exc}") from None
    grid = GridSignature.model_validate(root.attrs["grid"])
    orders = range(grid.parent_order, grid.child_order + 1)
    level = grid.child_order if level is None else level
    if level not in orders:
        raise InputError(f"store {store} has levels {orders.start}..{orders.stop - 1}, not {level}")
    ds = xr.open_zarr(open_store(store, read_only=True), group=level_group(level))
    return xdggs.decode(ds.sel(time=slice(start, end)))


def describe(ds: Any) -> str:
    """Per window: cells with data and observations, then the Dataset itself."""
    lines = []
    for i in range(ds.sizes["time"]):
        window = ds.isel(time=i)
        count = window["count"].values
        label = f"cycle {int(window['cycle'])}" if "cycle" in ds.coords else ""
        start, stop = (np.datetime_as_string(window[c].values, unit="s") for c in ("time", "time_end"))
        lines.append(
            f"{start} .. {stop} {label}: {int((count > 0).sum()):,} cells with data, {int(count.sum()):,} observations"
        )
    return "\n".join([*lines, "", str(ds)])


def run_open(args) -> int:
    ds = open_level(args.store, args.level, args.start, args.end)
    print(describe(ds))
    return 0

"""``make demo``: the whole service on this machine, end to end, with no AWS account.

Starts the embedded stack, generates a small seeded ATL06 data set (the same tracks in two
cycles, the margins thinning between them), uploads it to the emulator's S3 and, cycle by cycle,
builds the catalog, indexes its granules (the index queue), submits the run into one store and
works the shard queue with the local event-source-mapping runner; submits the last cycle again
(nothing is sent: the store holds it), keeps a local copy of the store, draws a map of h_mean at
order 12 and one of its change between the cycles at a coarse level, and stops the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path("demo-output")
RUN_ID = "demo"
SOURCE_BUCKET = "nsidc-demo-granules"
SCALE_BAR_KM = 500
GRANULES = 8  # per cycle: the same tracks flown again
CYCLES = (14, 15)
CHANGE_LEVEL = 8  # the change map's order: cells ~25 km wide, averaging many points of each pass


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def polar_stereographic(lat, lon, true_scale_lat: float = -71.0):
    """EPSG:3031-style south polar stereographic on the WGS84 ellipsoid (x, y in km)."""
    import numpy as np

    a, e = 6378.137, 0.0818191908426
    phi, lam, phic = np.radians(-np.asarray(lat)), np.radians(np.asarray(lon)), np.radians(-true_scale_lat)
    t = np.tan(np.pi / 4 - phi / 2) / ((1 - e * np.sin(phi)) / (1 + e * np.sin(phi))) ** (e / 2)
    tc = np.tan(np.pi / 4 - phic / 2) / ((1 - e * np.sin(phic)) / (1 + e * np.sin(phic))) ** (e / 2)
    mc = np.cos(phic) / np.sqrt(1 - e**2 * np.sin(phic) ** 2)
    rho = a * mc * t / tc
    return rho * np.sin(lam), rho * np.cos(lam)


def draw_basins(ax) -> None:
    """The shipped Antarctic drainage basin outlines, for geography under the data."""
    from producer.regions import BASINS, load_region

    for polygon in load_region(BASINS).polygons:
        for lats, lons in polygon:
            x, y = polar_stereographic(list(lats) + [lats[0]], list(lons) + [lons[0]])
            ax.plot(x, y, color="0.55", lw=0.4, zorder=1)


def draw_scale_bar(ax, km: int = SCALE_BAR_KM) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    left, bottom = x0 + 0.05 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    ax.plot([left, left + km], [bottom, bottom], color="k", lw=3, solid_capstyle="butt", zorder=3)
    ax.annotate(f"{km} km", (left + km / 2, bottom), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=8)


def draw_cells(cell_ids, level: int, values, path: Path, label: str, title: str, cmap: str, symmetric: bool) -> int:
    """Cells coloured by ``values`` in polar stereographic over the drainage basins, with a scale
    bar. Returns how many cells were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from healpix_geo.nested import healpix_to_lonlat

    lon, lat = healpix_to_lonlat(cell_ids, level, ellipsoid="WGS84")
    x, y = polar_stereographic(lat, lon)
    fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
    for ring in (-60, -70, -80):
        t = np.linspace(-180, 180, 361)
        rx, ry = polar_stereographic(np.full_like(t, ring), t)
        ax.plot(rx, ry, color="0.8", lw=0.6)
        ax.annotate(f"{ring}°", polar_stereographic(ring, 0.0), color="0.5", fontsize=8)
    draw_basins(ax)
    # a change map's colours span most cells' changes, not the few largest (cells sampled unevenly)
    limit = float(np.nanpercentile(np.abs(values), 90)) if symmetric and values.size else None
    points = ax.scatter(
        x,
        y,
        c=values,
        s=4 if level >= 11 else 20,  # markers a few pixels wide: cells are ~1.4 km at order 12, ~25 km at 8
        marker="s",
        cmap=cmap,
        vmin=-limit if limit else None,  # values beyond the limit take its colour
        vmax=limit,
        linewidths=0,
        zorder=2,
    )
    fig.colorbar(points, ax=ax, shrink=0.7, label=label)
    ax.set_aspect("equal")
    pad = 300
    ax.set_xlim(x.min() - pad, x.max() + pad)
    ax.set_ylim(y.min() - pad, y.max() + pad)
    draw_scale_bar(ax)
    ax.set_xlabel("x (km, polar stereographic)")
    ax.set_ylabel("y (km)")
    ax.set_title(title)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return int(cell_ids.size)


def draw_map(ds, path: Path) -> int:
    """The latest window's h_mean at the finest level."""
    latest = ds.isel(time=-1)
    filled = latest["count"].values > 0
    return draw_cells(
        latest["cell_ids"].values[filled],
        int(ds["cell_ids"].attrs["level"]),
        latest["h_mean"].values[filled],
        path,
        "h_mean (m above WGS84)",
        f"ICESat-2 ATL06 (synthetic) h_mean, {window_label(latest)}: {filled.sum():,} order-12 cells",
        "viridis",
        symmetric=False,
    )


def draw_change(ds, path: Path) -> int:
    """The change of h_mean from the first window to the last, where both have data, at the level of ``ds``."""
    first, last = ds.isel(time=0), ds.isel(time=-1)
    both = (first["count"].values > 0) & (last["count"].values > 0)
    level = int(ds["cell_ids"].attrs["level"])
    return draw_cells(
        ds["cell_ids"].values[both],
        level,
        (last["h_mean"].values - first["h_mean"].values)[both],
        path,
        f"h_mean change (m), {window_label(first)} to {window_label(last)}",
        f"ICESat-2 ATL06 (synthetic) change of h_mean: {both.sum():,} order-{level} cells with data in both",
        "RdBu",
        symmetric=True,
    )


def window_label(window) -> str:
    return f"cycle {int(window['cycle'])}" if "cycle" in window.coords else str(window["time"].values)[:10]


def download_store(url: str, folder: Path) -> None:
    """A local copy of a store in the emulator's S3 (a Zarr store is plain objects under a prefix)."""
    import shutil

    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    shutil.rmtree(folder, ignore_errors=True)
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for obj in page.get("Contents", []):
            target = folder / obj["Key"][len(prefix.rstrip("/")) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m producer.demo", description=__doc__.split("\n\n")[1].replace("\n", " ")
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder for everything the demo writes (default: {DEFAULT_OUT})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    out = parse_args(argv).output
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    from producer import stack

    step("starting the embedded stack (moto server on loopback, template.yaml deployed into it)")
    state = stack.up(out / "stack", stack_name="icesat2-shard-queue-demo")
    os.environ.update(state.environment())
    print(f"emulator at {state.endpoint}; stack {state.stack_name}")
    try:
        return run_demo(out, started)
    finally:
        step("stopping the embedded stack")
        stack.down(out / "stack")


def run_demo(out: Path, started: float) -> int:
    import xarray as xr

    from producer.cli import main as producer
    from producer.stack import upload_granules
    from producer.synthetic import generate
    from shared.deployed import load_stack
    from worker.progress import Progress
    from worker.runner import read_mapping, run

    step(
        f"generating seeded synthetic ATL06 granules: the same {GRANULES} tracks in cycles {CYCLES[0]} and {CYCLES[1]}"
    )
    folders = {c: out / "granules" / f"cycle{c}" for c in CYCLES}
    for cycle, folder in folders.items():  # the margins thin between the two cycles
        generate(folder, n_granules=GRANULES, n_segments=4000, spacing_m=250.0, seed=2024, cycle=cycle)
        print(f"cycle {cycle}: {GRANULES} granules in {folder}")

    catalogs = {}
    for cycle, folder in folders.items():
        step(f"uploading cycle {cycle} to the emulator's S3 and building its catalog: python -m producer catalog")
        source = upload_granules(sorted(folder.glob("*.h5")), SOURCE_BUCKET, prefix=f"ATL06/cycle{cycle}/")
        catalogs[cycle] = out / f"catalog-cycle{cycle}.json"
        if producer(["catalog", "--granules", source, "--output", str(catalogs[cycle])]):
            return 1

    creds = out / "emulator-credentials.json"
    # The emulator accepts any key; a real run gets NASA's from Earthdata login.
    creds.write_text(
        json.dumps(
            {
                "accessKeyId": "EMULATOR",
                "secretAccessKey": "emulator",
                "sessionToken": "emulator",
                "expiration": "2099-01-01T00:00:00+00:00",
            }
        )
    )
    outputs = load_stack()
    log_path = out / "worker.log"
    log_path.unlink(missing_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    store = f"s3://{outputs.output_bucket}/{outputs.output_prefix}{RUN_ID}-{stamp}.zarr"  # one store, both cycles

    def work(function_name: str) -> None:
        run(
            read_mapping(function_name),
            until_empty=True,
            log=lambda line: print(line, flush=True),
            log_path=str(log_path),
            progress=Progress(sys.stdout),
        )

    def submit(cycle: int, run_id: str) -> int:
        return producer(
            ["--catalog", str(catalogs[cycle]), "--store", store, "--yes", "--credentials-file", str(creds)]
            + ["--run-id", run_id]
        )

    run_ids = []
    for cycle in CYCLES:
        step(f"indexing cycle {cycle}'s granules: python -m producer index --catalog {catalogs[cycle].name}")
        if producer(["index", "--catalog", str(catalogs[cycle]), "--credentials-file", str(creds)]):
            return 1
        step("working the index queue: python -m worker --local --queue indexes --until-empty")
        work(outputs.index_function_name)
        run_ids.append(f"{RUN_ID}-cycle{cycle}-{stamp}")
        step(
            f"submitting cycle {cycle} into the store: python -m producer --catalog {catalogs[cycle].name} --store ..."
        )
        if submit(cycle, run_ids[-1]):
            return 1
        step("working the shard queue: python -m worker --local --until-empty")
        work(outputs.function_name)
        step(f"run status: python -m producer status {run_ids[-1]}")
        producer(["status", run_ids[-1]])

    step(f"submitting cycle {CYCLES[-1]} again: the store holds it complete, nothing is sent")
    if submit(CYCLES[-1], f"{RUN_ID}-again-{stamp}"):
        return 1

    from shared.runstatus import RunStatusStore

    records = [RunStatusStore(outputs.run_table).get_run(r) for r in run_ids]
    local_store = out / "h_mean.zarr"
    download_store(store, local_store)
    step(f"python -m producer open {local_store} --level {CHANGE_LEVEL}")
    producer(["open", str(local_store), "--level", str(CHANGE_LEVEL)])
    png, change_png = out / "h_mean.png", out / "h_mean_change.png"
    drawn = draw_map(xr.open_zarr(local_store, group="12"), png)
    changed = draw_change(xr.open_zarr(local_store, group=str(CHANGE_LEVEL)), change_png)
    step("done")
    print(f"map of h_mean, order 12, cycle {CYCLES[-1]} ({drawn:,} cells with data): {png.resolve()}")
    print(
        f"map of its change since cycle {CYCLES[0]}, order {CHANGE_LEVEL} ({changed:,} cells): {change_png.resolve()}"
    )
    print(f"store: {store}, copied to {local_store} (the emulator's copy is gone when it stops)")
    print(
        "open it with xarray and xdggs (or python -m producer open STORE --level N):\n"
        "    import xarray as xr, xdggs\n"
        f'    ds = xdggs.decode(xr.open_zarr("{local_store}", group="12"))  # or "11" .. "6"\n'
        '    ds["h_mean"].sel(time=slice("2022-01-01", "2022-12-31")).where(ds["count"] > 0)'
    )
    print(f"total time {time.monotonic() - started:.0f} s")
    bad = sum(r.counts.get("FAILED", 0) + r.counts.get("PARTIAL", 0) for r in records)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

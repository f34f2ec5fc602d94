"""``make demo``: the whole service on this machine, end to end, with no AWS account.

Starts the embedded stack, generates a small seeded ATL06 data set, uploads it to the emulator's
S3, builds the catalog, indexes its granules (the index queue), submits the run, works the shard
queue with the local event-source-mapping runner, prints the run status, keeps a local copy of
the output store, draws a map of h_mean over the Antarctic drainage basins and stops the stack.
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


def draw_map(ds, path: Path) -> int:
    """Cells with data coloured by h_mean, in polar stereographic over the drainage basins, with a
    scale bar. Returns how many cells were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from healpix_geo.nested import healpix_to_lonlat

    count = ds["count"].values
    filled = count > 0
    cells = ds["cell_ids"].values[filled]
    level = int(ds["cell_ids"].attrs["level"])
    lon, lat = healpix_to_lonlat(cells, level, ellipsoid="WGS84")
    x, y = polar_stereographic(lat, lon)
    fig, ax = plt.subplots(figsize=(8, 8), dpi=110)
    for ring in (-60, -70, -80):
        t = np.linspace(-180, 180, 361)
        rx, ry = polar_stereographic(np.full_like(t, ring), t)
        ax.plot(rx, ry, color="0.8", lw=0.6)
        ax.annotate(f"{ring}°", polar_stereographic(ring, 0.0), color="0.5", fontsize=8)
    draw_basins(ax)
    points = ax.scatter(x, y, c=ds["h_mean"].values[filled], s=4, marker="s", cmap="viridis", linewidths=0, zorder=2)
    fig.colorbar(points, ax=ax, shrink=0.7, label="h_mean (m above WGS84), order-12 HEALPix cells")
    ax.set_aspect("equal")
    pad = 300
    ax.set_xlim(x.min() - pad, x.max() + pad)
    ax.set_ylim(y.min() - pad, y.max() + pad)
    draw_scale_bar(ax)
    ax.set_xlabel("x (km, polar stereographic)")
    ax.set_ylabel("y (km)")
    ax.set_title(f"ICESat-2 ATL06 (synthetic) h_mean: {filled.sum():,} cells with data")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return int(filled.sum())


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

    step("generating a seeded synthetic ATL06 data set (8 granules crossing Antarctic shards)")
    granules = generate(out / "granules", n_granules=8, n_segments=4000, spacing_m=250.0, seed=2024)
    print(f"{len(granules)} granules in {out / 'granules'}")

    step(f"uploading them to the emulator's S3 (s3://{SOURCE_BUCKET}/ATL06/)")
    source = upload_granules(granules, SOURCE_BUCKET)

    step("building the catalog: python -m producer catalog --granules s3://.../ATL06/")
    catalog = out / "catalog.json"
    if producer(["catalog", "--granules", source, "--output", str(catalog)]):
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

    def work(function_name: str) -> None:
        run(
            read_mapping(function_name),
            until_empty=True,
            log=lambda line: print(line, flush=True),
            log_path=str(log_path),
            progress=Progress(sys.stdout),
        )

    step("indexing the granules: python -m producer index --catalog catalog.json")
    if producer(["index", "--catalog", str(catalog), "--credentials-file", str(creds)]):
        return 1
    step("working the index queue: python -m worker --local --queue indexes --until-empty")
    work(outputs.index_function_name)

    step("submitting the run: python -m producer --catalog catalog.json --yes")
    run_id = f"{RUN_ID}-{time.strftime('%Y%m%dT%H%M%S')}"
    if producer(["--catalog", str(catalog), "--yes", "--credentials-file", str(creds), "--run-id", run_id]):
        return 1

    step("working the shard queue: python -m worker --local --until-empty")
    work(outputs.function_name)

    step(f"run status: python -m producer status {run_id}")
    producer(["status", run_id])
    from shared.grid import DEFAULT_GRID
    from shared.runstatus import RunStatusStore
    from shared.store import level_group

    record = RunStatusStore(outputs.run_table).get_run(run_id)
    local_store = out / "h_mean.zarr"
    download_store(record.store, local_store)
    ds = xr.open_zarr(local_store, group=level_group(DEFAULT_GRID.child_order)).isel(time=-1)  # the latest window
    png = out / "h_mean.png"
    drawn = draw_map(ds, png)
    step("done")
    print(f"map of h_mean ({drawn:,} cells with data): {png.resolve()}")
    print(f"store: {record.store}, copied to {local_store} (the emulator's copy is gone when it stops)")
    print(
        "open it with xarray and xdggs:\n"
        "    import xarray as xr, xdggs\n"
        f'    ds = xdggs.decode(xr.open_zarr("{local_store}", group="12"))  # or "11" .. "6"\n'
        '    ds["h_mean"].isel(time=-1).where(ds["count"].isel(time=-1) > 0).dropna("cells")'
    )
    print(f"total time {time.monotonic() - started:.0f} s")
    bad = record.counts.get("FAILED", 0) + record.counts.get("PARTIAL", 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the packaged Antarctic basins region from mortie's test data.

    python -m producer.regions.basins [--source TXT] [--output GEOJSON] [--tolerance DEG]

mortie ships the Antarctic grounded drainage basins (27 rings, 1.24 million ``lat lon basin``
rows) as ``mortie/tests/Ant_Grounded_DrainageSystem_Polygons.txt``. At full resolution that
is ~45 MB, too big to ship, so each ring is simplified (Douglas-Peucker on the sphere) and
written as a GeoJSON FeatureCollection, one Polygon per basin. The command refuses to write
unless the simplified file gives exactly the order-6 coverage mortie computes for the
full-resolution basins; it halves the tolerance until it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

import mortie
import numpy as np

from producer.regions import BASINS, read_geojson
from shared.grid import PARENT_ORDER

SOURCE_NAME = "Ant_Grounded_DrainageSystem_Polygons.txt"
DEFAULT_OUTPUT = Path(__file__).with_name(f"{BASINS}.geojson")
DEFAULT_TOLERANCE = 0.01  # degrees of arc (~1.1 km); order-6 cells are ~90 km across
DECIMALS = 5  # ~1 m


def mortie_source() -> Path:
    return Path(str(resources.files("mortie") / "tests" / SOURCE_NAME))


def load_basins(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Basin id -> (lats, lons) of its ring, in the file's order."""
    table = np.loadtxt(path)
    ids = table[:, 2].astype(int)
    return {int(b): (table[ids == b, 0], table[ids == b, 1]) for b in np.unique(ids)}


def reference_coverage(basins: dict[int, tuple[np.ndarray, np.ndarray]], order: int = PARENT_ORDER) -> np.ndarray:
    """The coverage mortie computes for the full-resolution basins: union of each basin's cover."""
    covers = [mortie.morton_coverage(lats, lons, order=order) for lats, lons in basins.values()]
    return np.unique(np.concatenate(covers)).astype(np.uint64)


def simplify(lats: np.ndarray, lons: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices Douglas-Peucker keeps, with distances as great-circle angles (degrees)."""
    xyz = _unit(lats, lons)
    keep = np.zeros(lats.size, bool)
    keep[[0, -1]] = True
    stack = [(0, lats.size - 1)]
    tol = np.radians(tolerance)
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        dist = _arc_distance(xyz[i + 1 : j], xyz[i], xyz[j])
        k = int(np.argmax(dist))
        if dist[k] > tol:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return np.flatnonzero(keep)


def _unit(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lats), np.radians(lons)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


def _arc_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angular distance of points ``p`` from the great-circle arc a-b (not the whole circle)."""
    to_ends = np.minimum(_angle(p, a), _angle(p, b))
    normal = np.cross(a, b)
    norm = np.linalg.norm(normal)
    if norm < 1e-15:  # a == b (a closed ring's two ends): distance to the point
        return to_ends
    normal = normal / norm
    cross_track = np.abs(np.arcsin(np.clip(p @ normal, -1.0, 1.0)))
    within = (np.cross(a, p) @ normal >= 0) & (np.cross(p, b) @ normal >= 0)
    return np.where(within, cross_track, to_ends)


def _angle(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(p, q), axis=-1), p @ q)


def to_geojson(basins: dict[int, tuple[np.ndarray, np.ndarray]], tolerance: float) -> dict:
    features = []
    for basin, (lats, lons) in basins.items():
        idx = simplify(lats, lons, tolerance)
        ring = np.round(np.stack([lons[idx], lats[idx]], axis=1), DECIMALS).tolist()
        if ring[0] != ring[-1]:
            ring.append(ring[0])  # GeoJSON rings are closed; two source rings are left open
        features.append(
            {"type": "Feature", "properties": {"basin": basin}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
        )
    return {
        "type": "FeatureCollection",
        "name": BASINS,
        "description": (
            f"Antarctic grounded drainage basins from mortie's test data ({SOURCE_NAME}), simplified "
            f"on the sphere to {tolerance:g} degrees; edges are great-circle arcs. "
            "Regenerate with: python -m producer.regions.basins"
        ),
        "features": features,
    }


def build(
    source: Path, output: Path, tolerance: float, order: int = PARENT_ORDER, attempts: int = 6
) -> tuple[int, float]:
    """Write the simplified basins; returns (cells at ``order``, tolerance used)."""
    basins = load_basins(source)
    want = reference_coverage(basins, order)
    for _ in range(attempts):
        output.write_text(json.dumps(to_geojson(basins, tolerance), separators=(",", ":")) + "\n")
        got = read_geojson(output).shards(order)
        if np.array_equal(got, want):
            return want.size, tolerance
        tolerance /= 2
    output.unlink()
    raise SystemExit(f"no tolerance down to {tolerance * 2:g} degrees reproduces mortie's coverage; nothing written")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producer.regions.basins", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help=f"the basin table (default: mortie's {SOURCE_NAME})")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the GeoJSON (default: the packaged antarctica_basins.geojson)",
    )
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="degrees of arc")
    args = parser.parse_args(argv)
    source = args.source or mortie_source()
    if not source.is_file():
        print(f"error: {source} not found (it ships in mortie's tests; pass --source)", file=sys.stderr)
        return 1
    cells, tolerance = build(source, args.output, args.tolerance)
    size = args.output.stat().st_size / 2**20
    print(
        f"wrote {args.output} ({size:.1f} MiB, tolerance {tolerance:g} deg): {cells} order-{PARENT_ORDER} "
        "shards, same as mortie's coverage"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

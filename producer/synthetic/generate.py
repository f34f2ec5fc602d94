"""Files from parameters: one granule where asked, or a set of granules with distinct RGTs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from producer.synthetic.orbit import REGION_EDGE_LAT_DEG, REGIONS
from producer.synthetic.simulate import check_through, simulate_granule
from producer.synthetic.writer import write_h5
from shared.mission import RGT_COUNT

__all__ = ["generate", "write_granule"]


def write_granule(
    path: str | Path,
    *,
    rgt: int,
    cycle: int,
    region: int,
    n_segments: int,
    spacing_m: float = 20.0,
    seed: int,
    through: tuple[float, float] | None = None,
    start: datetime | None = None,
    through_offset_m: float = 2000.0,
) -> Path:
    """Write one synthetic ATL06 granule and return its path.

    path: a file path ending in .h5, used as given, or a directory (created if missing) where the
        file gets its ATL06 name.
    rgt, cycle, region: the granule's identity (RGT 1..1387, cycle 1..99, region 10, 11 or 12 place
        it around the south pole like the real regions). Without ``through`` the track is the RGT's.
    n_segments, spacing_m: segments per beam and their along-track spacing (ATL06: 20 m).
    seed: with the other parameters, fixes every value (files are byte-identical).
    through: (lat, lon) that the granule's central beam pair passes within ``through_offset_m`` of,
        at a random place along the granule; the track is then moved off its RGT to get there.
    start: UTC time of the first segment (default: the RGT's time in that cycle).
    """
    g = simulate_granule(
        rgt=rgt,
        cycle=cycle,
        region=region,
        n_segments=n_segments,
        spacing_m=spacing_m,
        seed=seed,
        through=through,
        start=start,
        through_offset_m=through_offset_m,
    )
    path = Path(path)
    if path.is_dir() or path.suffix != ".h5":
        path.mkdir(parents=True, exist_ok=True)
        path = path / g.name
    write_h5(path, g)
    return path


def generate(
    output_dir: str | Path,
    *,
    n_granules: int,
    n_segments: int,
    spacing_m: float = 20.0,
    seed: int = 0,
    through: tuple[float, float] | None = None,
    cycle: int = 14,
) -> list[Path]:
    """Write ``n_granules`` granules with distinct RGTs (the next cycle after 1,387) into
    ``output_dir`` and return their paths in the order written.

    Granules are placed at random around the pole (regions 10-12), or with ``through`` all pass
    near that point. A larger ``n_granules`` with the same seed writes the same first granules.
    """
    if n_granules < 0:
        raise ValueError(f"n_granules must be non-negative, got {n_granules}")
    if through is not None:
        through = check_through(through)
    last_cycle = cycle + (n_granules - 1) // RGT_COUNT if n_granules else cycle
    if cycle < 1 or last_cycle > 99:
        raise ValueError(f"cycles {cycle}..{last_cycle} do not fit in 1..99")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    rgts = rng.permutation(RGT_COUNT) + 1
    paths = []
    for i in range(n_granules):
        if through is None:
            region = int(rng.choice(REGIONS))
        elif through[0] < REGION_EDGE_LAT_DEG:
            region = 11  # the point lies in the polar region
        else:
            region = int(rng.choice((10, 12)))
        paths.append(
            write_granule(
                out,
                rgt=int(rgts[i % RGT_COUNT]),
                cycle=cycle + i // RGT_COUNT,
                region=region,
                n_segments=n_segments,
                spacing_m=spacing_m,
                seed=seed,
                through=through,
            )
        )
    return paths

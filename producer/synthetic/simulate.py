"""A synthetic granule in memory: its tracks, times and measured beams, from a seed.

Joins the orbit and the surface model; writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from producer.synthetic.attributes import RELEASE, VERSION
from producer.synthetic.orbit import (
    CIRCUMFERENCE_M,
    DRIFT_PER_REV_DEG,
    GROUND_SPEED_M_S,
    ORBIT_PERIOD_S,
    SEGMENT_STEP_M,
    VERTEX_FRACTION,
    VERTEX_LAT_DEG,
    arc_from_vertex_m,
    beam_offsets_m,
    ground_track,
    place_through,
    region_span_m,
    through_vertex_lon,
    vertex_lon_deg,
    vertex_time_s,
    wrap_lon,
)
from producer.synthetic.surface import ice_surface, measure_beam, surface_change
from shared.mission import BEAMS, RGT_COUNT
from shared.windows import atlas_moment, atlas_seconds

__all__ = ["SimulatedGranule", "check_through", "granule_name", "simulate_granule"]


@dataclass
class SimulatedGranule:
    """The arrays and identity of one synthetic granule, before it is written."""

    rgt: int
    cycle: int
    region: int
    seed: int
    start: datetime
    end: datetime
    node_lon: float
    node_time: float
    beams: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return granule_name(self.start, self.rgt, self.cycle, self.region)


def granule_name(start: datetime, rgt: int, cycle: int, region: int) -> str:
    """``ATL06_YYYYMMDDhhmmss_ttttccrr_006_01.h5``."""
    return f"ATL06_{start:%Y%m%d%H%M%S}_{rgt:04d}{cycle:02d}{region:02d}_{RELEASE}_{VERSION}.h5"


def _check(rgt: int, cycle: int, region: int, n_segments: int, spacing_m: float, seed: int) -> None:
    if not 1 <= rgt <= RGT_COUNT:
        raise ValueError(f"rgt must be in 1..{RGT_COUNT}, got {rgt}")
    if not 1 <= cycle <= 99:
        raise ValueError(f"cycle must be in 1..99, got {cycle}")
    if not 1 <= region <= 14:
        raise ValueError(f"region must be in 1..14, got {region}")
    if n_segments < 1:
        raise ValueError(f"n_segments must be at least 1, got {n_segments}")
    if not (np.isfinite(spacing_m) and spacing_m > 0):
        raise ValueError(f"spacing_m must be positive, got {spacing_m}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def check_through(through: tuple[float, float]) -> tuple[float, float]:
    """``through`` as two floats, if the orbit can reach it."""
    lat, lon = (float(v) for v in through)
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise ValueError(f"through must be finite, got {through}")
    if abs(lat) > -VERTEX_LAT_DEG:
        raise ValueError(
            f"through latitude must be within +-{-VERTEX_LAT_DEG:g} degrees (the orbit's reach), got {lat:g}"
        )
    return lat, lon


def simulate_granule(
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
) -> SimulatedGranule:
    """Arrays of one granule (see :func:`~producer.synthetic.generate.write_granule` for the parameters)."""
    _check(rgt, cycle, region, n_segments, spacing_m, seed)
    # Every parameter that names the granule enters the seed, so granules of one seed differ.
    streams = np.random.SeedSequence([seed, rgt, cycle, region, n_segments]).spawn(1 + len(BEAMS))
    rng = np.random.default_rng(streams[0])
    length = (n_segments - 1) * spacing_m

    if through is None:
        vertex_lon = vertex_lon_deg(rgt)
        first = region_span_m(region, length)
        centre = rng.normal(0.0, 30.0)  # repeat passes land within tens of metres of the RGT
    else:
        lat_p, lon_p = check_through(through)
        # Region 10 descends toward the vertex, 12 ascends from it; others pick a branch.
        branch = {10: -1.0, 12: 1.0}.get(region) or float(rng.choice([-1.0, 1.0]))
        at = branch * arc_from_vertex_m(lat_p)
        vertex_lon = through_vertex_lon(lat_p, lon_p, at)
        first = place_through(at, length, rng)
        centre = rng.uniform(-through_offset_m, through_offset_m)

    along = first + spacing_m * np.arange(n_segments)
    lat, lon = ground_track(vertex_lon, along, beam_offsets_m(centre))

    t_vertex = vertex_time_s(rgt, cycle)
    # Keep the orbit's timing within the granule; ``start`` only moves its origin.
    shift = 0.0 if start is None else atlas_seconds(start) - (t_vertex + first / GROUND_SPEED_M_S)
    delta_time = t_vertex + shift + along / GROUND_SPEED_M_S
    h_true = ice_surface(lat, lon) + surface_change(lat, lon, delta_time)
    segment_id = np.rint((VERTEX_FRACTION * CIRCUMFERENCE_M + along) / SEGMENT_STEP_M).astype(np.int32)

    beams = {}
    for i, beam in enumerate(BEAMS):
        h_li, h_sigma, quality = measure_beam(h_true[i], beam.endswith("l"), np.random.default_rng(streams[1 + i]))
        beams[beam] = {
            "latitude": lat[i],
            "longitude": lon[i],
            "h_li": h_li,
            "h_li_sigma": h_sigma,
            "atl06_quality_summary": quality,
            "segment_id": segment_id,
            "delta_time": delta_time,
        }
    node_lon = float(wrap_lon(vertex_lon - 90.0 + VERTEX_FRACTION * DRIFT_PER_REV_DEG))
    return SimulatedGranule(
        rgt=rgt,
        cycle=cycle,
        region=region,
        seed=seed,
        start=atlas_moment(delta_time[0]),
        end=atlas_moment(delta_time[-1]),
        node_lon=node_lon,
        node_time=t_vertex + shift - VERTEX_FRACTION * ORBIT_PERIOD_S,
        beams=beams,
    )

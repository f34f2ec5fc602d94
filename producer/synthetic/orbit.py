"""Where and when the synthetic tracks run: RGT, vertex and time geometry on a spherical Earth.

Pure functions. Tracks are great circles of the ICESat-2 orbit with the Earth turning underneath;
each RGT is anchored on a real granule and the period is fitted on another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.mission import CYCLE_DAYS, INCLINATION_DEG, RGT_COUNT

__all__ = [
    "ANTARCTIC_LAT_DEG",
    "CIRCUMFERENCE_M",
    "DRIFT_PER_REV_DEG",
    "EARTH_RADIUS_M",
    "GROUND_SPEED_M_S",
    "ORBIT_PERIOD_S",
    "REGIONS",
    "REGION_EDGE_LAT_DEG",
    "SEGMENT_STEP_M",
    "VERTEX_FRACTION",
    "VERTEX_LAT_DEG",
    "arc_from_vertex_m",
    "beam_offsets_m",
    "ground_track",
    "node_lon_deg",
    "place_through",
    "region_span_m",
    "through_vertex_lon",
    "vertex_lon_deg",
    "vertex_time_s",
    "wrap_lon",
]

EARTH_RADIUS_M = 6_371_008.8  # mean radius: a sphere is within 0.5 % of WGS84 for distances
CIRCUMFERENCE_M = 2 * np.pi * EARTH_RADIUS_M
# The southernmost latitude of an RGT: -88 (a beam 3.3 km on the pole side goes 0.03 deg further).
VERTEX_LAT_DEG = INCLINATION_DEG - 180.0
# 1,387 revolutions repeat the ground track in 91 *nodal* days, so each revolution lands
# 360*91/1387 degrees further west; the Earth turns that much under one revolution.
DRIFT_PER_REV_DEG = 360.0 * CYCLE_DAYS / RGT_COUNT
# Nodal period fitted on the real RGT 54 cycle 2 granule (1,387 of them are ~90.8 solar days;
# a 91-day schedule would put cycle 14 two days late).
ORBIT_PERIOD_S = 5657.38
GROUND_SPEED_M_S = CIRCUMFERENCE_M / ORBIT_PERIOD_S
# Ascending node of a real granule (ATL06_20181013235645_02340114: orbit_info/crossing_time, lan).
ANCHOR_RGT, ANCHOR_CYCLE = 234, 1
ANCHOR_NODE_TIME_S = 24704969.9642394  # seconds since the ATLAS epoch
ANCHOR_NODE_LON_DEG = -103.42874532
# The southern vertex is three quarters of a revolution after the ascending node.
VERTEX_FRACTION = 0.75

# Beam layout across track (m, positive to the right of the motion); pairs 3.3 km apart, beams of
# a pair 90 m apart. Flying forward, the left beam of each pair is the weak one.
PAIR_SPACING_M = 3300.0
PAIR_WIDTH_M = 90.0
SEGMENT_STEP_M = 20.0  # segment_id counts 20 m steps along the orbit

# ATL06 granule regions around the south pole: 10 descends from 50S to 79S, 11 crosses the pole
# region, 12 ascends from 79S to 50S.
REGIONS = (10, 11, 12)
REGION_EDGE_LAT_DEG = -79.0
ANTARCTIC_LAT_DEG = -60.0


def wrap_lon(lon: np.ndarray) -> np.ndarray:
    """Longitudes in [-180, 180)."""
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0


def arc_from_vertex_m(lat_deg: float) -> float:
    """Along-track distance between the southern vertex and where the track crosses ``lat_deg``.

    Spherical right triangle: the track is perpendicular to the meridian at the vertex, so
    sin(lat) = sin(lat_vertex) * cos(arc).
    """
    ratio = np.sin(np.radians(lat_deg)) / np.sin(np.radians(VERTEX_LAT_DEG))
    return float(np.arccos(np.clip(ratio, -1.0, 1.0)) * EARTH_RADIUS_M)


def node_lon_deg(rgt: int) -> float:
    """Longitude of the ascending node of an RGT (fixed by the repeat orbit)."""
    return float(wrap_lon(ANCHOR_NODE_LON_DEG - (rgt - ANCHOR_RGT) * DRIFT_PER_REV_DEG))


def vertex_lon_deg(rgt: int) -> float:
    """Longitude of an RGT's southern vertex.

    For a retrograde orbit the vertex is 90 degrees east of the node in inertial space; the Earth
    turns three quarters of a revolution's drift meanwhile.
    """
    return float(wrap_lon(node_lon_deg(rgt) + 90.0 - VERTEX_FRACTION * DRIFT_PER_REV_DEG))


def vertex_time_s(rgt: int, cycle: int) -> float:
    """Seconds since the ATLAS epoch at which an RGT of a cycle passes its southern vertex."""
    revs = (cycle - ANCHOR_CYCLE) * RGT_COUNT + (rgt - ANCHOR_RGT) + VERTEX_FRACTION
    return ANCHOR_NODE_TIME_S + revs * ORBIT_PERIOD_S


def ground_track(vertex_lon: float, along_m: np.ndarray, cross_m: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees, shape (len(cross_m), len(along_m))) of parallel tracks.

    ``along_m`` is the distance from the southern vertex (negative before it), ``cross_m`` the
    offsets to the right of the motion. Points are rotated on the orbit's great circle, shifted
    along its pole for the offsets, and the longitude then drifts west as the Earth turns.
    """
    lat_v, lon_v = np.radians(VERTEX_LAT_DEG), np.radians(vertex_lon)
    vertex = np.array([np.cos(lat_v) * np.cos(lon_v), np.cos(lat_v) * np.sin(lon_v), np.sin(lat_v)])
    westward = np.array([np.sin(lon_v), -np.cos(lon_v), 0.0])  # a retrograde orbit moves west there
    pole = np.cross(vertex, westward)  # orbit normal, at INCLINATION_DEG from the z axis

    a = np.asarray(along_m, np.float64) / EARTH_RADIUS_M
    c = np.asarray(cross_m, np.float64)[:, None] / EARTH_RADIUS_M
    centre = np.cos(a)[:, None] * vertex + np.sin(a)[:, None] * westward  # (n, 3)
    # Moving toward the pole of the orbit is moving to the left of the motion.
    p = np.cos(c)[..., None] * centre[None] - np.sin(c)[..., None] * pole  # (beams, n, 3)

    lat = np.degrees(np.arcsin(np.clip(p[..., 2], -1.0, 1.0)))
    drift = DRIFT_PER_REV_DEG * np.asarray(along_m, np.float64) / CIRCUMFERENCE_M
    lon = wrap_lon(np.degrees(np.arctan2(p[..., 1], p[..., 0])) - drift)
    return lat, lon


def beam_offsets_m(centre_m: float = 0.0) -> np.ndarray:
    """Cross-track offsets of the six beams, in BEAMS order, around ``centre_m``."""
    pairs = np.repeat([-PAIR_SPACING_M, 0.0, PAIR_SPACING_M], 2)
    within = np.tile([-PAIR_WIDTH_M / 2, PAIR_WIDTH_M / 2], 3)
    return centre_m + pairs + within


def region_span_m(region: int, length_m: float) -> float:
    """Along-track start of a granule of ``length_m`` in an ATL06 region around the pole.

    Region 10 ends and region 12 begins where the track crosses 79S, like the real regions;
    region 11 is centred on the vertex. A granule too long for its region is slid toward the
    pole so that it stays south of 60S as long as it can.
    """
    edge = arc_from_vertex_m(REGION_EDGE_LAT_DEG)
    limit = arc_from_vertex_m(ANTARCTIC_LAT_DEG)
    if region == 10:
        return max(-edge - length_m, -limit)
    if region == 12:
        return min(edge, limit - length_m)
    return -length_m / 2


def through_vertex_lon(lat: float, lon: float, along_m: float) -> float:
    """Vertex longitude whose track passes through (lat, lon) at ``along_m`` from the vertex.

    Changing the vertex longitude only rotates the track about the Earth's axis.
    """
    _, lon0 = ground_track(0.0, np.array([along_m]), [0.0])
    return float(wrap_lon(lon - lon0[0, 0]))


def place_through(at: float, length: float, rng: np.random.Generator) -> float:
    """Start of a granule that covers along-track position ``at`` somewhere in its middle 80 %,
    staying south of 60S when the length allows."""
    lo, hi = at - 0.9 * length, at - 0.1 * length
    limit = arc_from_vertex_m(ANTARCTIC_LAT_DEG)
    lo_in, hi_in = max(lo, -limit), min(hi, limit - length)
    if lo_in <= hi_in:
        lo, hi = lo_in, hi_in
    return float(rng.uniform(lo, hi))

"""Seeded generator of synthetic ICESat-2 ATL06 granules over Antarctica.

The files have the real ATL06 layout (``/gtXX/land_ice_segments/...``, chunked (10000,), gzip 6,
fill values, orbit and ancillary groups, root attributes), so the worker reads them exactly as it
reads NASA's. The values are plausible rather than real:

* Ground tracks are great circles of the 92 degree orbit, with the Earth turning underneath. The
  track of each RGT is anchored on a real granule (RGT 234, cycle 1) and its period calibrated on
  another (RGT 54, cycle 2): a synthetic RGT 54 passes within a few km of the real one.
* Six beams: three pairs 3.3 km apart across track, the two beams of a pair 90 m apart.
* Heights follow a smooth ice-sheet dome (up to ~3,500 m) with gentle undulation, plus noise
  consistent with ``h_li_sigma``; ~10-20 % of segments are flagged in ``atl06_quality_summary``
  and carry extra error; a few short runs are fill values.

Same seed and parameters give byte-identical files. ``through=(lat, lon)`` makes every granule pass
within a few km of a point, to build one dense shard for benchmarks.

    python -m producer.synthetic --output DIR --granules 3 --segments 2000 --spacing 500
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np

from shared.mission import ATLAS_EPOCH, ATLAS_SDP_GPS_EPOCH, BEAMS, CYCLE_DAYS, INCLINATION_DEG, RGT_COUNT

RELEASE, VERSION = "006", "01"

FILL_F32 = np.float32(np.finfo(np.float32).max)  # 3.4028235e+38, ATL06's _FillValue for heights
FILL_QUALITY = np.int8(127)
CHUNK = 10_000  # ATL06's chunk length, even for datasets shorter than that

# --- Orbit -------------------------------------------------------------------------------------
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

# --- Surface -----------------------------------------------------------------------------------
DOME_LAT_DEG, DOME_LON_DEG = -84.0, 60.0  # summit off the pole, like Dome A
DOME_HEIGHT_M = 3500.0
DOME_RADIUS_DEG = 26.0
SHELF_HEIGHT_M = 50.0  # floating ice shelves stand ~50 m above the ellipsoid
# (unit direction in the equatorial plane, wavelength km, amplitude m): waves fixed on the Earth,
# so repeat passes and crossing tracks see the same surface.
UNDULATIONS = (
    ((1.0, 0.0), 47.0, 30.0),
    ((0.5, 0.8660254), 23.0, 12.0),
    ((-0.7660444, 0.6427876), 11.0, 4.0),
)


# =============================================================================================
# Geometry: pure functions on the sphere
# =============================================================================================
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


# =============================================================================================
# Surface and measurements: pure functions of positions and a random generator
# =============================================================================================
def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)


def ice_surface(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth Antarctic-like ice surface height (m above the ellipsoid)."""
    x, y, z = _unit_vectors(lat, lon)
    dx, dy, dz = _unit_vectors(np.float64(DOME_LAT_DEG), np.float64(DOME_LON_DEG))
    dist = np.degrees(np.arccos(np.clip(x * dx + y * dy + z * dz, -1.0, 1.0)))
    r = np.clip(dist / DOME_RADIUS_DEG, 0.0, 1.0)
    # Vialov's steady-state profile: flat interior, steep margins, as real ice sheets have.
    dome = DOME_HEIGHT_M * (1.0 - r ** (4.0 / 3.0)) ** (3.0 / 8.0)
    radius_km = EARTH_RADIUS_M / 1000.0
    waves = sum(
        amp * np.sin(2 * np.pi * radius_km * (x * ux + y * uy) / wavelength)
        for (ux, uy), wavelength, amp in UNDULATIONS
    )
    return np.maximum(dome, SHELF_HEIGHT_M) + waves


def fill_runs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of a few short runs of missing segments (at least one, so small granules show it)."""
    mask = np.zeros(n, bool)
    runs = max(1, int(rng.poisson(n / 25_000)))
    longest = max(1, min(60, n // 50))
    starts = rng.integers(0, n, runs)
    lengths = rng.integers(min(5, longest), longest + 1, runs)
    for start, length in zip(starts, lengths, strict=True):
        mask[start : start + length] = True
    return mask


def measure_beam(h_true: np.ndarray, weak: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h_li, h_li_sigma (float32, fill where missing) and atl06_quality_summary (int8) of a beam."""
    n = h_true.size
    # Weak beams see a quarter of the photons: larger errors, more flags.
    sigma = np.clip(rng.lognormal(np.log(0.12 if weak else 0.06), 0.6, n), 0.01, 5.0)
    flagged = (rng.random(n) < (0.16 if weak else 0.10)) | (sigma > 0.6)
    # Flagged segments carry extra error: that is why a quality filter matters.
    error = rng.normal(0.0, sigma) + np.where(flagged, rng.normal(0.0, 1.5, n), 0.0)
    h_li = (h_true + error).astype(np.float32)
    h_sigma = sigma.astype(np.float32)
    missing = fill_runs(n, rng)
    h_li[missing] = FILL_F32
    h_sigma[missing] = FILL_F32
    quality = (flagged | missing).astype(np.int8)
    return h_li, h_sigma, quality


# =============================================================================================
# A granule in memory
# =============================================================================================
@dataclass
class Granule:
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
    lat, lon = (float(v) for v in through)
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise ValueError(f"through must be finite, got {through}")
    if abs(lat) > -VERTEX_LAT_DEG:
        raise ValueError(f"through latitude must be within +-{-VERTEX_LAT_DEG:g} degrees (the orbit's reach), got {lat:g}")
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
) -> Granule:
    """Arrays of one granule (see :func:`write_granule` for the parameters)."""
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
        first = _place_through(at, length, rng)
        centre = rng.uniform(-through_offset_m, through_offset_m)

    along = first + spacing_m * np.arange(n_segments)
    lat, lon = ground_track(vertex_lon, along, beam_offsets_m(centre))
    h_true = ice_surface(lat, lon)

    t_vertex = vertex_time_s(rgt, cycle)
    # Keep the orbit's timing within the granule; ``start`` only moves its origin.
    shift = 0.0 if start is None else _atlas_seconds(start) - (t_vertex + first / GROUND_SPEED_M_S)
    delta_time = t_vertex + shift + along / GROUND_SPEED_M_S
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
    return Granule(
        rgt=rgt,
        cycle=cycle,
        region=region,
        seed=seed,
        start=_utc(delta_time[0]),
        end=_utc(delta_time[-1]),
        node_lon=node_lon,
        node_time=t_vertex + shift - VERTEX_FRACTION * ORBIT_PERIOD_S,
        beams=beams,
    )


def _place_through(at: float, length: float, rng: np.random.Generator) -> float:
    """Start of a granule that covers along-track position ``at`` somewhere in its middle 80 %,
    staying south of 60S when the length allows."""
    lo, hi = at - 0.9 * length, at - 0.1 * length
    limit = arc_from_vertex_m(ANTARCTIC_LAT_DEG)
    lo_in, hi_in = max(lo, -limit), min(hi, limit - length)
    if lo_in <= hi_in:
        lo, hi = lo_in, hi_in
    return float(rng.uniform(lo, hi))


def _atlas_seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - ATLAS_EPOCH).total_seconds()


def _utc(seconds: float) -> datetime:
    # delta_time counts GPS seconds; no leap second has been added since the ATLAS epoch.
    return ATLAS_EPOCH + timedelta(seconds=float(seconds))


# =============================================================================================
# HDF5 output (the only I/O)
# =============================================================================================
def _attrs(**values: object) -> dict[str, object]:
    """Attribute values as the real product stores them: strings fixed-length ASCII."""
    return {k: np.bytes_(v) if isinstance(v, str) else v for k, v in values.items()}


SEGMENT_DATASETS: dict[str, tuple[np.dtype, object, dict[str, object]]] = {
    # name: (dtype, HDF5 fill value or None, attributes)
    "latitude": (np.dtype("f8"), None, _attrs(
        contentType="physicalMeasurement", coordinates="delta_time longitude",
        description="Latitude of segment center, WGS84, North=+,", long_name="Latitude",
        standard_name="latitude", units="degrees_north", valid_max=90.0, valid_min=-90.0)),
    "longitude": (np.dtype("f8"), None, _attrs(
        contentType="physicalMeasurement", coordinates="delta_time latitude",
        description="Longitude of segment center, , WGS84, East=+", long_name="Longitude",
        standard_name="longitude", units="degrees_east", valid_max=180.0, valid_min=-180.0)),
    "h_li": (np.dtype("f4"), FILL_F32, _attrs(
        _FillValue=FILL_F32, contentType="physicalMeasurement", coordinates="delta_time latitude longitude",
        description="Standard land-ice segment height (synthetic)", long_name="Land Ice height", units="meters")),
    "h_li_sigma": (np.dtype("f4"), FILL_F32, _attrs(
        _FillValue=FILL_F32, contentType="qualityInformation", coordinates="delta_time latitude longitude",
        description="Propagated error due to sampling error and FPB correction from the land ice algorithm",
        long_name="Expected RMS segment misfit", units="meters")),
    "atl06_quality_summary": (np.dtype("i1"), FILL_QUALITY, _attrs(
        _FillValue=FILL_QUALITY, contentType="qualityInformation", coordinates="delta_time latitude longitude",
        description="A zero in this parameter implies that no data-quality tests have found a problem "
        "with the segment, a one implies that some potential problem has been found.",
        flag_meanings="best_quality potential_problem", flag_values=np.array([0, 1], np.int8),
        long_name="ATL06_Quality_Summary", units="1", valid_max=np.int8(1), valid_min=np.int8(0))),
    "segment_id": (np.dtype("i4"), None, _attrs(
        contentType="referenceInformation", coordinates="delta_time latitude longitude",
        description="Segment number, counting from the equator.", long_name="Reference Point, m", units="1")),
    "delta_time": (np.dtype("f8"), None, _attrs(
        contentType="referenceInformation", coordinates="latitude longitude",
        description="Number of GPS seconds since the ATLAS SDP epoch.", long_name="Elapsed GPS seconds",
        standard_name="time", units=f"seconds since {ATLAS_EPOCH:%Y-%m-%d}")),
}

# Flying forward: spot 6 (weak) is gt1l, spot 1 (strong) is gt3r.
BEAM_ATTRS = {
    beam: _attrs(
        Description=f"Contains subgroups organized by Ground Track ({', '.join(BEAMS[:-1])} and {BEAMS[-1]})",
        atlas_pce=f"pce{3 - i // 2}",
        atlas_beam_type="weak" if beam.endswith("l") else "strong",
        groundtrack_id=beam,
        atmosphere_profile=f"profile_{1 + i // 2}",
        atlas_spot_number=str(6 - i),
        sc_orientation="Forward",
    )
    for i, beam in enumerate(BEAMS)
}


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    """A group without a modification time, so that files are byte-identical between runs."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def _dataset(group: h5py.Group, name: str, data: np.ndarray, dtype: np.dtype, fill: object) -> h5py.Dataset:
    # The real product compresses with gzip 6 and shuffles only its integer datasets.
    return group.create_dataset(
        name, data=data.astype(dtype, copy=False), chunks=(CHUNK,), maxshape=(None,),
        compression="gzip", compression_opts=6, shuffle=dtype.kind in "iu",
        fillvalue=fill, track_times=False,
    )


def _scalar(group: h5py.Group, name: str, value: object, dtype: str | None = None) -> None:
    data = np.array([value], dtype=dtype) if dtype else np.array([np.bytes_(value)])
    group.create_dataset(name, data=data, track_times=False)


def _write_h5(path: Path, g: Granule) -> None:
    lats = np.concatenate([b["latitude"] for b in g.beams.values()])
    lons = np.concatenate([b["longitude"] for b in g.beams.values()])
    t0, t1 = (min(b["delta_time"][0] for b in g.beams.values()), max(b["delta_time"][-1] for b in g.beams.values()))
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    file_id = uuid.uuid5(uuid.NAMESPACE_URL, f"producer.synthetic/{g.name}/{g.seed}")
    n_segments = len(lats) // len(BEAMS)

    # Fixed format bounds: the earliest format (as NASA's files) and no newer features, so a
    # newer HDF5 library writes the same bytes. Groups are created with the time tracking off.
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_V110)
    fid = h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
    with h5py.File(fid) as f:
        f.attrs.update(_attrs(
            short_name="ATL06", granule_type="ATL06", identifier_product_type="ATL06",
            identifier_file_product_type="ATL06", level="3A", processing_level="3A",
            title="ATLAS/ICESat-2 L3A Land Ice Height",
            description="Land ice surface heights for each beam (SYNTHETIC: generated by producer.synthetic).",
            Conventions="CF-1.6", featureType="trajectory", institution="National Aeronautics and Space Administration (NASA)",
            identifier_product_doi="10.5067/ATLAS/ATL06.006", identifier_product_format_version=RELEASE,
            identifier_file_uuid=str(file_id),
            source="Synthetic", history=f"Created by producer.synthetic (seed={g.seed}, {n_segments} segments per beam)",
            date_created=g.start.strftime(iso), time_type="CCSDS UTC-A", date_type="UTC",
            time_coverage_start=g.start.strftime(iso), time_coverage_end=g.end.strftime(iso),
            time_coverage_duration=float(t1 - t0),
            geospatial_lat_min=float(lats.min()), geospatial_lat_max=float(lats.max()),
            geospatial_lon_min=float(lons.min()), geospatial_lon_max=float(lons.max()),
            geospatial_lat_units="degrees_north", geospatial_lon_units="degrees_east",
            spatial_coverage_type="Horizontal",
        ))

        orbit = _group(f, "orbit_info")
        _scalar(orbit, "rgt", g.rgt, "i2")
        _scalar(orbit, "cycle_number", g.cycle, "i1")
        _scalar(orbit, "lan", g.node_lon, "f8")
        _scalar(orbit, "crossing_time", g.node_time, "f8")
        _scalar(orbit, "orbit_number", ((g.cycle - 1) * RGT_COUNT + g.rgt) % 65536, "u2")
        _scalar(orbit, "sc_orient", 1, "i1")  # forward

        anc = _group(f, "ancillary_data")
        _scalar(anc, "atlas_sdp_gps_epoch", ATLAS_SDP_GPS_EPOCH, "f8")
        for edge in ("start", "end"):
            _scalar(anc, f"{edge}_rgt", g.rgt, "i4")
            _scalar(anc, f"{edge}_cycle", g.cycle, "i4")
            _scalar(anc, f"{edge}_region", g.region, "i4")
        _scalar(anc, "start_delta_time", t0, "f8")
        _scalar(anc, "end_delta_time", t1, "f8")
        for kind in ("granule", "data"):
            _scalar(anc, f"{kind}_start_utc", g.start.strftime(iso))
            _scalar(anc, f"{kind}_end_utc", g.end.strftime(iso))
        _scalar(anc, "release", RELEASE)
        _scalar(anc, "version", VERSION)

        for beam, arrays in g.beams.items():
            track = _group(f, beam)
            track.attrs.update(BEAM_ATTRS[beam])
            segments = _group(track, "land_ice_segments")
            segments.attrs["Description"] = np.bytes_("The land_ice_segments group contains the primary set of derived ATL06 products.")
            written = {}
            for name, (dtype, fill, attrs) in SEGMENT_DATASETS.items():
                written[name] = _dataset(segments, name, arrays[name], dtype, fill)
                written[name].attrs.update(attrs)
            # delta_time is the dimension scale of every segment variable, as in the real product.
            written["delta_time"].make_scale()
            for name, ds in written.items():
                if name != "delta_time":
                    ds.dims[0].attach_scale(written["delta_time"])


# =============================================================================================
# Public API
# =============================================================================================
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
        rgt=rgt, cycle=cycle, region=region, n_segments=n_segments, spacing_m=spacing_m, seed=seed,
        through=through, start=start, through_offset_m=through_offset_m,
    )
    path = Path(path)
    if path.is_dir() or path.suffix != ".h5":
        path.mkdir(parents=True, exist_ok=True)
        path = path / g.name
    _write_h5(path, g)
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
        paths.append(write_granule(
            out, rgt=int(rgts[i % RGT_COUNT]), cycle=cycle + i // RGT_COUNT, region=region,
            n_segments=n_segments, spacing_m=spacing_m, seed=seed, through=through,
        ))
    return paths


# =============================================================================================
# CLI
# =============================================================================================
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _lat_lon(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON in degrees, e.g. -75.5,120 (got {text!r})") from None
    try:
        return check_through((lat, lon))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def glue_negative_value(argv: list[str], option: str) -> list[str]:
    """``--through -75,120`` -> ``--through=-75,120``: argparse takes a leading '-' for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == option and arg.startswith("-"):
            out[-1] = f"{option}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m producer.synthetic",
        description="Write seeded synthetic ICESat-2 ATL06 granules (real layout, Antarctic tracks).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m producer.synthetic --output data --granules 50 --segments 142000 --through -75.5,120",
    )
    parser.add_argument("--output", required=True, type=Path, metavar="DIR", help="directory to write into (created if missing)")
    parser.add_argument("--granules", required=True, type=_int_at_least(1), metavar="N", help="number of granules (distinct RGTs)")
    parser.add_argument("--segments", required=True, type=_int_at_least(1), metavar="N", help="segments per beam (full length: 142000)")
    parser.add_argument("--spacing", type=_positive_float, default=20.0, metavar="M", help="along-track spacing in m (default 20)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--cycle", type=_int_at_least(1), default=14, metavar="C", help="cycle number (default 14)")
    parser.add_argument("--through", type=_lat_lon, metavar="LAT,LON", help="make every granule pass within ~2 km of this point")
    args = parser.parse_args(glue_negative_value(list(sys.argv[1:] if argv is None else argv), "--through"))
    if args.output.exists() and not args.output.is_dir():
        parser.error(f"argument --output: not a directory: {args.output}")

    began = time.perf_counter()
    try:
        paths = generate(
            args.output, n_granules=args.granules, n_segments=args.segments, spacing_m=args.spacing,
            seed=args.seed, through=args.through, cycle=args.cycle,
        )
    except (OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} granules, {size / 1e6:.1f} MB, in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

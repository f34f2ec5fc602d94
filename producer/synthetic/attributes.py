"""The ATL06 attribute table: dtypes, fill values and attributes as NASA's files carry them.

What the writer lays out, described once: per segment dataset, per beam group and per file.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import numpy as np

from shared.mission import ATLAS_EPOCH, BEAMS

if TYPE_CHECKING:
    from producer.synthetic.simulate import SimulatedGranule

__all__ = [
    "BEAM_ATTRS",
    "FILL_F32",
    "FILL_QUALITY",
    "ISO_UTC",
    "RELEASE",
    "SEGMENTS_ATTRS",
    "SEGMENT_DATASETS",
    "VERSION",
    "attrs",
    "file_attrs",
]

RELEASE, VERSION = "006", "01"

FILL_F32 = np.float32(np.finfo(np.float32).max)  # 3.4028235e+38, ATL06's _FillValue for heights
FILL_QUALITY = np.int8(127)
ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"  # the products' UTC time strings


def attrs(**values: object) -> dict[str, object]:
    """Attribute values as the real product stores them: strings fixed-length ASCII."""
    return {k: np.bytes_(v) if isinstance(v, str) else v for k, v in values.items()}


SEGMENT_DATASETS: dict[str, tuple[np.dtype, object, dict[str, object]]] = {
    # name: (dtype, HDF5 fill value or None, attributes)
    "latitude": (
        np.dtype("f8"),
        None,
        attrs(
            contentType="physicalMeasurement",
            coordinates="delta_time longitude",
            description="Latitude of segment center, WGS84, North=+,",
            long_name="Latitude",
            standard_name="latitude",
            units="degrees_north",
            valid_max=90.0,
            valid_min=-90.0,
        ),
    ),
    "longitude": (
        np.dtype("f8"),
        None,
        attrs(
            contentType="physicalMeasurement",
            coordinates="delta_time latitude",
            description="Longitude of segment center, , WGS84, East=+",
            long_name="Longitude",
            standard_name="longitude",
            units="degrees_east",
            valid_max=180.0,
            valid_min=-180.0,
        ),
    ),
    "h_li": (
        np.dtype("f4"),
        FILL_F32,
        attrs(
            _FillValue=FILL_F32,
            contentType="physicalMeasurement",
            coordinates="delta_time latitude longitude",
            description="Standard land-ice segment height (synthetic)",
            long_name="Land Ice height",
            units="meters",
        ),
    ),
    "h_li_sigma": (
        np.dtype("f4"),
        FILL_F32,
        attrs(
            _FillValue=FILL_F32,
            contentType="qualityInformation",
            coordinates="delta_time latitude longitude",
            description="Propagated error due to sampling error and FPB correction from the land ice algorithm",
            long_name="Expected RMS segment misfit",
            units="meters",
        ),
    ),
    "atl06_quality_summary": (
        np.dtype("i1"),
        FILL_QUALITY,
        attrs(
            _FillValue=FILL_QUALITY,
            contentType="qualityInformation",
            coordinates="delta_time latitude longitude",
            description="A zero in this parameter implies that no data-quality tests have found a problem "
            "with the segment, a one implies that some potential problem has been found.",
            flag_meanings="best_quality potential_problem",
            flag_values=np.array([0, 1], np.int8),
            long_name="ATL06_Quality_Summary",
            units="1",
            valid_max=np.int8(1),
            valid_min=np.int8(0),
        ),
    ),
    "segment_id": (
        np.dtype("i4"),
        None,
        attrs(
            contentType="referenceInformation",
            coordinates="delta_time latitude longitude",
            description="Segment number, counting from the equator.",
            long_name="Reference Point, m",
            units="1",
        ),
    ),
    "delta_time": (
        np.dtype("f8"),
        None,
        attrs(
            contentType="referenceInformation",
            coordinates="latitude longitude",
            description="Number of GPS seconds since the ATLAS SDP epoch.",
            long_name="Elapsed GPS seconds",
            standard_name="time",
            units=f"seconds since {ATLAS_EPOCH:%Y-%m-%d}",
        ),
    ),
}

# Flying forward: spot 6 (weak) is gt1l, spot 1 (strong) is gt3r.
BEAM_ATTRS = {
    beam: attrs(
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

SEGMENTS_ATTRS = attrs(
    Description="The land_ice_segments group contains the primary set of derived ATL06 products.",
)


def file_attrs(g: SimulatedGranule, t0: float, t1: float) -> dict[str, object]:
    """The root attributes of a granule whose segments span delta_time ``t0``..``t1``."""
    lats = np.concatenate([b["latitude"] for b in g.beams.values()])
    lons = np.concatenate([b["longitude"] for b in g.beams.values()])
    # The package's name, not __name__: a file's uuid must not depend on which module writes it.
    file_id = uuid.uuid5(uuid.NAMESPACE_URL, f"producer.synthetic/{g.name}/{g.seed}")
    n_segments = len(lats) // len(BEAMS)
    return attrs(
        short_name="ATL06",
        granule_type="ATL06",
        identifier_product_type="ATL06",
        identifier_file_product_type="ATL06",
        level="3A",
        processing_level="3A",
        title="ATLAS/ICESat-2 L3A Land Ice Height",
        description="Land ice surface heights for each beam (SYNTHETIC: generated by producer.synthetic).",
        Conventions="CF-1.6",
        featureType="trajectory",
        institution="National Aeronautics and Space Administration (NASA)",
        identifier_product_doi=f"10.5067/ATLAS/ATL06.{RELEASE}",
        identifier_product_format_version=RELEASE,
        identifier_file_uuid=str(file_id),
        source="Synthetic",
        history=f"Created by producer.synthetic (seed={g.seed}, {n_segments} segments per beam)",
        date_created=g.start.strftime(ISO_UTC),
        time_type="CCSDS UTC-A",
        date_type="UTC",
        time_coverage_start=g.start.strftime(ISO_UTC),
        time_coverage_end=g.end.strftime(ISO_UTC),
        time_coverage_duration=float(t1 - t0),
        geospatial_lat_min=float(lats.min()),
        geospatial_lat_max=float(lats.max()),
        geospatial_lon_min=float(lons.min()),
        geospatial_lon_max=float(lons.max()),
        geospatial_lat_units="degrees_north",
        geospatial_lon_units="degrees_east",
        spatial_coverage_type="Horizontal",
    )

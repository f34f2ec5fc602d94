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

Modules: ``orbit`` (tracks and times), ``surface`` (heights and noise), ``simulate`` (a granule in
memory), ``attributes`` (the ATL06 attribute table), ``writer`` (HDF5), ``generate`` (files) and
``cli``.
"""

# The names callers imported from the single module, still importable from here.
from producer.synthetic.attributes import FILL_F32
from producer.synthetic.cli import glue_negative_value, main
from producer.synthetic.generate import generate, write_granule
from producer.synthetic.orbit import EARTH_RADIUS_M
from producer.synthetic.simulate import SimulatedGranule, check_through, granule_name, simulate_granule
from shared.mission import ATLAS_EPOCH, ATLAS_SDP_GPS_EPOCH, BEAMS

__all__ = [
    "ATLAS_EPOCH",
    "ATLAS_SDP_GPS_EPOCH",
    "BEAMS",
    "EARTH_RADIUS_M",
    "FILL_F32",
    "SimulatedGranule",
    "check_through",
    "generate",
    "glue_negative_value",
    "granule_name",
    "main",
    "simulate_granule",
    "write_granule",
]

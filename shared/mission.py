"""ICESat-2 mission facts: the repeat orbit, the ATLAS time base and the beam names, stated once.

The operator side (cycle windows, the synthetic generator) and the worker (the beams it reads)
both rely on them, so they live in ``shared``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ATLAS_EPOCH", "ATLAS_SDP_GPS_EPOCH", "BEAMS", "CYCLE_DAYS", "INCLINATION_DEG", "RGT_COUNT"]

# The exact repeat orbit: 1,387 reference ground tracks (RGTs), flown again every 91 days.
RGT_COUNT = 1387
CYCLE_DAYS = 91
INCLINATION_DEG = 92.0

# ATL06's delta_time counts GPS seconds from this epoch; no leap second has been added since it.
ATLAS_EPOCH = datetime(2018, 1, 1, tzinfo=UTC)
ATLAS_SDP_GPS_EPOCH = 1198800018.0  # GPS seconds of the ATLAS epoch (ancillary_data/atlas_sdp_gps_epoch)

# The six ground tracks: three pairs, left and right beam of each; the products' group names.
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")

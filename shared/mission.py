"""ICESat-2 mission facts: the repeat orbit, the ATLAS time base and the beam names, stated once.

The operator side (cycle windows, the synthetic generator) and the worker (the beams it reads)
both rely on them, so they live in ``shared``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "ATLAS_EPOCH",
    "ATLAS_SDP_GPS_EPOCH",
    "BEAMS",
    "CYCLE_DAYS",
    "CYCLE_ONE_START_S",
    "INCLINATION_DEG",
    "NODAL_PERIOD_S",
    "RGT_COUNT",
]

# The exact repeat orbit: 1,387 reference ground tracks (RGTs), flown again every 91 days.
RGT_COUNT = 1387
CYCLE_DAYS = 91
INCLINATION_DEG = 92.0

# ATL06's delta_time counts GPS seconds from this epoch; no leap second has been added since it.
ATLAS_EPOCH = datetime(2018, 1, 1, tzinfo=UTC)
ATLAS_SDP_GPS_EPOCH = 1198800018.0  # GPS seconds of the ATLAS epoch (ancillary_data/atlas_sdp_gps_epoch)

# When cycles begin. A cycle begins with RGT 1, and an RGT with the ascending node crossing that
# each granule records (orbit_info/crossing_time, seconds since the ATLAS epoch). A least-squares
# line through the crossings of the five real granules in the data folder beside the project
# (RGT 234 of cycle 1; RGTs 277, 399, 1169, 1352 of cycle 3; residuals within 4.4 s) gives the
# nodal period and the crossing of RGT 1 of cycle 1 (2018-09-28T16:20:02Z; science data begin
# with RGT 234 on 2018-10-13). 1,387 revolutions are 90.82 days, not 91 (the node precesses), so
# the line puts cycles 2..5 on 2018-12-28, 2019-03-29, 2019-06-28, 2019-09-26 and cycle 14 on
# 2021-12-22 (published: 2021-12-22), where "2018-10-13 + 91 days per cycle" is 17 days late.
# Whole seconds: a cycle's bounds are written to the store as such.
NODAL_PERIOD_S = 5657.381208
CYCLE_ONE_START_S = 23_386_802.0

# The six ground tracks: three pairs, left and right beam of each; the products' group names.
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")

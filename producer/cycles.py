"""ICESat-2 cycles: the date window to search for a cycle, and the cycle a granule belongs to.

A cycle is selected by the granules' own cycle number, never by dates alone: the window
below only has to be wide enough to contain the whole cycle; the granules found in it are
then kept or dropped by the ``cc`` of their name (``..._ttttccrr_...``).

Where the numbers come from:

* ICESat-2 flies an exact 91-day repeat orbit (1,387 reference ground tracks); a cycle starts
  when the RGT number wraps back to 1, so cycle boundaries recur every 91 days.
* The anchor is a published cycle: cycle 14 ran 2021-12-22 to 2022-03-23 (NSIDC / ICESat-2
  project cycle table). Science data begin at RGT 234 on 2018-10-13, partway into cycle 1,
  which is why the naive ``2018-10-13 + 91 * (N - 1)`` is ~17 days late.
* Published start dates of other cycles differ from this 91-day rule by up to ~2-3 days
  (safe holds, orbit maintenance), so the search window is padded by ``SEARCH_MARGIN`` on both
  sides: generous on purpose, since the cycle filter removes the extra granules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from shared.granule_name import GranuleName, parse_granule_name
from shared.mission import CYCLE_DAYS

__all__ = ["GranuleName", "cycle_search_window", "nominal_cycle_dates", "parse_granule_name"]

DATA_START = date(2018, 10, 13)  # first science data: RGT 234, cycle 1 (partial)
ANCHOR_CYCLE, ANCHOR_START = 14, date(2021, 12, 22)  # published cycle 14 start
SEARCH_MARGIN = timedelta(days=10)


def nominal_cycle_dates(cycle: int) -> tuple[date, date]:
    """First and last day of ``cycle`` by the 91-day rule anchored on a published cycle."""
    if cycle < 1:
        raise ValueError(f"cycle must be 1 or more, not {cycle}")
    start = ANCHOR_START + timedelta(days=CYCLE_DAYS * (cycle - ANCHOR_CYCLE))
    return start, start + timedelta(days=CYCLE_DAYS)


def cycle_search_window(cycle: int) -> tuple[datetime, datetime]:
    """UTC window to search for ``cycle``: the nominal cycle padded on both sides (never before data begin)."""
    start, end = nominal_cycle_dates(cycle)
    first = max(start - SEARCH_MARGIN, DATA_START)
    last = end + SEARCH_MARGIN
    return day_start(first), day_end(last)


def day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def day_end(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=UTC)

"""The ICESat-2 granule name convention: ``ATL06_YYYYMMDDhhmmss_ttttccrr_vvv_ee.h5``.

Names say when a granule starts and which cycle it belongs to. The operator side uses them to
select a cycle and to plan which time windows a run writes; a point's own window always comes
from its ``delta_time``, never from a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

# tttt: RGT, cc: cycle, rr: granule region. A subsetter's prefix ("processed_ATL06_...") is allowed.
_NAME = re.compile(r"(?:^|_)(ATL\d{2})_(\d{14})_(\d{4})(\d{2})(\d{2})_(\d{3})_(\d{2})")


@dataclass(frozen=True)
class GranuleName:
    product: str
    start: datetime
    rgt: int
    cycle: int
    region: int
    release: str
    revision: str


def parse_granule_name(name: str) -> GranuleName | None:
    """The fields of an ICESat-2 granule name, or None if it does not follow the convention."""
    m = _NAME.search(name.rsplit("/", 1)[-1])
    if not m:
        return None
    product, stamp, rgt, cycle, region, release, revision = m.groups()
    try:
        start = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return GranuleName(product, start, int(rgt), int(cycle), int(region), release, revision)

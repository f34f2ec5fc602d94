"""Time windows: cycles against the real granules' own cycle numbers, calendar windows, the time axis."""

from __future__ import annotations

from datetime import UTC, datetime

import h5py
import numpy as np
import pytest

from shared.windows import (
    TimeWindow,
    WindowSpec,
    calendar_window,
    cycle_of,
    cycle_window,
    extend_axis,
    granule_windows,
    window_index,
)
from tests.independent import BEAMS

GPS_SECONDS_OF_ATLAS_EPOCH = 1198800018  # ancillary_data/atlas_sdp_gps_epoch of every real granule


def real_times(path) -> tuple[np.ndarray, int]:
    """Every segment's delta_time in a native granule, and the granule's orbit_info/cycle_number."""
    with h5py.File(path, "r") as f:
        times = [f[f"{b}/land_ice_segments/delta_time"][:] for b in BEAMS if f"{b}/land_ice_segments" in f]
        return np.concatenate(times), int(f["orbit_info/cycle_number"][0])


def test_cycles_of_every_real_point_are_their_granules_cycle(data_dir):
    files = sorted((data_dir / "atl06").glob("*.h5"))
    assert len(files) == 5
    seen = set()
    for path in files:
        times, cycle = real_times(path)
        assert (cycle_of(times) == cycle).all(), path.name
        seen.add(cycle)
    assert seen == {1, 3}
    # RGT 54 of cycle 2 (its name: ..._00540210_...): GPS seconds since 1980-01-06
    for path in (data_dir / "atl06-flat-antarctic").glob("*.h5"):
        with h5py.File(path, "r") as f:
            times = f["t_sec"][:] - GPS_SECONDS_OF_ATLAS_EPOCH
        assert (cycle_of(times) == 2).all(), path.name


def test_cycle_1387_of_cycle_3_is_late_june_and_cycle_4_starts_after_it(data_dir):
    """RGT 1352 of cycle 3 flew on 2019-06-25: the naive 2018-10-13 + 91-day rule would agree, but
    cycle 4 must start within the next 35 RGTs (~2.3 days), not on 2019-07-12."""
    times, _ = real_times(data_dir / "atl06" / "processed_ATL06_20190625191102_13520305_002_01.h5")
    start4 = cycle_window(4).start
    gap = (start4 - datetime(2019, 6, 25, 19, 13, 16, tzinfo=UTC)).total_seconds()
    assert 0 < gap < 36 * 5660


def test_published_cycle_dates():
    """Cycle 14: 2021-12-22 to 2022-03-23 (architecture brief); cycles are 90.82 days, so
    '2018-10-13 + 91 * (N - 1)' is 17 days late by cycle 14."""
    assert cycle_window(14).start.date().isoformat() == "2021-12-22"
    assert cycle_window(14).end.date().isoformat() == "2022-03-23"
    assert [cycle_window(n).start.date().isoformat() for n in (2, 3, 4, 5)] == [
        "2018-12-28",
        "2019-03-29",
        "2019-06-28",
        "2019-09-26",
    ]
    assert cycle_window(1).start < datetime(2018, 10, 13, tzinfo=UTC) < cycle_window(1).end
    for n in (1, 7, 30):  # consecutive, whole seconds, and each start maps back to its cycle
        w = cycle_window(n)
        assert w.end == cycle_window(n + 1).start and w.start.microsecond == 0
        s, e = w.bounds_s
        assert list(cycle_of(np.array([s, e - 1e-3, e]))) == [n, n, n + 1]


def test_synthetic_granules_of_a_cycle_have_times_in_that_cycle(tmp_path):
    from producer.synthetic import generate

    for cycle in (3, 14, 22):
        for path in generate(tmp_path / str(cycle), n_granules=3, n_segments=200, seed=cycle, cycle=cycle):
            times, recorded = real_times(path)
            assert recorded == cycle
            assert (cycle_of(times) == cycle).all()


def test_calendar_windows_and_ranges():
    t = datetime(2019, 5, 17, 3, 4, 5, tzinfo=UTC)
    assert calendar_window("month", t).start == datetime(2019, 5, 1, tzinfo=UTC)
    assert calendar_window("month", t).end == datetime(2019, 6, 1, tzinfo=UTC)
    assert calendar_window("quarter", t).start == datetime(2019, 4, 1, tzinfo=UTC)
    assert calendar_window("quarter", t).end == datetime(2019, 7, 1, tzinfo=UTC)
    assert calendar_window("year", t).end == datetime(2020, 1, 1, tzinfo=UTC)
    assert calendar_window("month", datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC)).end == datetime(
        2020, 1, 1, tzinfo=UTC
    )
    spec = WindowSpec.parse("2019-04-01/2019-07-01,2019-01-01/2019-04-01")
    assert [w.start.month for w in spec.ranges] == [1, 4]
    with pytest.raises(ValueError, match="overlap"):
        WindowSpec.parse("2019-01-01/2019-05-01,2019-04-01/2019-07-01")
    with pytest.raises(ValueError, match="window kind"):
        WindowSpec.parse("fortnight")


def test_window_index_is_half_open_and_minus_one_outside():
    windows = [cycle_window(3), cycle_window(4), cycle_window(6)]
    s3, e3 = windows[0].bounds_s
    s6, e6 = windows[2].bounds_s
    t = np.array([s3 - 1, s3, e3 - 0.5, e3, s6 - 1, e6 - 1, e6, np.nan])
    assert list(window_index(t, windows)) == [-1, 0, 0, 1, -1, 2, -1, -1]


def test_axis_grows_only_at_its_end():
    spec = WindowSpec()
    axis = extend_axis(spec, [], [cycle_window(5), cycle_window(3)])
    assert [w.cycle for w in axis] == [3, 4, 5]  # consecutive: every run's windows line up
    assert extend_axis(spec, axis, [cycle_window(4)]) == axis
    assert [w.cycle for w in extend_axis(spec, axis, [cycle_window(7)])] == [3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="only later windows"):
        extend_axis(spec, axis, [cycle_window(2)])
    ranges = WindowSpec.parse("2019-01-01/2019-02-01,2019-03-01/2019-04-01")
    axis = extend_axis(ranges, [], [ranges.ranges[1]])
    with pytest.raises(ValueError, match="only later windows"):
        extend_axis(ranges, axis, [ranges.ranges[0]])
    later = TimeWindow(start=datetime(2019, 5, 1), end=datetime(2019, 6, 1))
    assert extend_axis(ranges, axis, [later]) == [ranges.ranges[1], later]


def test_windows_a_run_writes_come_from_granule_names():
    names = ["ATL06_20190416093911_02770303_006_01.h5", "processed_ATL06_20190625191102_13520305_002_01.h5"]
    assert [w.cycle for w in granule_windows(WindowSpec(), names)[0]] == [3]
    windows, untold = granule_windows(WindowSpec(kind="month"), [*names, "granule.h5"])
    assert [w.start.month for w in windows] == [4, 6] and untold == ["granule.h5"]
    with pytest.raises(ValueError, match="START/END"):
        granule_windows(WindowSpec(kind="month"), ["granule.h5"])

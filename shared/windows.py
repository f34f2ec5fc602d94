"""Time windows: what a window is, which window a point's time falls in, and a store's time axis.

A point's time is its ATL06 ``delta_time``: GPS seconds since the ATLAS epoch
(``shared.mission.ATLAS_EPOCH``, 2018-01-01T00:00:00Z). No leap second has been added since that
epoch, so seconds since the epoch are UTC seconds too. Windows are half-open ``[start, end)``,
whole UTC seconds, and of one kind per store:

* ``cycle`` (the default): cycle N runs from the start of RGT 1 of cycle N to that of cycle N+1
  (``shared.mission``: the ascending node crossings of the real granules, fitted);
* ``month``, ``quarter``, ``year``: calendar windows in UTC;
* ``ranges``: explicit date ranges, sorted and not overlapping.

A store's time axis is a run of consecutive windows (for ``ranges``, the ranges given), so every
run's windows line up and a later window is added at the end without moving any other.
The functions on arrays are pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.granule_name import parse_granule_name
from shared.mission import ATLAS_EPOCH, CYCLE_ONE_START_S, NODAL_PERIOD_S, RGT_COUNT

WindowKind = Literal["cycle", "month", "quarter", "year", "ranges"]
CALENDAR_MONTHS = {"month": 1, "quarter": 3, "year": 12}
CYCLE_SECONDS = RGT_COUNT * NODAL_PERIOD_S
_EPOCH64 = np.datetime64(ATLAS_EPOCH.replace(tzinfo=None), "s")


# -- moments -----------------------------------------------------------------------------------------
def atlas_seconds(moment: datetime) -> float:
    """Seconds since the ATLAS epoch of a moment (naive moments are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - ATLAS_EPOCH).total_seconds()


def atlas_moment(seconds: float) -> datetime:
    """The UTC moment ``seconds`` after the ATLAS epoch."""
    return ATLAS_EPOCH + timedelta(seconds=float(seconds))


def _whole_seconds(moment: datetime) -> datetime:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


# -- cycles ------------------------------------------------------------------------------------------
def cycle_start_s(cycle: np.ndarray | int) -> np.ndarray:
    """Start of ``cycle`` (the start of its RGT 1), whole seconds since the ATLAS epoch."""
    return np.round(CYCLE_ONE_START_S + (np.asarray(cycle, dtype=np.float64) - 1) * CYCLE_SECONDS)


def cycle_of(delta_time: np.ndarray) -> np.ndarray:
    """The cycle (int64) each ``delta_time`` falls in."""
    t = np.asarray(delta_time, dtype=np.float64)
    guess = np.floor((t - CYCLE_ONE_START_S) / CYCLE_SECONDS).astype(np.int64) + 1
    # the starts are rounded to whole seconds: a time within a second of one may sit a cycle off
    guess -= t < cycle_start_s(guess)
    guess += t >= cycle_start_s(guess + 1)
    return guess


# -- windows -----------------------------------------------------------------------------------------
class TimeWindow(BaseModel):
    """One window ``[start, end)`` in UTC, whole seconds; ``cycle`` for cycle windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime
    cycle: int | None = Field(default=None, ge=1)

    @field_validator("start", "end")
    @classmethod
    def _utc_seconds(cls, v: datetime) -> datetime:
        return _whole_seconds(v)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"a window must end after it starts ({self.start} .. {self.end})")
        return self

    @property
    def label(self) -> str:
        span = f"{self.start:%Y-%m-%d %H:%M:%S}..{self.end:%Y-%m-%d %H:%M:%S}"
        return f"cycle {self.cycle} ({span})" if self.cycle is not None else span

    @property
    def bounds_s(self) -> tuple[float, float]:
        """``[start, end)`` in seconds since the ATLAS epoch: comparable with ``delta_time``."""
        return atlas_seconds(self.start), atlas_seconds(self.end)


class PlacedWindow(TimeWindow):
    """A window and its position in a store's time axis."""

    index: int = Field(ge=0)


def cycle_window(cycle: int) -> TimeWindow:
    start, end = cycle_start_s(np.array([cycle, cycle + 1]))
    return TimeWindow(start=atlas_moment(start), end=atlas_moment(end), cycle=cycle)


def calendar_window(kind: str, moment: datetime) -> TimeWindow:
    """The calendar window (month, quarter, year) holding ``moment``."""
    step = CALENDAR_MONTHS[kind]
    months = _month_ordinal(moment) // step * step
    return TimeWindow(start=_month_start(months), end=_month_start(months + step))


def _month_ordinal(moment: datetime) -> int:
    moment = _whole_seconds(moment)
    return (moment.year - 1970) * 12 + moment.month - 1


def _month_start(months: int) -> datetime:
    return datetime(1970 + months // 12, months % 12 + 1, 1, tzinfo=UTC)


class WindowSpec(BaseModel):
    """How a store cuts time: the kind of window, and for ``ranges`` the ranges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: WindowKind = "cycle"
    ranges: tuple[TimeWindow, ...] = ()

    @model_validator(mode="after")
    def _ranges_for_ranges(self) -> WindowSpec:
        if (self.kind == "ranges") != bool(self.ranges):
            raise ValueError("ranges are given with kind 'ranges', and only with it")
        for a, b in zip(self.ranges, self.ranges[1:], strict=False):
            if b.start < a.end:
                raise ValueError(f"ranges must be sorted and must not overlap ({a.start}..{a.end}, {b.start}..{b.end})")
        return self

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """``cycle``, ``month``, ``quarter``, ``year`` or ``START/END[,START/END...]`` (ISO dates or times, UTC)."""
        text = text.strip()
        if text in ("cycle", *CALENDAR_MONTHS):
            return cls(kind=text)
        ranges = []
        for part in text.split(","):
            start, sep, end = part.partition("/")
            if not sep:
                raise ValueError(f"{part!r} is not a window kind (cycle, month, quarter, year) nor START/END")
            ranges.append(TimeWindow(start=_parse_moment(start), end=_parse_moment(end)))
        return cls(kind="ranges", ranges=tuple(sorted(ranges, key=lambda w: w.start)))

    def window_at(self, moment: datetime, cycle: int | None = None) -> TimeWindow | None:
        """The window holding ``moment`` (for cycle windows, ``cycle`` when known); None for a
        moment outside every range."""
        if self.kind == "cycle":
            return cycle_window(cycle if cycle is not None else int(cycle_of(np.array([atlas_seconds(moment)]))[0]))
        if self.kind == "ranges":
            return next((w for w in self.ranges if w.start <= _whole_seconds(moment) < w.end), None)
        return calendar_window(self.kind, moment)

    def following(self, window: TimeWindow) -> TimeWindow | None:
        """The window right after ``window`` in this kind's sequence (None after the last range)."""
        if self.kind == "cycle":
            return cycle_window(window.cycle + 1)
        if self.kind == "ranges":
            later = [w for w in self.ranges if w.start >= window.end]
            return later[0] if later else None
        return calendar_window(self.kind, window.end)

    def run(self, first: TimeWindow, last: TimeWindow) -> list[TimeWindow]:
        """Every window from ``first`` to ``last``, in order, none skipped."""
        out = [first]
        while out[-1] != last:
            nxt = self.following(out[-1])
            if nxt is None or nxt.start > last.start:
                raise ValueError(f"window {last.start:%Y-%m-%d} does not follow {first.start:%Y-%m-%d}")
            out.append(nxt)
        return out


def _parse_moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO date or time") from None


def granule_windows(spec: WindowSpec, granule_ids: Iterable[str]) -> tuple[list[TimeWindow], list[str]]:
    """The windows a run of these granules writes, and the granules whose names do not tell.

    For cycle windows, the cycles the granule names carry (an RGT, so a granule, never crosses a
    cycle boundary); otherwise the windows holding the granules' start times; for ``ranges``,
    every range. Sorted, without repeats. A granule whose name does not tell adds no window (its
    points count in the windows the others give); when no name tells, ValueError: such a run
    names its windows as ranges."""
    if spec.kind == "ranges":
        return list(spec.ranges), []
    found: dict[datetime, TimeWindow] = {}
    untold = []
    for gid in granule_ids:
        name = parse_granule_name(gid)
        if name is None:
            untold.append(gid)
            continue
        window = spec.window_at(name.start, name.cycle if spec.kind == "cycle" else None)
        if window is not None:
            found[window.start] = window
    if untold and not found:
        raise ValueError(f"granule {untold[0]}: its name does not tell its time; give the windows as START/END ranges")
    return [found[k] for k in sorted(found)], untold


def extend_axis(spec: WindowSpec, axis: list[TimeWindow], wanted: list[TimeWindow]) -> list[TimeWindow]:
    """The time axis that holds ``axis`` unchanged, then every window up to the last of ``wanted``.

    A window before the axis's first, or missing from its middle, cannot be added: the windows
    already written would have to move. Raises ValueError then."""
    if not wanted:
        return list(axis)
    wanted = sorted(wanted, key=lambda w: w.start)
    if not axis:
        return spec.run(wanted[0], wanted[-1]) if spec.kind != "ranges" else wanted
    held = set(axis)
    for w in wanted:
        if w.start < axis[-1].end and w not in held:
            raise ValueError(
                f"window {w.start:%Y-%m-%d}..{w.end:%Y-%m-%d} is not on the store's time axis "
                f"({axis[0].start:%Y-%m-%d}..{axis[-1].end:%Y-%m-%d}) and only later windows can be added: "
                "use a new store"
            )
    later = [w for w in wanted if w.start >= axis[-1].end]
    if not later:
        return list(axis)
    if spec.kind == "ranges":
        return [*axis, *later]
    nxt = spec.following(axis[-1])
    return [*axis, *spec.run(nxt, later[-1])]


def place(axis: list[TimeWindow], wanted: list[TimeWindow]) -> list[PlacedWindow]:
    """``wanted`` with their positions in ``axis``."""
    position = {w: i for i, w in enumerate(axis)}
    return [PlacedWindow(**w.model_dump(), index=position[w]) for w in wanted]


def window_index(delta_time: np.ndarray, windows: list[TimeWindow]) -> np.ndarray:
    """Position in ``windows`` (sorted, not overlapping) of the window each time falls in; -1 for
    a time in none (or not a number)."""
    t = np.asarray(delta_time, dtype=np.float64)
    if not windows:
        return np.full(t.shape, -1, dtype=np.int64)
    starts = np.array([w.bounds_s[0] for w in windows])
    ends = np.array([w.bounds_s[1] for w in windows])
    i = np.searchsorted(starts, t, side="right") - 1
    inside = (i >= 0) & (t < ends[np.clip(i, 0, None)])
    return np.where(inside, i, -1).astype(np.int64)


def axis_arrays(axis: list[TimeWindow]) -> dict[str, np.ndarray]:
    """The time coordinates of a store: ``time`` (window start) and ``time_end`` as int64 seconds
    since 1970-01-01 (CF units, decoded to datetime64 by xarray), and ``cycle`` when every window
    is a cycle."""
    out = {
        "time": np.array([int(w.start.timestamp()) for w in axis], dtype=np.int64),
        "time_end": np.array([int(w.end.timestamp()) for w in axis], dtype=np.int64),
    }
    if axis and all(w.cycle is not None for w in axis):
        out["cycle"] = np.array([w.cycle for w in axis], dtype=np.int32)
    return out


def axis_from_arrays(time: np.ndarray, time_end: np.ndarray, cycle: np.ndarray | None) -> list[TimeWindow]:
    """The inverse of :func:`axis_arrays`."""
    return [
        TimeWindow(
            start=datetime.fromtimestamp(int(s), UTC),
            end=datetime.fromtimestamp(int(e), UTC),
            cycle=None if cycle is None else int(cycle[i]),
        )
        for i, (s, e) in enumerate(zip(time, time_end, strict=True))
    ]


def datetime64(delta_time: np.ndarray) -> np.ndarray:
    """``delta_time`` as UTC datetime64[ns]."""
    ns = np.round(np.asarray(delta_time, dtype=np.float64) * 1e9).astype(np.int64)
    return _EPOCH64.astype("datetime64[ns]") + ns.astype("timedelta64[ns]")

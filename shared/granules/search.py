"""Which chunks of a beam's latitude can hold a shard's latitude band, reading few of them.

Pure: latitude values in, chunk numbers out. The search rests on one assumption, true of a
satellite's ground track: along a beam, latitude has at most one turning point, a minimum in the
southern hemisphere or a maximum in the northern one. Data that contradict it make the search
read every chunk. Invalid latitudes (non-finite, the fill value, beyond the poles) are no position
of the track: the search treats them as gaps, never as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.granules.points import span, valid_latitudes


@dataclass
class BandSearch:
    """Which chunks of one beam's latitude can hold a value in ``[lo, hi]``, reading few of them.

    Feed it chunks with :meth:`add` and ask :meth:`next_chunks` what to read next; it is finished
    when that is empty. Exclusions rest on one assumption (see the module doc): in the southern
    hemisphere latitude is quasiconvex along the beam (it falls, then rises), in the northern
    quasiconcave. For quasiconvex g and read points x < y < z: g(y) <= max(g(x), g(z)); and if
    g(p) > g(q) for read p < q, every point before p has g >= g(p) (mirror image after a rise).
    Contradicting data (a second turning point) switches to reading every chunk. The proofs use
    valid latitudes only (:func:`valid_latitudes` with ``fill``, the dataset's fill value).
    """

    length: int
    chunk: int
    lo: float
    hi: float
    fill: float | None = None
    values: dict[int, np.ndarray] = field(default_factory=dict)
    read_all: bool = False

    def __post_init__(self) -> None:
        if self.lo <= 0.0 <= self.hi:
            self.read_all = True  # a band across the equator: no shape to rely on
        # work on g, quasiconvex: latitude in the south, minus latitude in the north
        self.sign = 1.0 if self.hi < 0 else -1.0
        self.g_lo, self.g_hi = sorted((self.sign * self.lo, self.sign * self.hi))

    @property
    def n_chunks(self) -> int:
        return -(-self.length // self.chunk)

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min((k + 1) * self.chunk, self.length)

    def add(self, k: int, values: np.ndarray) -> None:
        self.values[k] = np.asarray(values, dtype=np.float64)

    # -- what is known ---------------------------------------------------------------------------
    def _known(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices and g values of every valid latitude read, in along-track order."""
        ks = sorted(self.values)
        if not ks:
            return np.empty(0, np.int64), np.empty(0)
        idx = np.concatenate([np.arange(*self.bounds(k)) for k in ks])
        lat = np.concatenate([self.values[k] for k in ks])
        valid = valid_latitudes(lat, self.fill)
        return idx[valid], self.sign * lat[valid]

    @staticmethod
    def _consistent(g: np.ndarray) -> bool:
        """Non-increasing, then non-decreasing: at most one turning point, a minimum."""
        d = np.diff(g)
        rises = np.flatnonzero(d > 0)
        return rises.size == 0 or not (d[rises[0] :] < 0).any()

    def excluded(self, idx: np.ndarray | None = None, g: np.ndarray | None = None) -> set[int]:
        """Unread chunks that provably hold no latitude in the band."""
        if idx is None or g is None:
            idx, g = self._known()
        if idx.size == 0 or self.read_all:
            return set()
        unread = np.array([k for k in range(self.n_chunks) if k not in self.values], dtype=np.int64)
        if unread.size == 0:
            return set()
        n = idx.size
        starts = unread * self.chunk
        stops = np.minimum(starts + self.chunk, self.length)
        left = np.searchsorted(idx, starts)  # idx[:left] lie before the chunk
        right = np.searchsorted(idx, stops)  # idx[right:] lie after it
        # upper bound, read points on both sides x < y < z: g(y) <= max(min g before, min g after)
        prefix_min = np.minimum.accumulate(g)
        suffix_min = np.minimum.accumulate(g[::-1])[::-1]
        both = (left > 0) & (right < n)
        upper = np.full(unread.size, np.inf)
        upper[both] = np.maximum(prefix_min[left[both] - 1], suffix_min[right[both]])
        # lower bounds: a read p with a smaller read after it bounds everything before p by g(p);
        # a read q with a smaller read before it bounds everything after q by g(q)
        after_smaller = np.append(suffix_min[1:], np.inf) < g
        before_smaller = np.insert(prefix_min[:-1], 0, np.inf) < g
        from_right = np.maximum.accumulate(np.where(after_smaller, g, -np.inf)[::-1])[::-1]  # max over positions >= i
        from_left = np.maximum.accumulate(np.where(before_smaller, g, -np.inf))  # max over positions <= i
        lower = np.full(unread.size, -np.inf)
        has_right, has_left = right < n, left > 0
        lower[has_right] = from_right[right[has_right]]
        lower[has_left] = np.maximum(lower[has_left], from_left[left[has_left] - 1])
        return set(unread[(upper < self.g_lo) | (lower > self.g_hi)].tolist())

    # -- what to read next -----------------------------------------------------------------------
    def next_chunks(self) -> list[int]:
        n = self.n_chunks
        unread = [k for k in range(n) if k not in self.values]
        if not unread:
            return []
        if self.read_all or n <= 3:
            return unread
        if not self.values:
            return [0, n - 1]
        idx, g = self._known()
        if not self._consistent(g):
            self.read_all = True
            return unread
        excluded = self.excluded(idx, g)
        candidates = [k for k in unread if k not in excluded]
        picks: set[int] = set()
        for first, last in runs_of(candidates):
            picks |= self._predict(first, last, idx, g)
        return sorted(picks)

    def _trend(self, at: int, away: int, idx: np.ndarray, g: np.ndarray) -> tuple[float, float, float]:
        """``(x, g, slope)`` at the read point ``idx[at]``: the slope of the line to the read point up
        to half a chunk from it in direction ``away`` (-1 or +1), within the same unbroken stretch."""
        reach = self.chunk // 2
        if away < 0:
            lo = max(at - reach, 0)
            unbroken = idx[at] - idx[lo : at + 1] == at - np.arange(lo, at + 1)
            j = lo + int(np.argmax(unbroken))  # the farthest point still unbroken
        else:
            hi = min(at + reach, idx.size - 1)
            unbroken = idx[at : hi + 1] - idx[at] == np.arange(0, hi - at + 1)
            j = at + int(np.flatnonzero(unbroken)[-1])
        slope = (g[at] - g[j]) / (idx[at] - idx[j]) if j != at else 0.0
        return float(idx[at]), float(g[at]), float(slope)

    def _predict(self, first: int, last: int, idx: np.ndarray, g: np.ndarray) -> set[int]:
        """Chunks of the unproven run ``first..last`` to read next: from each side that has read
        latitudes, the nearest chunk the local trend carries into the band; else the run's middle."""
        left = np.searchsorted(idx, self.bounds(first)[0])  # idx[:left] lie before the run
        right = np.searchsorted(idx, self.bounds(last)[1])  # idx[right:] lie after it
        sides = []
        if left > 0:  # the run's left neighbour, its trend from further left, moving right
            sides.append((self._trend(left - 1, -1, idx, g), range(first, last + 1)))
        if right < idx.size:  # the right neighbour, its trend from further right, moving left
            sides.append((self._trend(right, +1, idx, g), range(last, first - 1, -1)))
        picks = set()
        for (x0, y0, slope), order in sides:
            for k in order:
                s, e = self.bounds(k)
                ends = y0 + slope * (np.array([s, e - 1], dtype=np.float64) - x0)
                if ends.min() <= self.g_hi and ends.max() >= self.g_lo:
                    picks.add(k)
                    break
        if not picks:  # nothing is expected in the band, but it is not proven: split the run
            picks.add((first + last) // 2)
        return picks

    # -- the answer ------------------------------------------------------------------------------
    def runs(self) -> list[tuple[int, np.ndarray]]:
        """Runs of adjacent read chunks that hold latitudes in the band: ``(first index, latitude)``,
        trimmed to the first and last such latitude of each run."""
        out = []
        ks = sorted(self.values)
        i = 0
        while i < len(ks):
            j = i
            while j + 1 < len(ks) and ks[j + 1] == ks[j] + 1:
                j += 1
            start = self.bounds(ks[i])[0]
            lat = np.concatenate([self.values[k] for k in ks[i : j + 1]])
            rng = span((lat >= self.lo) & (lat <= self.hi) & valid_latitudes(lat, self.fill))
            if rng is not None:
                out.append((start + rng[0], lat[rng[0] : rng[1]]))
            i = j + 1
        return out


def runs_of(ks: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as runs of consecutive ones: ``(first, last)``."""
    out: list[tuple[int, int]] = []
    for k in sorted(ks):
        if out and out[-1][1] == k - 1:
            out[-1] = (out[-1][0], k)
        else:
            out.append((k, k))
    return out

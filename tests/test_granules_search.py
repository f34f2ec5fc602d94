"""The latitude band search (shared/granules/search.py): it finds every latitude of the band and reads less."""

from __future__ import annotations

import numpy as np
import pytest

from shared.granules.search import BandSearch, runs_of

CHUNK = 1000


def search(lat: np.ndarray, lo: float, hi: float, chunk: int = CHUNK) -> tuple[BandSearch, int]:
    """Run a search against an in-memory latitude array; returns it and the rounds it took."""
    s = BandSearch(lat.size, chunk, lo, hi)
    rounds = 0
    while chunks := s.next_chunks():
        rounds += 1
        assert rounds <= s.n_chunks, "the search must finish"
        for k in chunks:
            assert k not in s.values, "a chunk is read once"
            a, b = s.bounds(k)
            s.add(k, lat[a:b])
    return s, rounds


def assert_finds_every_latitude_in_band(lat: np.ndarray, s: BandSearch) -> None:
    inside = np.flatnonzero((lat >= s.lo) & (lat <= s.hi))
    covered = np.zeros(lat.size, bool)
    for start, values in s.runs():
        np.testing.assert_array_equal(values, lat[start : start + values.size])  # the latitudes as read
        covered[start : start + values.size] = True
    assert covered[inside].all(), "a latitude inside the band was missed"


def descent(n: int, top: float, bottom: float) -> np.ndarray:
    return np.linspace(top, bottom, n)


def turning(n: int, start: float, extreme: float, end: float, at: float = 0.4) -> np.ndarray:
    """Latitude that goes from ``start`` to ``extreme`` (reached at fraction ``at``), then to ``end``."""
    x = np.arange(n) / (n - 1)
    first = start + (extreme - start) * (1 - (1 - x / at) ** 2)
    second = extreme + (end - extreme) * ((x - at) / (1 - at)) ** 2
    return np.where(x <= at, first, second)


@pytest.mark.parametrize(
    "lat,band",
    [
        (descent(15_500, -60.0, -87.0), (-76.2, -74.7)),  # monotonic, southward
        (descent(15_500, -87.0, -60.0), (-76.2, -74.7)),  # monotonic, northward
        (turning(15_500, -70.0, -88.0, -62.0), (-76.2, -74.7)),  # through the band twice
        (turning(15_500, -82.0, -88.0, -71.0), (-76.2, -74.7)),  # once, after the turn
        (turning(15_500, -70.0, -88.0, -62.0), (-88.1, -87.99)),  # the turning point itself
        (turning(15_500, 70.0, 88.0, 62.0), (74.7, 76.2)),  # northern hemisphere: a maximum
        (descent(15_500, -60.0, -70.0), (-76.2, -74.7)),  # never reaches the band
        (descent(15_500, 5.0, -5.0), (-0.5, 0.5)),  # a band across the equator: reads all
    ],
)
def test_search_finds_the_band_and_reads_less(lat, band):
    s, _ = search(lat, *band)
    assert_finds_every_latitude_in_band(lat, s)
    if not band[0] <= 0 <= band[1]:
        assert len(s.values) < s.n_chunks  # proof without reading everything


def test_search_reads_the_ends_and_the_band_of_a_monotonic_beam():
    lat = descent(15_500, -60.0, -87.0)
    s, rounds = search(lat, -76.2, -74.7)
    band_chunks = set(np.flatnonzero((lat >= -76.2) & (lat <= -74.7)) // CHUNK)
    assert set(s.values) <= band_chunks | {0, s.n_chunks - 1, *(k + d for k in band_chunks for d in (-1, 1))}
    assert rounds <= 4


def test_search_reads_everything_once_latitude_contradicts_the_assumption():
    x = np.linspace(0, 4 * np.pi, 15_500)
    wavy = -75.0 + 3.0 * np.sin(x)  # several turning points: not a ground track
    s, _ = search(wavy, -76.2, -74.7)
    assert s.read_all and len(s.values) == s.n_chunks
    assert_finds_every_latitude_in_band(wavy, s)


FILL64 = 3.4028234663852886e38


@pytest.mark.parametrize("bad", [np.nan, FILL64, 95.0, -np.inf])
@pytest.mark.parametrize(
    "lat,band,at",
    [
        (descent(15_500, -60.0, -87.0), (-76.2, -74.7), 9_500),  # in a chunk the search reads
        (turning(15_500, 70.0, 88.0, 62.0), (74.7, 76.2), 999),  # the end of the first chunk read
        (turning(15_500, -70.0, -88.0, -62.0), (-88.1, -87.5), None),  # the turning point itself
        (turning(15_500, -82.0, -88.0, -71.0), (-76.2, -74.7), 15_499),  # the beam's last point
    ],
)
def test_invalid_latitudes_are_gaps_not_evidence(lat, band, at, bad):
    """A NaN, the fill value or a latitude beyond the pole is no position of the track: the search
    still finds every valid latitude in the band (the fill value once hid a run of them) and still
    proves chunks away without reading everything."""
    lat = lat.copy()
    lat[int(np.argmin(lat)) if at is None else at] = bad
    s = BandSearch(lat.size, CHUNK, *band, fill=FILL64)
    while chunks := s.next_chunks():
        for k in chunks:
            s.add(k, lat[slice(*s.bounds(k))])
    assert_finds_every_latitude_in_band(lat, s)
    assert len(s.values) < s.n_chunks


def test_runs_of():
    assert runs_of([5, 1, 2, 3, 7, 8]) == [(1, 3), (5, 5), (7, 8)]
    assert runs_of([]) == []

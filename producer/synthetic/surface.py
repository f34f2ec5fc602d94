"""What the synthetic beams measure: an ice surface, and the noise, flags and gaps of ATL06 heights.

Pure functions of positions and a random generator.
"""

from __future__ import annotations

import numpy as np

from producer.synthetic.attributes import FILL_F32
from producer.synthetic.orbit import EARTH_RADIUS_M

__all__ = ["fill_runs", "ice_surface", "measure_beam", "surface_change"]

DOME_LAT_DEG, DOME_LON_DEG = -84.0, 60.0  # summit off the pole, like Dome A
DOME_HEIGHT_M = 3500.0
DOME_RADIUS_DEG = 26.0
SHELF_HEIGHT_M = 50.0  # floating ice shelves stand ~50 m above the ellipsoid
# The margins thin, the interior holds (m a year at the dome's edge, growing as r**4 towards it), so
# that repeat passes of later cycles see a change: what a map of two cycles is for. Exaggerated
# (the fastest real glaciers thin a few m a year) so that one 91-day cycle shows it above the
# differences of sampling a sloping surface at slightly different places.
MARGIN_THINNING_M_PER_YEAR = 12.0
SECONDS_PER_YEAR = 365.25 * 86400.0
# (unit direction in the equatorial plane, wavelength km, amplitude m): waves fixed on the Earth,
# so repeat passes and crossing tracks see the same surface.
UNDULATIONS = (
    ((1.0, 0.0), 47.0, 30.0),
    ((0.5, 0.8660254), 23.0, 12.0),
    ((-0.7660444, 0.6427876), 11.0, 4.0),
)


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)


def _dome_radius(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance from the dome's summit as a fraction of its radius, 0..1 (1 beyond the dome)."""
    x, y, z = _unit_vectors(lat, lon)
    dx, dy, dz = _unit_vectors(np.float64(DOME_LAT_DEG), np.float64(DOME_LON_DEG))
    dist = np.degrees(np.arccos(np.clip(x * dx + y * dy + z * dz, -1.0, 1.0)))
    return np.clip(dist / DOME_RADIUS_DEG, 0.0, 1.0)


def surface_change(lat: np.ndarray, lon: np.ndarray, delta_time: np.ndarray) -> np.ndarray:
    """Height change since the ATLAS epoch (m) at ``delta_time`` (s): thinning margins."""
    return -MARGIN_THINNING_M_PER_YEAR * _dome_radius(lat, lon) ** 4 * (delta_time / SECONDS_PER_YEAR)


def ice_surface(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A smooth Antarctic-like ice surface height (m above the ellipsoid) at the ATLAS epoch."""
    x, y, z = _unit_vectors(lat, lon)
    r = _dome_radius(lat, lon)
    # Vialov's steady-state profile: flat interior, steep margins, as real ice sheets have.
    dome = DOME_HEIGHT_M * (1.0 - r ** (4.0 / 3.0)) ** (3.0 / 8.0)
    radius_km = EARTH_RADIUS_M / 1000.0
    waves = sum(
        amp * np.sin(2 * np.pi * radius_km * (x * ux + y * uy) / wavelength)
        for (ux, uy), wavelength, amp in UNDULATIONS
    )
    return np.maximum(dome, SHELF_HEIGHT_M) + waves


def fill_runs(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mask of a few short runs of missing segments (at least one, so small granules show it)."""
    mask = np.zeros(n, bool)
    runs = max(1, int(rng.poisson(n / 25_000)))
    longest = max(1, min(60, n // 50))
    starts = rng.integers(0, n, runs)
    lengths = rng.integers(min(5, longest), longest + 1, runs)
    for start, length in zip(starts, lengths, strict=True):
        mask[start : start + length] = True
    return mask


def measure_beam(h_true: np.ndarray, weak: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """h_li, h_li_sigma (float32, fill where missing) and atl06_quality_summary (int8) of a beam."""
    n = h_true.size
    # Weak beams see a quarter of the photons: larger errors, more flags.
    sigma = np.clip(rng.lognormal(np.log(0.12 if weak else 0.06), 0.6, n), 0.01, 5.0)
    flagged = (rng.random(n) < (0.16 if weak else 0.10)) | (sigma > 0.6)
    # Flagged segments carry extra error: that is why a quality filter matters.
    error = rng.normal(0.0, sigma) + np.where(flagged, rng.normal(0.0, 1.5, n), 0.0)
    h_li = (h_true + error).astype(np.float32)
    h_sigma = sigma.astype(np.float32)
    missing = fill_runs(n, rng)
    h_li[missing] = FILL_F32
    h_sigma[missing] = FILL_F32
    quality = (flagged | missing).astype(np.int8)
    return h_li, h_sigma, quality

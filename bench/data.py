"""Benchmark input: a dense shard of seeded synthetic granules, generated once and cached.

The cache lives under ``bench/.cache/`` (gitignored), one folder per set of generation parameters,
so changing any parameter generates a new set and the same parameters reuse it. A folder is only
complete once its ``done.json`` is written (generation happens in a scratch folder first).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from producer.synthetic import generate

CACHE_DIR = Path(__file__).resolve().parent / ".cache"


@dataclass(frozen=True)
class InputSpec:
    """What fixes the granules: same spec, byte-identical files."""

    n_granules: int = 50
    n_segments: int = 142_000  # a full-length ATL06 granule: ~2,840 km at 20 m
    spacing_m: float = 20.0
    through: tuple[float, float] = (-75.5, 120.0)  # every granule passes within ~2 km of this point
    seed: int = 0

    @property
    def key(self) -> str:
        return f"atl06-g{self.n_granules}-{self.family}"

    @property
    def family(self) -> str:
        """Everything but the number of granules: a larger set of a family starts with a smaller one."""
        lat, lon = self.through
        return f"s{self.n_segments}-d{self.spacing_m:g}-lat{lat:g}-lon{lon:g}-seed{self.seed}"


def _cached(folder: Path) -> list[Path] | None:
    """The granules of a complete cache folder, in the order they were generated."""
    done = folder / "done.json"
    if not done.exists():
        return None
    paths = [folder / n for n in json.loads(done.read_text())["files"]]
    return paths if all(p.exists() for p in paths) else None


def granules(spec: InputSpec, cache_dir: Path = CACHE_DIR, log=print) -> list[Path]:
    """The spec's granules, generating them the first time, in generation order.

    ``generate`` writes the same first granules whatever their number, so a cached larger set of
    the same family serves a smaller one."""
    folder = cache_dir / spec.key
    paths = _cached(folder)
    if paths is not None:
        return paths
    for other in sorted(cache_dir.glob(f"atl06-g*-{spec.family}")):
        paths = _cached(other)
        if paths is not None and len(paths) >= spec.n_granules:
            return paths[: spec.n_granules]
    scratch = cache_dir / f".{spec.key}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    log(
        f"generating {spec.n_granules} granules of {spec.n_segments} segments into {folder} (cached for later runs) ..."
    )
    began = time.perf_counter()
    paths = generate(
        scratch,
        n_granules=spec.n_granules,
        n_segments=spec.n_segments,
        spacing_m=spec.spacing_m,
        seed=spec.seed,
        through=spec.through,
    )
    names = [p.name for p in paths]  # generation order
    (scratch / "done.json").write_text(json.dumps({"spec": asdict(spec), "files": names}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    scratch.rename(folder)
    log(f"generated in {time.perf_counter() - began:.1f} s")
    return [folder / n for n in names]

"""What a shard's statistics in one window were computed from, as one hash (pure, no I/O).

Submitting a window again sends only the shards whose hash changed or that never finished: the
hash covers every input of the result, so an equal hash means the chunks would be rewritten with
identical bytes. Inputs: each granule the shard reads with its identity (size and S3 ETag, or a
local file's size and mtime; ``None`` when it could not be found), the pipeline configuration, the
grid, the window, and the code that computes the statistics (:data:`CODE_VERSION`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from functools import cache
from pathlib import Path

from shared.catalog import GranuleRef
from shared.config import PipelineConfig
from shared.grid import GridSignature
from shared.windows import PlacedWindow, TimeWindow

# The packages whose code decides a shard's statistics (reading, aggregating, writing).
RESULT_PACKAGES = ("shared", "worker")


@cache
def code_version() -> str:
    """A digest of the source of :data:`RESULT_PACKAGES` (and the shipped configuration): any change
    to it re-runs every shard, since an equal version must mean equal results."""
    digest = hashlib.sha256()
    for package in RESULT_PACKAGES:
        root = Path(importlib.import_module(package).__file__).parent
        for path in sorted(p for p in root.rglob("*") if p.suffix in {".py", ".yaml"} and "__pycache__" not in p.parts):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


GranuleIdentities = dict[str, tuple[int, str] | None]  # granule id -> (size, etag), None when not found


def content_hash(
    identities: GranuleIdentities,
    config: PipelineConfig,
    grid: GridSignature,
    window: TimeWindow,
    code: str,
) -> str:
    """The hash of one shard's statistics in one window (hex)."""
    inputs = {
        "granules": sorted([gid, list(identity) if identity else None] for gid, identity in identities.items()),
        "config": config.model_dump(mode="json"),
        "grid": grid.model_dump(mode="json"),
        "window": [window.start.isoformat(), window.end.isoformat()],
        "code": code,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def shard_hashes(
    granules: list[GranuleRef], config: PipelineConfig, grid: GridSignature, windows: list[PlacedWindow], code: str
) -> dict[int, str]:
    """Window index -> the content hash of a shard reading ``granules`` (their identities as
    recorded on them at submit) into each of ``windows``."""
    identities = {g.id: (g.size, g.etag) if g.size is not None and g.etag is not None else None for g in granules}
    return {w.index: content_hash(identities, config, grid, w, code) for w in windows}

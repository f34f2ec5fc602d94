"""A store's region given as a list of shard keys: a JSON list of morton words, or a JSON object
with ``shard_keys`` (a catalog, whose shards then fix the region). Polygons and the packaged
regions are read on the operator side (``producer/regions``)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.catalog import UINT64_MAX
from shared.errors import InputError


def read_shard_keys(path: str | Path) -> list[int]:
    """The sorted shard keys a region file lists."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read region {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"region {path} is not JSON: {exc}") from None
    keys = doc.get("shard_keys") if isinstance(doc, dict) else doc
    if not isinstance(keys, list) or not all(isinstance(k, int) and 0 <= k <= UINT64_MAX for k in keys):
        raise InputError(f"region {path}: expected a list of shard keys (unsigned 64-bit integers) or 'shard_keys'")
    return sorted(set(keys))

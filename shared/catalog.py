"""The shard map (catalog): which granules each shard needs, for one grid.

JSON layout::

    {"metadata": {...provenance...},
     "grid_signature": {"type": "healpix", "indexing": "nested", "parent_order": 6, "child_order": 12, ...},
     "shard_keys": [sorted morton words, plain JSON integers],
     "shards": {"<shard key>": [{"id": ..., "s3": ..., "https": ..., "path": ..., "segments": {...}}]},
     "unreadable": [{"id": ..., "location": ..., "reason": ...}]}

``segments`` (optional) gives, per beam, the index range ``[start, stop)`` that holds the
shard's points; a catalog built by reading the granules records it so a worker can skip
reading the rest of each beam. With it, ``chunks`` (optional) gives, per beam and dataset, where
the chunks holding that range are stored in the file and how they are encoded, so a worker
fetches them without reading any HDF5 metadata. A catalog built from footprints (CMR) has neither.
``index`` (optional) is where the granule's index is stored (:mod:`shared.granules.index`): built
once per granule, it gives every shard's ranges and chunks, so neither is inlined per shard.

``unreadable`` (optional; absent in older catalogs) lists the granules the builder found but
could not use, with the reason, so a catalog with gaps never passes for a complete one.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from shared.errors import CatalogError
from shared.grid import DEFAULT_GRID, GridSignature, shard_order

UINT64_MAX = 2**64 - 1


NUMERIC_DTYPES = {"|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"}


class DatasetChunks(BaseModel):
    """The stored chunks of one 1-D dataset that hold a beam's segment range, and their encoding:
    all a reader needs to decode them without the file's metadata (HDF5 filters: shuffle, deflate)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")  # a NaN fill stays NaN

    dtype: str  # numpy dtype string, little-endian
    chunk: int = Field(gt=0)  # elements per chunk
    shuffle: bool
    deflate: bool
    fill: float | int | None = None  # the dataset's HDF5 fill value (elements of unstored chunks)
    stored: list[tuple[int, int, int]]  # (first element, file offset, stored bytes) of each chunk, in order

    @field_validator("dtype")
    @classmethod
    def _numeric(cls, dtype: str) -> str:
        if dtype not in NUMERIC_DTYPES:
            raise ValueError(f"dtype {dtype!r} is not a little-endian numeric type")
        return dtype

    @model_validator(mode="after")
    def _chunk_aligned(self) -> DatasetChunks:
        firsts = [first for first, _, _ in self.stored]
        if (
            firsts != sorted(set(firsts))
            or any(f % self.chunk for f in firsts)
            or any(o < 0 or n <= 0 for _, o, n in self.stored)
        ):
            raise ValueError("stored chunks must be chunk-aligned, in order, at non-negative offsets")
        return self


class GranuleRef(BaseModel):
    """One granule as a shard needs it. At least one location must be given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    s3: str | None = None
    https: str | None = None
    path: str | None = None  # a local file, for offline use
    segments: dict[str, tuple[int, int]] | None = None
    chunks: dict[str, dict[str, DatasetChunks]] | None = None  # beam -> dataset name -> its chunks
    index: str | None = None  # where the granule's index is (shared.granules.index): s3://... or a local path
    # its identity when a run was submitted (size; S3 ETag or a local file's mtime): what content hashes cover
    size: int | None = Field(default=None, ge=0)
    etag: str | None = None

    @model_validator(mode="after")
    def _has_location(self) -> GranuleRef:
        if not (self.s3 or self.https or self.path):
            raise ValueError(f"granule {self.id!r} has no location (s3, https or path)")
        if self.segments:
            for beam, (start, stop) in self.segments.items():
                if not 0 <= start < stop:
                    raise ValueError(f"granule {self.id!r} beam {beam}: bad segment range [{start}, {stop})")
        if self.chunks and not set(self.chunks) <= set(self.segments or {}):
            raise ValueError(f"granule {self.id!r}: chunks recorded for beams without a segment range")
        return self

    @property
    def location(self) -> str:
        """Where the worker reads it: S3 first (byte ranges), else the local path, else HTTPS."""
        return self.s3 or self.path or self.https  # type: ignore[return-value]


def same_location(a: GranuleRef, b: GranuleRef) -> bool:
    """Whether two entries may name the same file: every location that both give is equal."""
    return all(x is None or y is None or x == y for x, y in ((a.s3, b.s3), (a.https, b.https), (a.path, b.path)))


def unique_granules(granules: list[GranuleRef]) -> tuple[list[GranuleRef], list[tuple[GranuleRef, GranuleRef]]]:
    """Each granule id once, at its first entry (a granule listed twice would be read and counted
    twice); and every later entry, paired with the first entry of its id."""
    first: dict[str, GranuleRef] = {}
    kept, repeats = [], []
    for granule in granules:
        if granule.id in first:
            repeats.append((first[granule.id], granule))
        else:
            first[granule.id] = granule
            kept.append(granule)
    return kept, repeats


class UnreadableGranule(BaseModel):
    """A granule the catalog builder skipped, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    location: str
    reason: str


class CatalogTotals(BaseModel):
    model_config = ConfigDict(extra="allow")

    shards: int
    granules: int
    granule_shard_pairs: int


class CatalogMetadata(BaseModel):
    """Provenance. Builders may add fields (query, cycle, region, ...)."""

    model_config = ConfigDict(extra="allow")

    source: str
    short_name: str = "ATL06"
    version: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    region: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    totals: CatalogTotals | None = None


class ShardMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: CatalogMetadata
    grid_signature: GridSignature
    shard_keys: list[int]
    shards: dict[int, list[GranuleRef]]
    unreadable: list[UnreadableGranule] = []
    _repeated: list[str] = PrivateAttr(default_factory=list)  # what validation de-duplicated, for warnings

    @field_validator("shard_keys")
    @classmethod
    def _sorted_unsigned(cls, keys: list[int]) -> list[int]:
        for k in keys:
            if not 0 <= k <= UINT64_MAX:
                raise ValueError(f"shard key {k} is not an unsigned 64-bit morton word")
        if keys != sorted(set(keys)):
            raise ValueError("shard_keys must be sorted and unique")
        return keys

    @model_validator(mode="after")
    def _consistent(self) -> ShardMap:
        if set(self.shards) != set(self.shard_keys):
            raise ValueError("'shards' and 'shard_keys' list different shards")
        for key in self.shard_keys:
            order = shard_order(key)
            if order != self.grid_signature.parent_order:
                raise ValueError(
                    f"shard key {key} is at order {order}, not the parent order {self.grid_signature.parent_order}"
                )
        return self

    @model_validator(mode="after")
    def _each_granule_once(self) -> ShardMap:
        """A hand-merged catalog may list a granule twice in a shard: keep it once. Entries of one
        id at different locations are refused: which copy the merge meant cannot be known, and
        reading either one silently could read a stale or missing file."""
        repeated = []
        for key, granules in self.shards.items():
            kept, repeats = unique_granules(granules)
            for first, again in repeats:
                if not same_location(first, again):
                    raise ValueError(
                        f"shard {key} lists granule {first.id} at two locations "
                        f"({first.location} and {again.location}): keep one"
                    )
                repeated.append(f"shard {key} lists granule {first.id} more than once; it is read and counted once")
            self.shards[key] = kept
        self._repeated = repeated
        return self

    @property
    def repeated(self) -> list[str]:
        """One line per repeated granule entry that validation dropped."""
        return list(self._repeated)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        shards: dict[int, list[GranuleRef]],
        metadata: dict[str, Any],
        grid: GridSignature = DEFAULT_GRID,
        unreadable: list[UnreadableGranule] = (),
    ) -> ShardMap:
        """The one writer of shard maps: sorts, drops empty shards, fills in the totals."""
        shards = {int(k): sorted(v, key=lambda g: g.id) for k, v in shards.items() if v}
        keys = sorted(shards)
        totals = CatalogTotals(
            shards=len(keys),
            granules=len({g.id for v in shards.values() for g in v}),
            granule_shard_pairs=sum(len(v) for v in shards.values()),
        )
        return cls(
            metadata=CatalogMetadata(**{**metadata, "totals": totals}),
            grid_signature=grid,
            shard_keys=keys,
            shards={k: shards[k] for k in keys},
            unreadable=sorted(unreadable, key=lambda u: u.location),
        )

    # -- queries ------------------------------------------------------------------------------
    def shard_index(self, shard_key: int) -> int:
        """Where the shard sits in the store: its position in the sorted shard keys."""
        i = bisect.bisect_left(self.shard_keys, shard_key)
        if i == len(self.shard_keys) or self.shard_keys[i] != shard_key:
            raise CatalogError(f"shard {shard_key} is not in the catalog")
        return i

    def select(self, shard_keys: list[int] | None = None, max_shards: int | None = None) -> list[int]:
        """Shard keys to process: the given ones (each must be in the catalog) or all; optionally the first N."""
        for key in shard_keys or []:
            self.shard_index(key)  # raises for a shard the catalog does not have
        keys = sorted(set(shard_keys)) if shard_keys else self.shard_keys
        return keys[:max_shards] if max_shards else list(keys)

    def require_grid(self, grid: GridSignature) -> None:
        if self.grid_signature != grid:
            raise CatalogError(
                f"catalog grid {self.grid_signature.model_dump()} differs from the run's grid {grid.model_dump()}"
            )

    # -- files --------------------------------------------------------------------------------
    def with_granule_fields(self, fields: dict[str, dict[str, Any]]) -> ShardMap:
        """A copy whose every entry of each granule id in ``fields`` also carries those fields
        (a run's index references, the granules' identities at submit)."""
        doc = json.loads(self.model_dump_json(exclude_none=True))
        for refs in doc["shards"].values():
            for ref in refs:
                ref.update(fields.get(ref["id"], {}))
        return ShardMap.model_validate(doc)

    def save(self, path: str | Path) -> None:
        # compact: recorded chunks make a catalog a few kB per granule and shard
        Path(path).write_text(json.dumps(self.model_dump(mode="json", exclude_none=True), separators=(",", ":")) + "\n")


def warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_catalog(
    path: str | Path, grid: GridSignature | None = DEFAULT_GRID, warn: Callable[[str], None] = warn_on_stderr
) -> ShardMap:
    """Read and validate a shard map; refuse one built for another grid. What validation had to
    correct (a granule listed twice in a shard) goes to ``warn``, one line each."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror or exc}") from None
    try:
        shard_map = ShardMap.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "document"
        raise CatalogError(f"invalid catalog {path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None
    if grid is not None:
        shard_map.require_grid(grid)
    for note in shard_map.repeated:
        warn(f"catalog {path}: {note}")
    return shard_map

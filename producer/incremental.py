"""Incremental runs: submit sends only the shards whose inputs changed or that never finished.

Every granule a run reads is looked at once at submit (S3 HeadObject, or a local stat) and its
identity (size, ETag) recorded on the run's catalog; with the configuration, grid, window and code
version it makes each shard's content hash per window (:mod:`shared.contenthash`). The store's
records (:mod:`shared.written`) say which windows of which shards it holds complete and from what:
a shard whose every window matches is skipped.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.catalog import GranuleRef, ShardMap
from shared.config import PipelineConfig
from shared.contenthash import code_version, shard_hashes
from shared.errors import RunError
from shared.granules import GranuleReadError, ReadContext
from shared.granules.index import granule_identity
from shared.results import FailureKind, plural
from shared.windows import PlacedWindow
from shared.written import WrittenShards

LOOKUPS_IN_FLIGHT = 32  # granule identities looked up at once (one HEAD or stat each)


def with_identities(shard_map: ShardMap, keys: list[int], context: ReadContext) -> ShardMap:
    """The catalog with every granule of the ``keys`` shards carrying its identity now (a granule
    that cannot be found carries none: the worker reports it)."""
    granules = {g.id: g for k in keys for g in shard_map.shards[k]}

    def identity(granule: GranuleRef) -> tuple[int, str] | None:
        try:
            found = granule_identity(granule.location, context)
        except GranuleReadError as exc:
            if exc.kind == FailureKind.MISSING:
                return None
            raise RunError(f"cannot look at granule {granule.id}: {exc.kind}: {exc.reason}") from None
        return found.size, found.etag

    with ThreadPoolExecutor(LOOKUPS_IN_FLIGHT) as pool:
        found = dict(zip(granules, pool.map(identity, granules.values())))
    return shard_map.with_granule_fields(
        {gid: {"size": seen[0], "etag": seen[1]} for gid, seen in found.items() if seen is not None}
    )


@dataclass
class Selection:
    """The shards a run sends, and those it skips, with why."""

    send: list[int]
    skipped: int
    reasons: Counter  # why each sent shard is sent

    def describe(self) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
        line = f"sending {plural(len(self.send), 'shard')}" + (f" ({why})" if why else "")
        if self.skipped:
            line += (
                f"; skipping {self.skipped}: the store holds them complete from the same inputs "
                "(granules' sizes and ETags, configuration, grid, window, code version)"
            )
        return line


def select_changed(
    shard_map: ShardMap,
    keys: list[int],
    config: PipelineConfig,
    windows: list[PlacedWindow],
    written: WrittenShards,
) -> Selection:
    """The shards of ``keys`` to send: those with a window the store does not hold complete from the
    same content hash."""
    recorded = written.hashes()
    code = code_version()
    send, reasons = [], Counter()
    for key in keys:
        hashes = shard_hashes(shard_map.shards[key], config, shard_map.grid_signature, windows, code)
        held = [recorded.get((key, index)) for index in hashes]
        if held == list(hashes.values()):
            continue
        send.append(key)
        if all(h is None for h in held):
            reasons["new to the store (or never finished complete)"] += 1
        elif any(h is None for h in held):
            reasons["with a window new to the store (or never finished complete)"] += 1
        else:
            reasons["changed since written"] += 1
    return Selection(send, len(keys) - len(send), reasons)

"""What happened to a shard: the per-shard result both the local CLI and the queue worker report."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ShardStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"  # every granule read, data written
    EMPTY = "EMPTY"  # every granule read, no point of the shard passed the filters
    PARTIAL = "PARTIAL"  # some granules could not be read: the store holds the rest
    FAILED = "FAILED"  # nothing trustworthy was written

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({ShardStatus.SUCCEEDED, ShardStatus.EMPTY, ShardStatus.PARTIAL, ShardStatus.FAILED})


class FailureKind(StrEnum):
    MISSING = "missing"  # the object or file does not exist
    CORRUPT = "corrupt"  # not HDF5, or a dataset the config needs is unreadable
    DENIED = "denied"  # credentials expired or refused: refresh and redrive
    TRANSIENT = "transient"  # throttling, 5xx, timeouts: worth retrying


class GranuleFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    granule: str
    kind: FailureKind
    reason: str


def plural(n: int, noun: str) -> str:
    """'1 granule', '2 granules'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class ShardResult(BaseModel):
    """The outcome of one shard. A failed granule can never yield a SUCCEEDED shard."""

    shard_key: int
    status: ShardStatus
    granules_read: int = 0
    granules_failed: list[GranuleFailure] = []
    observations: int = 0
    cells_with_data: int = 0
    duration_s: float = 0.0
    bytes_fetched: int = 0
    requests: int = 0
    strategies: dict[str, int] = {}  # granules read per read strategy (shared.granules.choose_strategy)
    error: str | None = None

    @staticmethod
    def status_for(granules_read: int, failures: list[GranuleFailure], observations: int) -> ShardStatus:
        if failures:
            return ShardStatus.PARTIAL if granules_read else ShardStatus.FAILED
        return ShardStatus.SUCCEEDED if observations else ShardStatus.EMPTY

    def summary(self) -> str:
        line = (
            f"shard {self.shard_key} {self.status}: {plural(self.granules_read, 'granule')} read, "
            f"{len(self.granules_failed)} failed, {plural(self.observations, 'observation')}, "
            f"{plural(self.cells_with_data, 'cell')}, {self.duration_s:.2f} s"
        )
        if self.strategies:
            line += " (" + ", ".join(f"{n} by {name}" for name, n in sorted(self.strategies.items())) + ")"
        if self.error:
            line += f" - {self.error}"
        for f in self.granules_failed:
            line += f"\n    {f.granule}: {f.kind}: {f.reason}"
        return line

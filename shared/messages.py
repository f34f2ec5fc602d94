"""The queue messages: the SQS bodies the producer sends and the workers validate.

A shard message asks for one shard's statistics; an index message asks for one granule's index.
Both name the SSM parameter holding the read credentials, never the credentials themselves.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.catalog import UINT64_MAX, GranuleRef
from shared.config import PipelineConfig
from shared.grid import GridSignature
from shared.windows import PlacedWindow


class ShardMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[2] = 2
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    shard_key: int = Field(ge=0, le=UINT64_MAX)
    shard_index: int = Field(ge=0, description="position of the shard in the store's region (its chunk index)")
    windows: tuple[PlacedWindow, ...] = Field(
        min_length=1, description="the time windows the shard writes, each with its index in the store's time axis"
    )
    grid: GridSignature
    config: PipelineConfig
    store: str = Field(min_length=1)
    granules: list[GranuleRef] | None = None
    granules_url: str | None = Field(default=None, description="s3:// JSON list of granules when too large to inline")
    credentials_parameter: str = Field(min_length=1, description="SSM parameter name of the S3 read credentials")
    output_credentials_parameter: str | None = None

    @model_validator(mode="after")
    def _one_granule_source(self) -> ShardMessage:
        if (self.granules is None) == (self.granules_url is None):
            raise ValueError("exactly one of 'granules' and 'granules_url' must be given")
        return self

    @model_validator(mode="after")
    def _windows_in_axis_order(self) -> ShardMessage:
        for a, b in zip(self.windows, self.windows[1:], strict=False):
            if not (a.index < b.index and a.end <= b.start):
                raise ValueError("windows must be in the order of the store's time axis, without overlap")
        return self

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def digest(self) -> str:
        """What the shard record keeps to recognise this message: a copy that differs in any
        field (another shard's chunk index, another store) is not the shard's message."""
        return hashlib.sha256(self.body().encode()).hexdigest()


class IndexMessage(BaseModel):
    """Build (or rebuild) one granule's index. The run records it as an item keyed by
    ``granule_key``, the granule's position in the run's list, as a shard run records shards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    granule_key: int = Field(ge=0)
    granule: GranuleRef
    index: str = Field(min_length=1, description="where the index goes: s3://bucket/key or a local path")
    grid: GridSignature
    config: PipelineConfig
    credentials_parameter: str = Field(min_length=1, description="SSM parameter name of the S3 read credentials")

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def digest(self) -> str:
        return hashlib.sha256(self.body().encode()).hexdigest()


class GranuleList(BaseModel):
    """What ``granules_url`` points at."""

    granules: list[GranuleRef]

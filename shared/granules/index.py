"""Per-granule indexes: what a worker needs to read any shard of a granule, built once, stored
beside the data and referenced from the catalog (``GranuleRef.index``).

A :class:`GranuleIndex` holds, for one granule as it was when indexed (its identity: size and
ETag, see :class:`GranuleIdentity`), per beam the whole chunk table of every dataset a shard
reads, and per shard key the index range ``[start, stop)`` of each beam holding that shard's
points. With it a worker reads no HDF5 metadata and searches no latitude: it fetches the
shard's chunks and decodes them (the ``granule_index`` strategy in
:mod:`shared.granules.strategies`). An index whose granule no longer has the identity it
recorded is stale and never trusted.

Stored as gzip-compressed JSON (a few kB a granule), one object per granule under an index
root (:func:`index_location`): an ``s3://bucket/prefix/`` or a local folder.

Credentials: every function here reads or writes through the :class:`ReadContext` it is given
(its ``s3`` reader: keys and endpoint). On AWS the granules are in NSIDC's read-only bucket and
the indexes in the run's output bucket, so the index functions take a context whose reader has
the default (role) credentials, ``ReadContext(s3=S3RangeReader())``, while :func:`build_index`
and :func:`index_is_current` take the granule's context (the NSIDC credentials). A worker holds
both in one context: :attr:`ReadContext.index_s3` is the reader for indexes
(:meth:`ReadContext.for_indexes`), defaulting to the granule reader.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.catalog import DatasetChunks
from shared.config import PipelineConfig
from shared.errors import GranuleError
from shared.granules.io import ReadContext
from shared.grid import GridSignature

FORMAT = 1  # bump when an older reader could misread a newer index
INDEX_SUFFIX = ".index.json.gz"


class GranuleIndexError(GranuleError):
    """An index that exists but cannot be used as one (not gzip, not JSON, not this format):
    the message names its location."""


class GranuleIdentity(BaseModel):
    """What says a granule is still the file that was indexed.

    ``size`` in bytes; ``etag``: on S3 the object's ETag as S3 returns it (quotes included);
    for a local file, which has none, ``mtime_ns:<st_mtime_ns>`` (rewriting a file changes its
    modification time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(ge=0)
    etag: str


class ShardPart(BaseModel):
    """What one shard reads of an indexed granule: per beam the range holding its points and the
    chunks of every dataset over that range (beams whose datasets are not all chunk records are
    in ``segments`` only). What :class:`~shared.granules.strategies.RecordedChunks` reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: dict[str, tuple[int, int]]
    chunks: dict[str, dict[str, DatasetChunks]]


class GranuleIndex(BaseModel):
    """One granule's index (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    granule_id: str
    identity: GranuleIdentity
    grid: GridSignature
    datasets: tuple[str, ...]  # the dataset names indexed, per beam (coordinates, then values)
    # beam -> dataset name -> every stored chunk of the beam's dataset; a beam with a dataset
    # that is not a chunk record (contiguous, another filter) is absent
    chunks: dict[str, dict[str, DatasetChunks]]
    # shard key -> beam -> [start, stop) holding the shard's points; a shard absent has none
    shards: dict[int, dict[str, tuple[int, int]]]

    def shard(self, shard_key: int) -> ShardPart:
        """The segments of ``shard_key`` and the chunks restricted to them (empty: no point)."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The stored form: gzip-compressed compact JSON (deterministic bytes)."""
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes, location: str) -> GranuleIndex:
        """Parse the stored form; :class:`GranuleIndexError` naming ``location`` if it is not one."""
        raise NotImplementedError


def granule_identity(location: str, context: ReadContext) -> GranuleIdentity:
    """The granule's identity now: S3 HeadObject (size, ETag) through ``context``'s reader, or
    ``os.stat`` of a local file. Raises :class:`~shared.granules.io.GranuleReadError` (MISSING,
    DENIED, TRANSIENT)."""
    raise NotImplementedError


def build_index(
    location: str, granule_id: str, config: PipelineConfig, grid: GridSignature, context: ReadContext
) -> GranuleIndex:
    """Index the granule at ``location`` (``s3://bucket/key`` or a local path), read through
    ``context`` (the granule's credentials): its identity, then its coordinates once (every
    shard's ranges), then every dataset's chunk table over each beam's whole length. The identity
    is taken before and after: a granule replaced meanwhile raises rather than give an index
    that mixes two files. Raises :class:`~shared.granules.io.GranuleReadError`."""
    raise NotImplementedError


def index_location(root: str, granule_id: str) -> str:
    """Where the index of ``granule_id`` is stored under ``root`` (``s3://bucket/prefix/`` or a
    local folder): ``<root>/<granule_id>.index.json.gz``."""
    raise NotImplementedError


def write_index(index: GranuleIndex, location: str, context: ReadContext) -> None:
    """Store ``index`` at ``location``, atomically (one S3 PUT; locally a temporary file in the
    same folder, then ``os.replace``), through ``context``'s reader (on AWS: the default
    credentials, for the run's output bucket, see the module doc)."""
    raise NotImplementedError


def read_index(location: str, context: ReadContext) -> GranuleIndex | None:
    """The index stored at ``location``; None when there is none. One that cannot be parsed
    raises :class:`GranuleIndexError` naming the location. Read through ``context``'s reader."""
    raise NotImplementedError


def index_is_current(index: GranuleIndex, location: str, context: ReadContext) -> bool:
    """Whether the granule at ``location`` still is the file ``index`` describes (one HEAD, or a
    stat), through ``context`` (the granule's credentials). A missing granule is not current."""
    raise NotImplementedError

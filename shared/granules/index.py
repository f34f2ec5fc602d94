"""Per-granule indexes: what a worker needs to read any shard of a granule, built once, stored
beside the data and referenced from the catalog (``GranuleRef.index``).

A :class:`GranuleIndex` holds, for one granule as it was when indexed (its identity: size and
ETag, see :class:`GranuleIdentity`), per beam the whole chunk table of every dataset a shard
reads, per shard key the index range ``[start, stop)`` of each beam holding that shard's
points, and per beam the span of its times. With it a worker reads no HDF5 metadata and
searches no latitude: it fetches the shard's chunks and decodes them (the ``granule_index``
strategy in :mod:`shared.granules.strategies`); where no window of the run divides a beam's
time span (a granule is a few minutes of one cycle), it does not fetch the beam's times either.
An index whose granule no longer has the identity it recorded is stale and never trusted.

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

import gzip
import os
import tempfile
import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.catalog import DatasetChunks, GranuleRef
from shared.config import PipelineConfig
from shared.errors import GranuleError
from shared.granules.io import GranuleReadError, ObjectVersion, ReadContext, split_s3_url
from shared.granules.points import dataset_names, shard_segments
from shared.granules.survey import GranuleSurvey
from shared.grid import GridSignature
from shared.results import FailureKind

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

    def matches(self, version: ObjectVersion) -> bool:
        """Whether a granule found at this version is the one indexed."""
        return (self.size, self.etag) == tuple(version)


class ShardPart(BaseModel):
    """What one shard reads of an indexed granule: per beam the range holding its points and the
    chunks of every dataset over that range (beams whose datasets are not all chunk records are
    in ``segments`` only). What :class:`~shared.granules.strategies.RecordedChunks` reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: dict[str, tuple[int, int]]
    chunks: dict[str, dict[str, DatasetChunks]]
    time_spans: dict[str, tuple[float, float]] = {}  # of the beams in ``segments`` the index has one for

    @property
    def fully_recorded(self) -> bool:
        """Whether every beam with points has its chunks recorded (no HDF5 metadata needed)."""
        return set(self.chunks) == set(self.segments)


def _within(chunks: DatasetChunks, start: int, stop: int) -> DatasetChunks:
    """The chunks holding elements ``[start, stop)`` (a subset of valid records stays valid)."""
    held = [c for c in chunks.stored if c[0] < stop and c[0] + chunks.chunk > start]
    return chunks.model_copy(update={"stored": held})


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
    # beam -> earliest and latest time over the whole beam, for beams whose every time is data:
    # a shard whose windows do not divide that span places the beam's points without their times
    # (an index without it, or an older one, only means those times are read)
    time_spans: dict[str, tuple[float, float]] = {}

    def shard(self, shard_key: int) -> ShardPart:
        """The segments of ``shard_key`` and the chunks restricted to them (empty: no point)."""
        segments = self.shards.get(shard_key, {})
        chunks = {
            beam: {name: _within(c, start, stop) for name, c in self.chunks[beam].items()}
            for beam, (start, stop) in segments.items()
            if beam in self.chunks
        }
        spans = {beam: self.time_spans[beam] for beam in segments if beam in self.time_spans}
        return ShardPart(segments=segments, chunks=chunks, time_spans=spans)

    def serves(self, config: PipelineConfig, grid: GridSignature) -> bool:
        """Whether it was built for this grid and holds every dataset ``config`` reads."""
        return self.grid == grid and set(dataset_names(config)) <= set(self.datasets)

    def to_bytes(self) -> bytes:
        """The stored form: gzip-compressed compact JSON (deterministic bytes: no timestamp)."""
        return gzip.compress(self.model_dump_json().encode(), compresslevel=9, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes, location: str) -> GranuleIndex:
        """Parse the stored form; :class:`GranuleIndexError` naming ``location`` if it is not one."""
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise GranuleIndexError(f"granule index {location} is not gzip-compressed ({exc}): rebuild it") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "document"
            raise GranuleIndexError(
                f"granule index {location} is unreadable: {where}: {first['msg']} "
                f"({exc.error_count()} error(s)): rebuild it"
            ) from None


# =============================================================================================
# Building
# =============================================================================================
def granule_identity(location: str, context: ReadContext) -> GranuleIdentity:
    """The granule's identity now: S3 HeadObject (size, ETag) through ``context``'s reader, or
    ``os.stat`` of a local file. Raises :class:`~shared.granules.io.GranuleReadError` (MISSING,
    DENIED, TRANSIENT)."""
    if location.startswith("s3://"):
        if context.s3 is None:
            raise GranuleReadError(FailureKind.DENIED, f"{location}: no S3 reader configured")
        version = context.s3.head(*split_s3_url(location))
        context.stats.add(0)  # a request, no bytes
        return GranuleIdentity(size=version.size, etag=version.etag)
    try:
        found = os.stat(location)
    except FileNotFoundError:
        raise GranuleReadError(FailureKind.MISSING, f"{location}: no such file") from None
    except OSError as exc:
        raise GranuleReadError(FailureKind.MISSING, f"{location}: {exc.strerror}") from None
    return GranuleIdentity(size=found.st_size, etag=f"mtime_ns:{found.st_mtime_ns}")


def build_index(
    location: str, granule_id: str, config: PipelineConfig, grid: GridSignature, context: ReadContext
) -> GranuleIndex:
    """Index the granule at ``location`` (``s3://bucket/key`` or a local path), read through
    ``context`` (the granule's credentials): its identity, then its coordinates once (every
    shard's ranges), then every dataset's chunk table over each beam's whole length, and each
    beam's time span (its times, read whole). The identity is taken before and after: a granule
    replaced meanwhile raises rather than give an index that mixes two files. Raises
    :class:`~shared.granules.io.GranuleReadError`."""
    before = granule_identity(location, context)
    where = {"s3": location} if location.startswith("s3://") else {"path": location}
    with GranuleSurvey(GranuleRef(id=granule_id, **where), config, context) as survey:
        coordinates = survey.coordinates()
        if not coordinates:  # another layout: an index of "no shard" would hide it
            raise GranuleReadError(
                FailureKind.CORRUPT,
                f"{granule_id}: not a native {config.product} granule: no beam has "
                f"/<beam>/{config.group}/{config.latitude} ({', '.join(config.beams)})",
            )
        shards = shard_segments(coordinates, grid)
        chunks = survey.chunk_records({beam: (0, lat.size) for beam, (lat, _, _) in coordinates.items() if lat.size})
        time_spans = survey.time_spans([beam for beam, (lat, _, _) in coordinates.items() if lat.size])
    if granule_identity(location, context) != before:
        raise GranuleReadError(FailureKind.TRANSIENT, f"{granule_id}: replaced while being indexed: index it again")
    return GranuleIndex(
        granule_id=granule_id,
        identity=before,
        grid=grid,
        datasets=dataset_names(config),
        chunks=chunks,
        shards=shards,
        time_spans=time_spans,
    )


def index_is_current(index: GranuleIndex, location: str, context: ReadContext) -> bool:
    """Whether the granule at ``location`` still is the file ``index`` describes (one HEAD, or a
    stat), through ``context`` (the granule's credentials). A missing granule is not current;
    other errors (DENIED, TRANSIENT) are raised."""
    try:
        return granule_identity(location, context) == index.identity
    except GranuleReadError as exc:
        if exc.kind == FailureKind.MISSING:
            return False
        raise


# =============================================================================================
# The store: one object per granule under a root
# =============================================================================================
def index_location(root: str, granule_id: str) -> str:
    """Where the index of ``granule_id`` is stored under ``root`` (``s3://bucket/prefix/`` or a
    local folder): ``<root>/<granule_id>.index.json.gz``."""
    if not granule_id or "/" in granule_id or granule_id in (".", ".."):
        raise ValueError(f"granule id {granule_id!r} cannot name an index")
    name = granule_id + INDEX_SUFFIX
    if root.startswith("s3://"):
        return f"{root.rstrip('/')}/{name}"
    return os.path.join(root, name)


def _s3(location: str, context: ReadContext):
    if context.s3 is None:
        raise GranuleReadError(FailureKind.DENIED, f"{location}: no S3 reader configured")
    return context.s3, *split_s3_url(location)


def write_index(index: GranuleIndex, location: str, context: ReadContext) -> None:
    """Store ``index`` at ``location``, atomically (one S3 PUT; locally a temporary file in the
    same folder, then ``os.replace``), through ``context``'s reader (on AWS: the default
    credentials, for the run's output bucket, see the module doc)."""
    data = index.to_bytes()
    if location.startswith("s3://"):
        reader, bucket, key = _s3(location, context)
        reader.put_object(bucket, key, data)
        return
    folder = os.path.dirname(os.path.abspath(location))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(location)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, location)
    except BaseException:
        os.unlink(temporary)
        raise


def read_index(location: str, context: ReadContext) -> GranuleIndex | None:
    """The index stored at ``location``; None when there is none. One that cannot be parsed
    raises :class:`GranuleIndexError` naming the location. Read through ``context``'s reader
    (counted in its stats); S3 errors other than a missing object raise
    :class:`~shared.granules.io.GranuleReadError`."""
    if location.startswith("s3://"):
        reader, bucket, key = _s3(location, context)
        data = reader.get_object(bucket, key)
        context.stats.add(len(data or b""))
    else:
        try:
            with open(location, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        context.stats.add(len(data))
    return None if data is None else GranuleIndex.from_bytes(data, location)

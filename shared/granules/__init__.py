"""The read layer both sides use: a shard's points from HDF5 granules on S3 or local disk.

Modules, each with one job:

* :mod:`~shared.granules.io` - byte ranges (S3 through obstore, local files), exact reads, the
  error kinds (MISSING / DENIED / CORRUPT / TRANSIENT), the counters.
* :mod:`~shared.granules.chunks` - where a dataset's elements are stored and decoding them (pure).
* :mod:`~shared.granules.points` - which points are kept, coordinate validity, child cells (pure).
* :mod:`~shared.granules.search` - the latitude band search (pure).
* :mod:`~shared.granules.h5coro_adapter` - every use of h5coro: metadata walk, storage, slices.
* :mod:`~shared.granules.strategies` - the read strategies and :func:`choose_strategy`.
* :mod:`~shared.granules.survey` - what the offline catalog reads of a granule.
* :mod:`~shared.granules.index` - per-granule indexes: built once, stored beside the data, read
  by every shard (the ``granule_index`` strategy).
"""

from shared.granules.index import (
    GranuleIdentity,
    GranuleIndex,
    GranuleIndexError,
    build_index,
    index_is_current,
    index_location,
    read_index,
    write_index,
)
from shared.granules.io import GranuleReadError, ReadContext, ReadStats, S3RangeReader, split_s3_url
from shared.granules.points import Points, ShardGeometry
from shared.granules.strategies import STRATEGIES, ReadStrategy, choose_strategy, read_points
from shared.granules.survey import GranuleSurvey

__all__ = [
    "GranuleIdentity",
    "GranuleIndex",
    "GranuleIndexError",
    "GranuleReadError",
    "GranuleSurvey",
    "Points",
    "ReadContext",
    "ReadStats",
    "ReadStrategy",
    "S3RangeReader",
    "STRATEGIES",
    "ShardGeometry",
    "build_index",
    "choose_strategy",
    "index_is_current",
    "index_location",
    "read_index",
    "read_points",
    "split_s3_url",
    "write_index",
]

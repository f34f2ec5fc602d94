"""The least a reader can fetch for a shard: the compressed chunks that hold the shard's points.

Read from the local copies with h5py (never counted as S3 traffic): per granule and beam, the
points inside the shard (by the same cell test as the worker), the chunks of each dataset the
worker needs (latitude, longitude, height, sigma, quality flag) that hold at least one of them,
and those chunks' compressed sizes from the HDF5 chunk index (``get_chunk_info``). A reader
must fetch each of these chunks whole to decode it, so no strategy can fetch fewer bytes, and
each maximal run of adjacent chunks in the file is at least one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from shared.config import PipelineConfig
from shared.granules.points import ShardGeometry, child_index


@dataclass
class Minimum:
    bytes: int = 0
    chunks: int = 0
    runs: int = 0  # maximal runs of chunks adjacent in the file: a lower bound on requests
    points: int = 0  # points inside the shard, before the quality filter

    def add(self, other: Minimum) -> None:
        self.bytes += other.bytes
        self.chunks += other.chunks
        self.runs += other.runs
        self.points += other.points


def _chunk_table(dataset: h5py.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first element, byte offset, compressed size) of every stored chunk, in element order."""
    infos = [dataset.id.get_chunk_info(i) for i in range(dataset.id.get_num_chunks())]
    infos.sort(key=lambda c: c.chunk_offset[0])
    return (
        np.array([c.chunk_offset[0] for c in infos], np.int64),
        np.array([c.byte_offset for c in infos], np.int64),
        np.array([c.size for c in infos], np.int64),
    )


def granule_minimum(path: str | Path, shard: ShardGeometry, config: PipelineConfig) -> Minimum:
    names = [config.latitude, config.longitude, config.value, config.sigma] + (
        [config.quality.dataset] if config.quality else []
    )
    total = Minimum()
    ranges: list[tuple[int, int]] = []
    with h5py.File(path, "r") as f:
        for beam in config.beams:
            group = f.get(f"{beam}/{config.group}")
            if group is None or config.latitude not in group:
                continue
            cells = child_index(group[config.latitude][:], group[config.longitude][:], shard.nested, shard.grid)
            inside = np.flatnonzero(cells >= 0)
            if inside.size == 0:
                continue
            total.points += int(inside.size)
            for name in names:
                dataset = group[name]
                chunk_len = dataset.chunks[0]
                first, offset, size = _chunk_table(dataset)
                needed = np.unique(inside // chunk_len) * chunk_len
                pick = np.isin(first, needed)
                total.bytes += int(size[pick].sum())
                total.chunks += int(pick.sum())
                ranges += list(zip(offset[pick].tolist(), (offset[pick] + size[pick]).tolist()))
    ranges.sort()
    end = -1
    for start, stop in ranges:
        if start != end:
            total.runs += 1
        end = stop
    return total


def shard_minimum(paths: list[Path], shard: ShardGeometry, config: PipelineConfig) -> Minimum:
    total = Minimum()
    for path in paths:
        total.add(granule_minimum(path, shard, config))
    return total

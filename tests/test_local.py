"""``python -m worker --catalog``: each shard's process gets its own granules, never the whole catalog."""

from __future__ import annotations

import pickle
from concurrent.futures import Future

import numpy as np

from shared.catalog import GranuleRef, ShardMap
from shared.config import load_config
from shared.grid import shard_keys_of
from shared.windows import PlacedWindow, cycle_window
from worker import local


class RecordingPool:
    """Stands in for the process pool: what would be pickled into each process is measured."""

    sent: list[int] = []

    def __init__(self, max_workers: int):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        RecordingPool.sent.append(len(pickle.dumps((fn, args))))
        done = Future()
        done.set_result(local.ShardResult(shard_key=args[0].shard_key, status="EMPTY"))
        return done


def test_a_job_carries_its_shard_not_the_catalog(monkeypatch):
    keys = np.unique(shard_keys_of(np.linspace(-85, -62, 400), np.linspace(-180, 179, 400)))
    granules = [GranuleRef(id=f"ATL06_20200101000000_{i:04d}0110_006_01.h5", s3=f"s3://b/{i}.h5") for i in range(60)]
    shard_map = ShardMap.build({int(k): [g.model_copy() for g in granules] for k in keys}, {"source": "test"})
    assert len(shard_map.shard_keys) > 100
    monkeypatch.setattr(local, "ProcessPoolExecutor", RecordingPool)
    RecordingPool.sent = []
    windows = [PlacedWindow(**cycle_window(6).model_dump(), index=0)]
    results = list(
        local.run_local(
            shard_map, shard_map.shard_keys[:4], load_config(), "unused.zarr", shard_map.shard_keys, windows, workers=2
        )
    )
    assert len(results) == 4
    catalog = len(pickle.dumps(shard_map))
    assert max(RecordingPool.sent) < catalog / 50, (max(RecordingPool.sent), catalog)

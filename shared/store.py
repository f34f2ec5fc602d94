"""The output: one Zarr v3 store per run, readable by ``xdggs.decode(xarray.open_zarr(store))``.

Layout: a 1-D ``cells`` dimension of ``len(shard_keys) * 4096`` child cells, shard ``i`` (its
position in the catalog's sorted shard keys) owning chunk ``i`` of every array. Workers never
coordinate, and writing a shard again rewrites exactly its own chunks with identical bytes.
The template (metadata and the ``cell_ids`` coordinate) is created once, before any shard, by the
producer (``producer/submit.py``, or ``python -m worker --catalog`` locally); workers write shards.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import zarr
import zarr.errors
from zarr.storage import LocalStore, ObjectStore

from shared.config import PipelineConfig
from shared.credentials import obstore_s3_config
from shared.errors import StoreError, StoreRefusedError
from shared.granules.io import classify_error, error_code
from shared.grid import GridSignature, child_cell_ids
from shared.reducers import REDUCERS
from shared.results import FailureKind

DIMENSION = "cells"


def cell_id_attributes(grid: GridSignature) -> dict[str, Any]:
    """What xdggs needs to decode the grid with no extra arguments."""
    return {
        "grid_name": "healpix",
        "level": grid.child_order,
        "indexing_scheme": grid.indexing,
        "ellipsoid": grid.ellipsoid,
    }


def open_store(url: str, credentials: dict[str, str] | None = None, read_only: bool = False) -> Any:
    """A zarr store for a local path or ``s3://bucket/prefix``.

    For S3 the endpoint comes from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (an emulator), the
    credentials from ``credentials`` (an external target) or boto3's default chain (the role).
    """
    if not url.startswith("s3://"):
        return LocalStore(url, read_only=read_only)
    from obstore.store import S3Store

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    config = obstore_s3_config(credentials)
    if config is None:
        raise StoreError(f"no AWS credentials to write {url}")
    s3 = S3Store(bucket, prefix=prefix.strip("/") or None, config=config, client_options={"allow_http": True})
    return ObjectStore(s3, read_only=read_only)


def create_template(
    url: str,
    shard_keys: list[int],
    config: PipelineConfig,
    grid: GridSignature,
    attributes: dict[str, Any] | None = None,
    credentials: dict[str, str] | None = None,
) -> None:
    """Create the store's arrays and the ``cell_ids`` coordinate. Safe to repeat for the same run."""
    n = grid.children_per_shard
    size = len(shard_keys) * n
    store = open_store(url, credentials)
    try:
        existing = zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        existing = None
    except Exception as exc:
        raise StoreError(f"cannot open store {url}: {exc}") from None
    if existing is not None:
        _check_compatible(url, existing, size, config)
        return
    try:
        root = zarr.open_group(
            store,
            mode="w-",
            zarr_format=3,
            attributes={**(attributes or {}), "grid": grid.model_dump(), "pipeline": config.name},
        )
        cell_ids = (
            np.concatenate([child_cell_ids(k, grid) for k in shard_keys]) if shard_keys else np.empty(0, np.uint64)
        )
        root.create_array(
            "cell_ids", data=cell_ids, chunks=(n,), dimension_names=[DIMENSION], attributes=cell_id_attributes(grid)
        )
        for name, stat in config.statistics.items():
            reducer = REDUCERS[stat.reducer]
            root.create_array(
                name,
                shape=(size,),
                dtype=reducer.dtype,
                chunks=(n,),
                fill_value=reducer.fill_value,
                dimension_names=[DIMENSION],
                attributes={
                    "reducer": stat.reducer,
                    **({"q": stat.q} if stat.q is not None else {}),
                    "coordinates": "cell_ids",
                },
            )
        with warnings.catch_warnings():  # consolidated metadata lets xarray open the store in one read
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(store)
    except OSError as exc:
        raise StoreError(f"cannot create store {url}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise StoreError(f"cannot create store {url}: {exc}") from None


def _check_compatible(url: str, root: Any, size: int, config: PipelineConfig) -> None:
    arrays = {name: arr for name, arr in root.arrays()}
    missing = [n for n in ["cell_ids", *config.statistics] if n not in arrays]
    if missing:
        raise StoreError(f"store {url} exists but lacks {', '.join(missing)}: use a new store")
    if arrays["cell_ids"].shape != (size,):
        raise StoreError(
            f"store {url} exists with {arrays['cell_ids'].shape[0]} cells, this run needs {size}: use a new store"
        )


def write_shard(
    url: str, shard_index: int, stats: dict[str, np.ndarray], credentials: dict[str, str] | None = None
) -> None:
    """Write one shard's chunk of every statistic. Chunks equal to the fill value are removed, not written."""
    try:
        root = zarr.open_group(open_store(url, credentials), mode="r+")
        for name, values in stats.items():
            array = root[name]
            n = array.chunks[0]
            array[shard_index * n : (shard_index + 1) * n] = values
    except KeyError as exc:
        raise StoreError(f"store {url} has no array {exc}: was its template created for this configuration?") from None
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise StoreError(f"store {url} does not exist: create its template first") from None
    except OSError as exc:
        raise StoreError(f"cannot write store {url}: {exc.strerror or exc}") from None
    except Exception as exc:  # obstore's errors quote the S3 error body, which can name the keys
        raise _store_error(url, exc) from None


def _store_error(url: str, exc: Exception) -> StoreError:
    """A store error that names the S3 error code and nothing else of the response."""
    code = error_code(str(exc))
    if classify_error(code, exc) == FailureKind.DENIED:
        return StoreRefusedError(
            f"the output store refused the credentials writing {url} ({code or type(exc).__name__})"
        )
    return StoreError(f"cannot write store {url}: {code or type(exc).__name__}")

"""The output: one Zarr v3 store per region, with a time axis and one group per HEALPix level.

Layout (README, "The output store"): the root group holds no arrays, only attributes (``grid``,
``pipeline``, ``windows``, and ``multiscales`` naming the levels); each level is a group named by
its order (``"12"`` .. ``"6"``) that ``xdggs.decode(xarray.open_zarr(store, group=...))`` opens
as it is: ``cell_ids`` (the level's nested ids), the time coordinates ``time`` (window start),
``time_end`` and, for cycle windows, ``cycle``, and every statistic as ``(time, cells)``.

The cells are the region's: shard ``i`` is the ``i``-th of the region's sorted shard keys, and
owns chunk ``(w, i)`` of every statistic of every level for each window ``w`` (at order ``o`` a
shard has ``4**(o - parent order)`` cells, one chunk). Workers never coordinate, the coarse
levels need no finishing step, and writing a shard's windows again rewrites exactly their
chunks with identical bytes. The producer (``producer/submit.py``, or ``python -m worker
--catalog`` locally) creates the store or adds later windows at the end of its time axis, once,
before any shard is written: the windows already there, and their chunks, are never touched.
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
import zarr.errors
from zarr.storage import LocalStore, ObjectStore

from shared.catalog import ShardMap, warn_on_stderr
from shared.config import PipelineConfig
from shared.credentials import obstore_s3_config
from shared.errors import InputError, StoreError, StoreRefusedError
from shared.granules.io import classify_error, error_code
from shared.grid import GridSignature, child_cell_ids
from shared.reducers import REDUCERS
from shared.results import FailureKind
from shared.windows import (
    PlacedWindow,
    TimeWindow,
    WindowSpec,
    axis_arrays,
    axis_from_arrays,
    extend_axis,
    granule_windows,
    place,
)

CELLS, TIME = "cells", "time"
TIME_UNITS = "seconds since 1970-01-01T00:00:00Z"
TIME_COORDINATES = ("time", "time_end", "cycle")
CELL_IDS_CHUNK = 4096  # cell_ids are written once, by the template: no shard owns them
# The zarr "multiscales" convention (github.com/zarr-conventions/multiscales, v0.1.0)
MULTISCALES_CONVENTION = {
    "uuid": "d35379db-88df-4056-af3a-620245f8e347",
    "name": "multiscales",
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v0.1.0/schema.json",
    "spec_url": "https://github.com/zarr-conventions/multiscales/blob/v0.1.0/README.md",
    "description": "Multiscale layout of zarr datasets",
}


def level_group(order: int) -> str:
    """The group holding one level: its order, as text."""
    return str(order)


def shard_position(region_keys: list[int], shard_key: int) -> int:
    """Where a shard sits in a store: its position among the region's sorted shard keys, and
    nothing else, so that every run over the region lines up."""
    i = bisect.bisect_left(region_keys, shard_key)
    if i == len(region_keys) or region_keys[i] != shard_key:
        raise StoreError(f"shard {shard_key} is not in the store's region")
    return i


def cell_id_attributes(grid: GridSignature, order: int | None = None) -> dict[str, Any]:
    """What xdggs needs to decode the grid with no extra arguments."""
    return {
        "grid_name": "healpix",
        "level": grid.child_order if order is None else order,
        "indexing_scheme": grid.indexing,
        "ellipsoid": grid.ellipsoid,
    }


def multiscales(grid: GridSignature) -> dict[str, Any]:
    """The levels, finest first, as the multiscales convention lists them. Every level is computed
    from the points (no level is derived from another), so none has ``derived_from``; ``scale``
    is a cell's edge relative to the finest level's."""
    return {
        "layout": [
            {
                "asset": level_group(order),
                "transform": {"scale": [float(2 ** (grid.child_order - order))]},
                "healpix_level": order,
            }
            for order in grid.levels
        ],
        "resampling_method": "none: every level's statistics are computed from the points",
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


@dataclass(frozen=True)
class StorePlan:
    """Where a run's shards and windows sit in its store."""

    region: list[int]  # the store's sorted shard keys
    keys: list[int]  # the run's shards, those of the region
    outside: list[int]  # the run's shards outside the region: not processed
    windows: list[PlacedWindow]  # the windows the run writes


def prepare_store(
    url: str,
    shard_map: ShardMap,
    keys: list[int],
    config: PipelineConfig,
    spec: WindowSpec,
    region: list[int] | None = None,
    credentials: dict[str, str] | None = None,
) -> StorePlan:
    """Create the store, or add the run's later windows to it, before any shard is written.

    The region is ``region`` if given, else the existing store's, else the catalog's shard keys;
    the windows are those of the catalog's granules in the region
    (:func:`shared.windows.granule_windows`), whichever shards the run selects."""
    grid = shard_map.grid_signature
    if region is None:
        region = region_of(url, grid, credentials)
    region = sorted(int(k) for k in (shard_map.shard_keys if region is None else region))
    inside = set(region)
    # the catalog's windows, whichever of its shards this run selects: a catalog covers its windows
    ids = sorted({g.id for k in shard_map.shard_keys if k in inside for g in shard_map.shards[k]})
    try:
        wanted, untold = granule_windows(spec, ids)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if untold:
        warn_on_stderr(
            f"{len(untold)} granules' names do not tell their time (first: {untold[0]}): their points count in "
            "the windows the other granules start in"
        )
    windows = create_or_extend(url, region, config, grid, spec, wanted, credentials)
    return StorePlan(region, [k for k in keys if k in inside], [k for k in keys if k not in inside], windows)


def create_or_extend(
    url: str,
    region_keys: list[int],
    config: PipelineConfig,
    grid: GridSignature,
    spec: WindowSpec,
    wanted: list[TimeWindow],
    credentials: dict[str, str] | None = None,
) -> list[PlacedWindow]:
    """Create the store for ``region_keys`` with a time axis holding ``wanted``, or add the
    windows it lacks at the end of an existing store's axis; return ``wanted`` with their
    positions in the axis. Safe to repeat. A store of another grid, configuration, region or
    window kind, or a window that would have to go before or between its windows, is refused."""
    store = open_store(url, credentials)
    try:
        existing = zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        existing = None
    except Exception as exc:
        raise StoreError(f"cannot open store {url}: {exc}") from None
    try:
        if existing is None:
            axis = extend_axis(spec, [], wanted)
            _create(store, region_keys, config, grid, spec, axis)
        else:
            old = _check_compatible(url, existing, region_keys, config, grid, spec)
            try:
                axis = extend_axis(spec, old, wanted)
            except ValueError as exc:
                raise StoreError(f"store {url}: {exc}") from None
            if len(axis) > len(old):
                _extend(store, grid, axis, len(old))
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot create store {url}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise StoreError(f"cannot create store {url}: {exc}") from None
    return place(axis, wanted)


def _create(
    store: Any, region_keys: list[int], config: PipelineConfig, grid: GridSignature, spec: WindowSpec, axis: list
) -> None:
    """Every level's arrays and coordinates; only the template's own chunks are written."""
    root = zarr.open_group(
        store,
        mode="w-",
        zarr_format=3,
        attributes={
            "grid": grid.model_dump(),
            "pipeline": config.name,
            "windows": spec.model_dump(mode="json"),
            "zarr_conventions": [MULTISCALES_CONVENTION],
            "multiscales": multiscales(grid),
        },
    )
    children = np.concatenate([child_cell_ids(k, grid) for k in region_keys]) if region_keys else np.empty(0, np.uint64)
    times = axis_arrays(axis)
    for order in grid.levels:
        n = grid.cells_per_shard(order)
        group = root.create_group(level_group(order), attributes={"healpix_level": order})
        # a shard's cells at this order, in the region's shard order: every 4**k-th child, shifted
        cell_ids = children[:: 4 ** (grid.child_order - order)] >> np.uint64(2 * (grid.child_order - order))
        group.create_array(
            "cell_ids",
            data=cell_ids,
            chunks=(min(CELL_IDS_CHUNK, max(cell_ids.size, 1)),),
            dimension_names=[CELLS],
            attributes=cell_id_attributes(grid, order),
        )
        for name, values in times.items():
            array = group.create_array(
                name,
                shape=(len(axis),),
                dtype=values.dtype,
                chunks=(1,),  # one chunk per window: adding a window writes only its own
                fill_value=0,
                dimension_names=[TIME],
                attributes={"units": TIME_UNITS, "calendar": "proleptic_gregorian"} if name != "cycle" else {},
            )
            array[:] = values
        coordinates = " ".join(["cell_ids", *(c for c in TIME_COORDINATES[1:] if c in times)])
        for name, stat in config.statistics.items():
            reducer = REDUCERS[stat.reducer]
            group.create_array(
                name,
                shape=(len(axis), cell_ids.size),
                dtype=reducer.dtype,
                chunks=(1, n),
                fill_value=reducer.fill_value,
                dimension_names=[TIME, CELLS],
                attributes={
                    "reducer": stat.reducer,
                    **({"q": stat.q} if stat.q is not None else {}),
                    "coordinates": coordinates,
                },
            )
    _consolidate(store, grid)


def _extend(store: Any, grid: GridSignature, axis: list, old: int) -> None:
    """Resize every level along time and write the new windows' coordinates; nothing else."""
    times = axis_arrays(axis)
    root = zarr.open_group(store, mode="r+", use_consolidated=False)
    for order in grid.levels:
        group = root[level_group(order)]
        for name, array in group.arrays():
            if array.metadata.dimension_names and array.metadata.dimension_names[0] == TIME:
                array.resize((len(axis), *array.shape[1:]))
                if name in times:
                    array[old:] = times[name][old:]
    _consolidate(store, grid)


def _consolidate(store: Any, grid: GridSignature) -> None:
    """Consolidated metadata in each level and at the root: xarray opens a level in one read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        for order in grid.levels:
            zarr.consolidate_metadata(store, path=level_group(order))
        zarr.consolidate_metadata(store)


def read_axis(root: Any, grid: GridSignature) -> list[TimeWindow]:
    """The store's time axis, from its finest level's time coordinates."""
    group = root[level_group(grid.child_order)]
    cycle = group["cycle"][:] if "cycle" in group else None
    return axis_from_arrays(group["time"][:], group["time_end"][:], cycle)


def _check_compatible(
    url: str, root: Any, region_keys: list[int], config: PipelineConfig, grid: GridSignature, spec: WindowSpec
) -> list[TimeWindow]:
    """The existing store's axis, once its grid, statistics, window kind and region are this run's."""
    attrs = dict(root.attrs)
    if attrs.get("grid") != grid.model_dump():
        raise StoreError(f"store {url} exists with grid {attrs.get('grid')}, this run's is {grid.model_dump()}")
    if attrs.get("windows") != spec.model_dump(mode="json"):
        raise StoreError(
            f"store {url} exists with windows {attrs.get('windows')}, this run's are {spec.model_dump(mode='json')}: "
            "use a new store"
        )
    groups = {name for name, _ in root.groups()}
    missing = [level_group(o) for o in grid.levels if level_group(o) not in groups]
    if missing:
        raise StoreError(f"store {url} exists but lacks the levels {', '.join(missing)}: use a new store")
    level = root[level_group(grid.parent_order)]
    arrays = {name for name, _ in level.arrays()}
    lacking = [n for n in ["cell_ids", *config.statistics] if n not in arrays]
    if lacking:
        raise StoreError(f"store {url} exists but lacks {', '.join(lacking)}: use a new store")
    shards = level["cell_ids"][:]
    wanted = np.array([child_cell_ids(k, grid)[0] for k in region_keys], dtype=np.uint64) >> np.uint64(
        2 * (grid.child_order - grid.parent_order)
    )
    if shards.shape != wanted.shape or not np.array_equal(shards, wanted):
        raise StoreError(
            f"store {url} exists for another region ({shards.size} shards; this run's has {wanted.size}): "
            "use a new store, or give the store's region"
        )
    return read_axis(root, grid)


def region_of(url: str, grid: GridSignature, credentials: dict[str, str] | None = None) -> list[int] | None:
    """The sorted shard keys of an existing store's region; None when there is no store yet."""
    from shared.grid import shard_keys_from_nested

    try:
        root = zarr.open_group(open_store(url, credentials, read_only=True), mode="r")
        shards = root[level_group(grid.parent_order)]["cell_ids"][:]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None
    except Exception as exc:
        raise StoreError(f"cannot open store {url}: {exc}") from None
    return [int(k) for k in shard_keys_from_nested(shards, grid.parent_order)] if shards.size else []


def write_shard(
    url: str,
    shard_index: int,
    window_indices: list[int],
    stats_by_level: dict[int, dict[str, np.ndarray]],
    credentials: dict[str, str] | None = None,
) -> None:
    """Write one shard's chunks of every statistic, level and window: ``stats_by_level[order][name]``
    has one row per entry of ``window_indices`` (positions in the store's time axis). Chunks equal
    to the fill value are removed, not written."""
    windows = np.asarray(window_indices, dtype=np.int64)
    try:
        root = zarr.open_group(open_store(url, credentials), mode="r+")
        for order, stats in stats_by_level.items():
            group = root[level_group(order)]
            for name, values in stats.items():
                array = group[name]
                n = array.chunks[1]
                if windows.size and windows.max() >= array.shape[0]:
                    raise StoreError(
                        f"store {url} has {array.shape[0]} windows, the shard writes window {windows.max()}: "
                        "was its time axis extended for this run?"
                    )
                array.oindex[windows, shard_index * n : (shard_index + 1) * n] = values
    except StoreError:
        raise
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

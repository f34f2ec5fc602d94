"""Granule indexes: build them as queue work (``python -m producer index``), use them at submit.

How a run orders the two stages: they are independent, and neither waits for the other.

* ``python -m producer index --catalog C`` looks at every granule of the catalog once: an index
  that exists and still matches its granule (size, ETag) is kept; a missing or stale one is built
  by the index queue's workers, one message per granule, recorded in the run table as a run of
  kind ``indexes`` (``status`` shows it like a shard run).
* ``python -m producer --catalog C`` (submit) lists the indexes present at that moment and points
  each granule of the catalog at its index. Granules without one are read by the latitude search,
  so a shard run never waits for the slowest granule's index; a worker checks each index against
  its granule before trusting it and falls back to the search when the granule changed.

For the fast path on every granule, index first, watch the index run finish, then submit.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import Enum

import boto3

from shared.catalog import GranuleRef, ShardMap, load_catalog
from shared.config import PipelineConfig, load_config
from shared.credentials import EXPIRY_MARGIN_MINUTES, parameter_name, put_credentials
from shared.deployed import load_stack
from shared.errors import CredentialsError, InputError, RunError
from shared.granules import GranuleReadError, ReadContext, S3RangeReader, split_s3_url
from shared.granules.index import index_is_current, index_location, read_index
from shared.granules.points import dataset_names
from shared.grid import GridSignature
from shared.messages import GranuleList, IndexMessage
from shared.results import ShardStatus, plural
from shared.runstatus import RunKind, RunRecord, RunStatusStore, ShardRecord
from shared.settings import RUN_FILES_PREFIX, StackOutputs

# Granules looked at in parallel (a HEAD of the granule and a GET of its index each).
LOOKUPS_IN_FLIGHT = 32


class IndexState(str, Enum):
    CURRENT = "current"
    MISSING = "missing"
    STALE = "stale"  # its granule changed (size or ETag), or another grid or configuration


def catalog_granules(shard_map: ShardMap) -> list[GranuleRef]:
    """Each granule of the catalog once, by id, without shard-specific fields."""
    seen: dict[str, GranuleRef] = {}
    for key in shard_map.shard_keys:
        for ref in shard_map.shards[key]:
            if ref.id not in seen:
                seen[ref.id] = GranuleRef(id=ref.id, s3=ref.s3, https=ref.https, path=ref.path)
    return sorted(seen.values(), key=lambda g: g.id)


def index_state(
    granule: GranuleRef, root: str, grid: GridSignature, config: PipelineConfig, context: ReadContext
) -> IndexState:
    """``context`` reads the granule (its credentials) and, through ``index_s3``, the index root."""
    index = read_index(index_location(root, granule.id), context.for_indexes())
    if index is None:
        return IndexState.MISSING
    if index.grid != grid or index.datasets != tuple(dataset_names(config)):
        return IndexState.STALE
    return IndexState.CURRENT if index_is_current(index, granule.location, context) else IndexState.STALE


def new_index_run_id(granules: list[GranuleRef]) -> str:
    digest = hashlib.sha256("\n".join(g.id for g in granules).encode()).hexdigest()
    return f"index-{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest[:6]}"


def index(args) -> int:
    """``python -m producer index``: send one message per granule whose index is missing or stale."""
    from producer.submit import nasa_credentials, send_all

    shard_map = load_catalog(args.catalog)
    config = load_config(args.config)
    stack = load_stack(args.stack)
    granules = catalog_granules(shard_map)
    if not granules:
        raise InputError(f"catalog {args.catalog} lists no granules")
    read_creds = nasa_credentials(args.credentials_file)
    if read_creds.expired():
        raise CredentialsError(
            f"the S3 read credentials expire at {read_creds.expiration}, within {EXPIRY_MARGIN_MINUTES} minutes "
            "(or have expired): indexing needs fresher ones"
        )
    # the granules through the run's read credentials, the index root through the operator's own
    context = ReadContext(s3=S3RangeReader(read_creds.for_client()), index_s3=S3RangeReader())
    root = stack.index_root

    def state(granule: GranuleRef) -> IndexState:
        try:
            return index_state(granule, root, shard_map.grid_signature, config, context)
        except GranuleReadError as exc:
            raise InputError(f"granule {granule.id}: {exc.kind}: {exc.reason}") from None

    with ThreadPoolExecutor(LOOKUPS_IN_FLIGHT) as pool:
        states = dict(zip((g.id for g in granules), pool.map(state, granules)))
    tally = {s: sum(v is s for v in states.values()) for s in IndexState}
    print(
        f"{plural(len(granules), 'granule')} in {args.catalog}: {tally[IndexState.CURRENT]} indexes current, "
        f"{tally[IndexState.MISSING]} missing, {tally[IndexState.STALE]} stale (index root {root})"
    )
    to_build = [g for g in granules if states[g.id] is not IndexState.CURRENT]
    if not to_build:
        print("nothing to build: submit the catalog, every granule will be read through its index")
        return 0

    run_id = args.run_id or new_index_run_id(to_build)
    runs = RunStatusStore(stack.run_table)
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    credentials_parameter = parameter_name(stack.parameter_prefix, run_id, "read")
    put_credentials(boto3.client("ssm"), credentials_parameter, read_creds)
    listing = GranuleList(granules=to_build).model_dump_json(exclude_none=True)
    run = runs.create_run(
        RunRecord(
            run_id=run_id,
            kind=RunKind.INDEXES,
            catalog=str(args.catalog),
            catalog_hash=hashlib.sha256(listing.encode()).hexdigest(),
            config=config.model_dump(mode="json"),
            store=root,
            credentials_parameter=credentials_parameter,
            shards=len(to_build),
            granules=len(to_build),
            catalog_url=store_granule_list(s3, stack, run_id, listing),
        )
    )
    messages = [
        IndexMessage(
            run_id=run.run_id,
            granule_key=key,
            granule=granule,
            index=index_location(root, granule.id),
            grid=shard_map.grid_signature,
            config=config,
            credentials_parameter=run.credentials_parameter,
        )
        for key, granule in enumerate(to_build)
    ]
    recorded = runs.shard_statuses(run_id)
    runs.put_shards(
        [
            ShardRecord(
                run_id=run_id,
                shard_key=m.granule_key,
                shard_index=m.granule_key,
                status=ShardStatus.PENDING,
                granules=1,
                message_digest=m.digest(),
            )
            for m in messages
            if m.granule_key not in recorded
        ]
    )
    to_send = [m for m in messages if recorded.get(m.granule_key, ShardStatus.PENDING) == ShardStatus.PENDING]
    unsent = send_all(sqs, stack.index_queue_url, to_send)
    print(f"submitted index run {run_id}: {len(to_send) - len(unsent)} messages sent")
    if unsent:
        raise RunError(
            f"{len(unsent)} index messages could not be sent; they stay PENDING: index again with --run-id {run_id}"
        )
    print(f"watch it: python -m producer status {run_id} (locally: python -m worker --local --queue indexes)")
    return 0


def store_granule_list(s3, stack: StackOutputs, run_id: str, listing: str) -> str:
    key = f"{RUN_FILES_PREFIX}{run_id}/granules.json"
    s3.put_object(Bucket=stack.output_bucket, Key=key, Body=listing.encode())
    return f"s3://{stack.output_bucket}/{key}"


def index_keys(root: str) -> set[str]:
    """The keys of every object under ``root`` (an s3:// prefix), from one listing."""
    bucket, prefix = split_s3_url(root)
    found = set()
    for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found |= {o["Key"] for o in page.get("Contents", [])}
    return found


def with_indexes(shard_map: ShardMap, root: str) -> tuple[ShardMap, int, int]:
    """The catalog with each granule pointed at its index where one exists under ``root``; and
    how many granules have one, of how many."""
    present = index_keys(root)
    located = {g.id: index_location(root, g.id) for g in catalog_granules(shard_map)}
    have = {gid: {"index": loc} for gid, loc in located.items() if split_s3_url(loc)[1] in present}
    return shard_map.with_granule_fields(have), len(have), len(located)

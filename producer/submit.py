"""Submit a run: credentials to SSM, run and shard records to DynamoDB, one SQS message per shard."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3

from producer.incremental import select_changed, with_identities
from producer.indexes import with_indexes
from producer.prices import lambda_cost
from shared.catalog import ShardMap, load_catalog
from shared.config import PipelineConfig, load_config
from shared.credentials import EXPIRY_MARGIN_MINUTES, S3Credentials, parameter_name, parse_credentials, put_credentials
from shared.deployed import load_stack
from shared.errors import CredentialsError, InputError, RunError
from shared.granules import ReadContext, S3RangeReader
from shared.messages import GranuleList, ShardMessage
from shared.results import ShardStatus
from shared.runstatus import RunKind, RunRecord, RunStatusStore, ShardRecord
from shared.settings import (
    INLINE_GRANULES_MAX_BYTES,
    RUN_FILES_PREFIX,
    SQS_MAX_MESSAGE_BYTES,
    SQS_SEND_BATCH,
    StackOutputs,
)
from shared.windows import PlacedWindow, WindowSpec
from shared.written import WrittenShards

SEND_ATTEMPTS = 6


@dataclass
class Plan:
    run_id: str
    keys: list[int]
    granules: int
    store: str
    seconds_per_shard: float
    memory_mb: int
    seconds_source: str = "given"

    @property
    def cost(self) -> float:
        return lambda_cost(len(self.keys) * self.seconds_per_shard, self.memory_mb, len(self.keys))

    def describe(self) -> str:
        return (
            f"run {self.run_id}: {len(self.keys)} shards, {self.granules} granule reads, store {self.store}\n"
            f"estimated cost: ${self.cost:.2f} ({self.seconds_per_shard:.0f} s per shard, {self.seconds_source}; "
            f"at {self.memory_mb} MB; Lambda compute only)"
        )


# With no finished run to measure: the original system took 2-3 min per shard on Lambda.
ASSUMED_SECONDS_PER_SHARD = 60.0
RECENT_RUNS_FOR_ESTIMATE = 5


def catalog_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def new_run_id(digest: str) -> str:
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}-{digest[:6]}"


def nasa_credentials(path: str | None) -> S3Credentials:
    """From a JSON file, or from NASA Earthdata (earthaccess login, then NSIDC's S3 credentials)."""
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
        return parse_credentials(text, f"credentials file {path}")
    try:
        import earthaccess

        auth = earthaccess.login(strategy="environment") if _has_env_login() else earthaccess.login(strategy="netrc")
        if not auth or not getattr(auth, "authenticated", False):
            raise RuntimeError("login refused")
        creds = earthaccess.get_s3_credentials(daac="NSIDC")
    except Exception as exc:  # earthaccess raises many kinds; none may carry a secret into our message
        raise CredentialsError(
            f"cannot get NASA S3 credentials ({type(exc).__name__}): set "
            "EARTHDATA_USERNAME/EARTHDATA_PASSWORD or ~/.netrc, or pass --credentials-file"
        ) from None
    return S3Credentials.model_validate(creds)


def _has_env_login() -> bool:
    return bool(os.environ.get("EARTHDATA_USERNAME") and os.environ.get("EARTHDATA_PASSWORD"))


def build_messages(
    shard_map: ShardMap, run: RunRecord, positions: dict[int, int], s3, stack: StackOutputs
) -> dict[int, ShardMessage]:
    """One message per shard of ``positions`` (shard key -> its position in the store's region),
    from the run's record and its catalog alone, so that any shard's message can be rebuilt,
    identical, later (resubmit, from the shard records' positions); a granule list too large to
    inline goes to the stack's bucket (under a key fixed by the run and the shard)."""
    config = PipelineConfig.model_validate(run.config)
    windows = tuple(PlacedWindow.model_validate(w) for w in run.windows)
    messages = {}
    for key, position in positions.items():
        common = dict(
            run_id=run.run_id,
            shard_key=key,
            shard_index=position,
            windows=windows,
            grid=shard_map.grid_signature,
            config=config,
            store=run.store,
            credentials_parameter=run.credentials_parameter,
            output_credentials_parameter=run.output_credentials_parameter,
        )
        granules = shard_map.shards[key]
        message = ShardMessage(granules=granules, **common)
        if len(message.body().encode()) > INLINE_GRANULES_MAX_BYTES:
            object_key = f"{RUN_FILES_PREFIX}{run.run_id}/granules/{key}.json"
            s3.put_object(
                Bucket=stack.output_bucket,
                Key=object_key,
                Body=GranuleList(granules=granules).model_dump_json(exclude_none=True).encode(),
            )
            message = ShardMessage(granules_url=f"s3://{stack.output_bucket}/{object_key}", **common)
        messages[key] = message
    return messages


def store_catalog(s3, stack: StackOutputs, run_id: str, shard_map: ShardMap) -> str:
    """The catalog as submitted (with its index references), kept beside the run's other files:
    messages are rebuilt from it."""
    key = f"{RUN_FILES_PREFIX}{run_id}/catalog.json"
    s3.put_object(Bucket=stack.output_bucket, Key=key, Body=shard_map.model_dump_json(exclude_none=True).encode())
    return f"s3://{stack.output_bucket}/{key}"


def load_run_catalog(s3, run: RunRecord) -> ShardMap:
    """The catalog a run was submitted with, from the stack's bucket."""
    import tempfile

    if not run.catalog_url:
        raise InputError(f"run {run.run_id} has no stored catalog (submitted by an older version): submit it again")
    bucket, _, key = run.catalog_url.removeprefix("s3://").partition("/")
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "catalog.json"
        s3.download_file(bucket, key, str(local))
        return load_catalog(local)


def batches(messages: list[ShardMessage]) -> list[list[ShardMessage]]:
    """Consecutive batches SendMessageBatch accepts: at most 10 entries and, together, at most
    the size one message may have (large shards' messages are ~200 kB)."""
    out: list[list[ShardMessage]] = []
    size = 0
    for m in messages:
        n = len(m.body().encode())
        if not out or len(out[-1]) == SQS_SEND_BATCH or size + n > SQS_MAX_MESSAGE_BYTES:
            out.append([])
            size = 0
        out[-1].append(m)
        size += n
    return out


def send_all(sqs, queue_url: str, messages: list[ShardMessage], sleep=time.sleep) -> list[ShardMessage]:
    """Send in batches (:func:`batches`), retrying failed entries with backoff. Returns the messages never sent."""
    unsent = []
    for batch in batches(messages):
        pending = {str(i): m for i, m in enumerate(batch)}
        for attempt in range(SEND_ATTEMPTS):
            if not pending:
                break
            if attempt:
                sleep(min(0.2 * 2**attempt, 5.0))
            try:
                response = sqs.send_message_batch(
                    QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": m.body()} for i, m in pending.items()]
                )
            except Exception:  # the whole call failed: retry every entry
                continue
            for ok in response.get("Successful", []):
                pending.pop(ok["Id"], None)
        unsent += pending.values()
    return unsent


def confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{prompt} [y/N] ").strip().lower() in ("y", "yes")


def seconds_per_shard(given: float | None, runs: RunStatusStore) -> tuple[float, str]:
    """Seconds per shard for the estimate, and where the figure comes from: given, or measured on
    the most recent run with finished shards, or (with none yet) an assumption that says so."""
    if given is not None:
        return given, "given with --seconds-per-shard"
    for run in runs.recent_runs(RECENT_RUNS_FOR_ESTIMATE):
        if run.kind is not RunKind.SHARDS:  # an index run's items are granules, not shards
            continue
        finished = sum(run.counts.values())
        if finished and run.compute_seconds > 0:
            return run.compute_seconds / finished, f"measured: mean of run {run.run_id}'s {finished} finished shards"
    return ASSUMED_SECONDS_PER_SHARD, "assumed: no finished run recorded yet, measure with a small run"


def region_keys(source: str | None) -> list[int] | None:
    """The order-6 shard keys of a packaged region, a GeoJSON polygon file, or a JSON list of
    shard keys (or a catalog: its shards); None when none is given."""
    if source is None:
        return None
    from producer.regions import packaged_regions, read_geojson
    from shared.region import read_shard_keys

    if source.removesuffix(".geojson") in packaged_regions() or source.endswith(".geojson"):
        return [int(k) for k in read_geojson(source).shards()]
    return read_shard_keys(source)


def submit(args) -> int:
    from shared.store import prepare_store, shard_position  # zarr: not imported by status, which reads the prices above

    try:
        spec = WindowSpec.parse(args.windows)
    except ValueError as exc:
        raise InputError(f"--windows: {' '.join(str(exc).split())}") from None
    shard_map = load_catalog(args.catalog)
    config = load_config(args.config)
    region = region_keys(args.region)
    keys = shard_map.select(args.shard, args.max_shards)
    if not keys:
        raise InputError(f"catalog {args.catalog} selects no shards")
    stack = load_stack(args.stack)
    digest = catalog_hash(args.catalog)
    run_id = args.run_id or new_run_id(digest)
    store = args.store or stack.default_store(run_id)
    runs = RunStatusStore(stack.run_table)
    seconds, source = seconds_per_shard(args.seconds_per_shard, runs)
    plan = Plan(run_id, keys, sum(len(shard_map.shards[k]) for k in keys), store, seconds, stack.memory_mb, source)
    print(plan.describe())
    if args.dry_run:
        print("dry run: nothing stored, nothing sent")
        return 0
    if not args.yes and not confirm("submit?"):
        print("not submitted (answer y, or pass --yes)")
        return 1

    ssm, sqs, s3 = boto3.client("ssm"), boto3.client("sqs"), boto3.client("s3")
    read_param = parameter_name(stack.parameter_prefix, run_id, "read")
    read_creds = nasa_credentials(args.credentials_file)
    if read_creds.expired():
        raise CredentialsError(
            f"the S3 read credentials expire at {read_creds.expiration}, within {EXPIRY_MARGIN_MINUTES} minutes "
            "(or have expired): a run needs fresher ones"
        )
    put_credentials(ssm, read_param, read_creds)
    output_param = None
    output_creds = None
    if args.output_creds:
        output_creds = nasa_credentials(args.output_creds)
        output_param = parameter_name(stack.parameter_prefix, run_id, "output")
        put_credentials(ssm, output_param, output_creds)

    # the store's region and time axis, extended (once, here) before any worker writes
    layout = prepare_store(
        store, shard_map, keys, config, spec, region, output_creds.for_client() if output_creds else None
    )
    if layout.outside:
        print(f"{len(layout.outside)} shards of the catalog lie outside the store's region: not submitted")
    keys = layout.keys
    if not keys:
        raise InputError(f"no shard of catalog {args.catalog} lies in the store's region")
    print(f"windows: {', '.join(w.label for w in layout.windows) or 'none'}")
    existing = runs.get_run(run_id)
    if existing is not None:  # it keeps what it was submitted with, index references and windows included
        if existing.catalog_hash != digest:
            raise InputError(f"run {run_id} already exists for another catalog; choose a new run id")
        run, shard_map = existing, load_run_catalog(s3, existing)
    else:
        shard_map = with_identities(shard_map, keys, ReadContext(s3=S3RangeReader(read_creds.for_client())))
        selection = select_changed(shard_map, keys, config, layout.windows, WrittenShards(stack.run_table, store))
        print(selection.describe())
        keys = selection.send
        if not keys:
            print(f"nothing to send: run {run_id} not created")
            return 0
        shard_map, indexed, total = with_indexes(shard_map, stack.index_root)
        print(
            f"granule indexes: {indexed} of {total} granules have one"
            + (
                f"; the other {total - indexed} are read by search (python -m producer index)"
                if indexed < total
                else ""
            )
        )
        try:
            run = runs.create_run(
                RunRecord(
                    run_id=run_id,
                    catalog=str(args.catalog),
                    catalog_hash=digest,
                    config=config.model_dump(mode="json"),
                    store=store,
                    credentials_parameter=read_param,
                    output_credentials_parameter=output_param,
                    shards=len(keys),
                    granules=sum(len(shard_map.shards[k]) for k in keys),
                    memory_mb=stack.memory_mb,
                    catalog_url=store_catalog(s3, stack, run_id, shard_map),
                    windows=[w.model_dump(mode="json") for w in layout.windows],
                )
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None

    # An existing run id keeps what it was submitted with: its messages are rebuilt from its record.
    messages = build_messages(shard_map, run, {k: shard_position(layout.region, k) for k in keys}, s3, stack)
    recorded = runs.shard_statuses(run_id)
    runs.put_shards(
        [
            ShardRecord(
                run_id=run_id,
                shard_key=key,
                shard_index=message.shard_index,
                status=ShardStatus.PENDING,
                granules=len(shard_map.shards[key]),
                message_digest=message.digest(),
            )
            for key, message in messages.items()
            if key not in recorded
        ]
    )
    # PENDING ones were recorded by an earlier submit that may not have sent them
    to_send = [m for key, m in messages.items() if recorded.get(key, ShardStatus.PENDING) == ShardStatus.PENDING]
    unsent = send_all(sqs, stack.queue_url, to_send)
    sent = len(to_send) - len(unsent)
    print(
        f"submitted run {run_id}: {sent} messages sent, {len(keys) - len(to_send)} shards already recorded "
        "and not resent"
    )
    if unsent:
        raise RunError(
            f"{len(unsent)} shard messages could not be sent (first: {unsent[0].shard_key}); they stay PENDING: "
            f"resubmit with --run-id {run_id}"
        )
    print(f"watch it: python -m producer status {run_id} --watch")
    return 0

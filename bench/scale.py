"""``make bench-scale`` / ``python -m bench.scale``: the operator's side at continental scale.

For each shard count N, on one embedded stack (moto on loopback, ``template.yaml`` deployed, as
``python -m bench`` starts it):

1. catalog  a synthetic catalog of N real order-6 shard keys x G granules each, built with
            ``ShardMap.build`` and saved as JSON, twice: as a CMR search writes it (``s3`` and
            ``https`` per granule) and with per-beam ``segments`` as well (what the offline catalog
            step inlines; its ``chunks`` are left out). For each: file size, and ``load_catalog``'s
            wall time and peak memory in a process of its own (VmHWM: interpreter, imports and load).
2. submit   ``python -m producer --catalog C --yes --credentials-file F --run-id R`` (the CMR-like
            catalog) in a process of its own, with every AWS call it makes counted
            (``python -m bench.scale_probe calls``: the producer's ``main`` after a botocore hook).
3. status   after most shards are marked finished straight through ``RunStatusStore`` (start then
            finish or fail, from a thread pool: 90% SUCCEEDED, 2% PARTIAL with one or two granule
            failures, 1% FAILED, 2% left RUNNING, the rest PENDING; the first ``--transactions`` of
            them as workers do, the rest with each transaction's two updates made one after the
            other, as moto's transactions copy the whole table), ``python -m producer status R
            --json`` (median wall time of a few runs) and ``producer.status.run_report`` in this
            process (best of a few, after one warm-up), with the bytes of every DynamoDB response
            summed by a botocore ``after-call`` hook.
4. items    every shard item of the run read back with the low-level client: average and largest
            size as JSON (``len(json.dumps(item))``) and by DynamoDB's item size rule (attribute names
            plus values).

Shard keys: the 1,344 shards of the shipped Antarctic basins (the first N in key order when N is
smaller); beyond that, the other order-6 cells nearest the poles, both hemispheres. Granules: a
granule crosses ~30 neighbouring shards (neighbours in key order, a Z-order curve), so each id
is shared by 30 consecutive shards, staggered per slot; ids look like NSIDC's
(``ATL06_20190101001723_00540210_006_01.h5``). Seeded: the same options give the same catalog.

    python -m bench.scale                                   # N = 1,344 and 13,440, 58 granules a shard
    python -m bench.scale --shards 20 --granules-per-shard 3 --repeats 1   # a smoke test

Measured commands run with Python's bytecode cache (in a folder of the run's, compiled once before
the first), as Python runs by default; the status command is also timed with
PYTHONDONTWRITEBYTECODE=1, as this machine sets it: the project's own modules compiled at every
start, the dependencies' bytecode the one ``make venv`` writes at install.

Prints a table with the targets and PASS/FAIL; the last line is a JSON object with every figure.
Over 400 lines: most of it is the synthetic run (catalog, shard outcomes) and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.measures import emit, process_cpu_s

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPAN = 30  # shards a granule crosses
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
BUCKET_PATH = "nsidc-cumulus-prod-protected/ATLAS/ATL06/006"
HTTPS_ROOT = "https://data.nsidc.earthdatacloud.nasa.gov"
FIRST_GRANULE = datetime(2019, 1, 1, 0, 17, 23, tzinfo=UTC)
GRANULE_SECONDS = 405  # an orbit (~94.6 min) over its 14 granule regions
RGTS = 1387
# What the run table holds when status is asked (the rest stays PENDING).
MIX = {"SUCCEEDED": 0.90, "PARTIAL": 0.02, "FAILED": 0.01, "RUNNING": 0.02}
FAILED_REASONS = (
    "S3 credentials were refused reading 58 granule(s): refresh them and redrive",
    "transient read errors, first: SlowDown: Please reduce your request rate. (receives spent)",
    "store write failed: cannot write store s3://bucket/runs/run/h_mean.zarr: InternalError (receives spent)",
)
PARTIAL_REASONS = (
    ("missing", "NoSuchKey: the object does not exist"),
    (
        "corrupt",
        "truncated: 1048576 of the 35651584 bytes at offset 34603008 exist; the file is shorter than "
        "its HDF5 metadata says",
    ),
)
MB = 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--shards", default="1344,13440", help="comma-separated shard counts (default 1344,13440)")
    p.add_argument("--granules-per-shard", type=int, default=58, help="granules per shard (default 58)")
    p.add_argument("--threads", type=int, default=8, help="threads marking shards finished (default 8)")
    p.add_argument(
        "--transactions",
        type=int,
        default=20,
        help="shards marked finished through real transactions (default 20); the rest's updates one by one",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed status runs, CLI and in process (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the final JSON object to this file")
    args = p.parse_args(argv)
    try:
        args.shards = [int(n.replace("_", "")) for n in args.shards.split(",") if n.strip()]
    except ValueError:
        p.error(f"--shards: comma-separated integers, not {args.shards!r}")
    if not args.shards or min(args.shards) < 1 or args.granules_per_shard < 1 or args.repeats < 1:
        p.error("--shards, --granules-per-shard and --repeats must be positive")
    return args


# -- the catalog -------------------------------------------------------------------------------
def shard_keys(n: int) -> tuple[list[int], np.ndarray]:
    """N order-6 shard keys, sorted, and their cells' centre latitudes: the Antarctic basins' shards
    first, then the cells nearest the poles (both hemispheres)."""
    from healpix_geo.nested import healpix_to_lonlat

    from producer.regions import BASINS, load_region
    from shared.grid import PARENT_ORDER, shard_keys_from_nested

    nested = np.arange(12 * 4**PARENT_ORDER, dtype=np.uint64)
    _, lat = healpix_to_lonlat(nested, PARENT_ORDER, ellipsoid="WGS84")
    keys = shard_keys_from_nested(nested, PARENT_ORDER)
    latitude = dict(zip(keys.tolist(), np.asarray(lat, dtype=float).tolist()))
    basins = sorted(int(k) for k in load_region(BASINS).shards())
    if n > len(latitude):
        raise SystemExit(f"--shards {n}: the order-{PARENT_ORDER} grid has only {len(latitude):,} cells")
    chosen = basins[:n]
    if n > len(basins):
        taken = set(basins)
        by_pole = sorted((k for k in latitude if k not in taken), key=lambda k: -abs(latitude[k]))
        chosen += by_pole[: n - len(basins)]
    chosen.sort()
    return chosen, np.array([latitude[k] for k in chosen])


def granule_id(gid: int, south: bool) -> str:
    when = FIRST_GRANULE + timedelta(seconds=gid * GRANULE_SECONDS)
    rgt, cycle = gid % RGTS + 1, 2 + (gid // RGTS) % 20
    region = (10 if south else 3) + gid % 3
    return f"ATL06_{when:%Y%m%d%H%M%S}_{rgt:04d}{cycle:02d}{region:02d}_006_01.h5"


def build_catalog(keys: list[int], latitude: np.ndarray, per_shard: int, segments: bool, seed: int):
    """The shard map: shard i gets, for slot j, granule ``(i + offset_j) // SPAN * per_shard + j`` (so
    each granule covers SPAN consecutive shards, the slots' boundaries staggered)."""
    from shared.catalog import GranuleRef, ShardMap

    rng = random.Random(seed)
    plain: dict[int, GranuleRef] = {}  # one object per granule when nothing is shard-specific
    shards = {}
    for i, key in enumerate(keys):
        refs = []
        for j in range(per_shard):
            gid = (i + j * SPAN // per_shard) // SPAN * per_shard + j
            ref = plain.get(gid)
            if ref is None:
                name = granule_id(gid, bool(latitude[i] < 0))
                folder = f"{BUCKET_PATH}/{name[6:10]}/{name[10:12]}/{name[12:14]}"
                ref = plain[gid] = GranuleRef(
                    id=name, s3=f"s3://{folder}/{name}", https=f"{HTTPS_ROOT}/{folder}/{name}"
                )
            if segments:
                spans = {}
                for beam in BEAMS:
                    start = rng.randrange(0, 140_000)
                    spans[beam] = (start, start + rng.randrange(300, 5_000))
                ref = GranuleRef(id=ref.id, s3=ref.s3, https=ref.https, segments=spans)
            refs.append(ref)
        shards[key] = refs
    metadata = {"source": "synthetic", "region": "bench.scale", "granules_per_shard": per_shard, "span": SPAN}
    return ShardMap.build(shards, metadata)


def measure_catalog(path: Path, keys, latitude, per_shard: int, segments: bool, seed: int, env) -> dict:
    began = time.perf_counter()
    shard_map = build_catalog(keys, latitude, per_shard, segments, seed)
    built = time.perf_counter() - began
    shard_map.save(path)
    saved = time.perf_counter() - began - built
    totals = shard_map.metadata.totals
    del shard_map
    load = probe(["load", str(path)], env)
    return {
        "bytes": path.stat().st_size,
        "shards": totals.shards,
        "granules": totals.granules,
        "granule_shard_pairs": totals.granule_shard_pairs,
        "build_s": built,
        "save_s": saved,
        "load_wall_s": load["wall_s"],
        "load_peak_rss_mb": load["peak_rss_mb"],
        "load_rss_before_mb": load["rss_before_mb"],
    }


def child_environment(env: dict[str, str], bytecode: Path, write: bool = True) -> dict[str, str]:
    """The environment of a measured command: ``env`` (the stack's) over this one's, with Python's
    bytecode cache under ``bytecode`` (a folder of this run's); or, unless ``write``, as where
    PYTHONDONTWRITEBYTECODE is set (this machine): the project's modules compiled at every start,
    the dependencies' bytecode the one written at install (``make venv``)."""
    child = {**os.environ, **env, "PYTHONPYCACHEPREFIX": str(bytecode)}
    child.pop("PYTHONDONTWRITEBYTECODE", None)
    if write:
        return child
    child.pop("PYTHONPYCACHEPREFIX")
    return {**child, "PYTHONDONTWRITEBYTECODE": "1"}


def probe(args: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_probe", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench.scale_probe {args[0]} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- submit ------------------------------------------------------------------------------------
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def submit(catalog: Path, credentials: Path, run_id: str, env: dict[str, str], out: Path) -> dict:
    argv = ["--catalog", str(catalog), "--yes", "--credentials-file", str(credentials), "--run-id", run_id]
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_probe", "calls", str(out), "--", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"submit failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    counted = json.loads(out.read_text())
    calls = counted["calls"]
    return {
        "wall_s": wall,
        "calls": calls,
        "seconds_in_calls": counted["seconds"],
        "dynamodb_writes": sum(n for k, n in calls.items() if k.split(".")[-1] in DYNAMODB_WRITES),
        "dynamodb_calls": sum(n for k, n in calls.items() if k.startswith("dynamodb.")),
        "sqs_send_batches": calls.get("sqs.SendMessageBatch", 0),
    }


# -- the run's shards, marked finished ---------------------------------------------------------
class UpdatesForTransactions:
    """A DynamoDB client whose TransactWriteItems makes its Updates one by one (UpdateItem, each with
    its own condition): the same items in the same state, without moto's cost. moto copies every
    table a transaction names (all its items) before each transaction, to restore it should a
    condition fail, so a transaction's time grows with the table, and marking every shard of a run
    through ``RunStatusStore.finish`` takes time quadratic in the run's size. Nothing here runs two
    writes of one shard at once, so what the transaction guarantees is not needed."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def transact_write_items(self, TransactItems: list[dict], **_) -> dict:
        for entry in TransactItems:
            (kind, operation), *_ = entry.items()
            if kind != "Update":
                raise ValueError(f"only Update entries are made one by one, not {kind}")
            self._client.update_item(**used_only(operation))
        return {}


def used_only(operation: dict) -> dict:
    """The operation without the expression names and values its expressions do not use (a transaction
    accepts them, UpdateItem refuses them: the store passes one set of values for both conditions)."""
    text = operation.get("UpdateExpression", "") + " " + operation.get("ConditionExpression", "")
    words = set(re.findall(r"[#:][A-Za-z0-9_]+", text))
    out = dict(operation)
    for field in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if field in out:
            out[field] = {k: v for k, v in out[field].items() if k in words}
    return out


def mark_shards(table: str, run_id: str, per_shard: int, threads: int, transactions: int, seed: int) -> dict:
    """Start and finish shards straight through ``RunStatusStore``, as workers would, in MIX's
    proportions: the first ``transactions`` of them as the worker does (TransactWriteItems), the
    rest with each transaction's updates made one by one (:class:`UpdatesForTransactions`)."""
    import boto3

    from shared.results import FailureKind, GranuleFailure, ShardResult, ShardStatus
    from shared.runstatus import RunStatusStore

    client = boto3.client("dynamodb")
    real, untransacted = RunStatusStore(table, client), RunStatusStore(table, UpdatesForTransactions(client))
    records = list(real.shards(run_id))
    rng = random.Random(seed)
    rng.shuffle(records)
    n = len(records)
    plan: list[str] = []
    for status in ("PARTIAL", "FAILED", "RUNNING"):
        plan += [status] * (max(1, round(MIX[status] * n)) if n >= 10 else 0)
    plan += ["SUCCEEDED"] * min(round(MIX["SUCCEEDED"] * n), n - len(plan))
    plan += ["PENDING"] * (n - len(plan))
    work = [(r, s, random.Random(seed * 1_000_003 + r.shard_key)) for r, s in zip(records, plan) if s != "PENDING"]
    rng.shuffle(work)  # the statuses mixed, so that the sample made through transactions has every kind
    work = [(*w, real if i < transactions else untransacted) for i, w in enumerate(work)]

    def one(item) -> str:
        record, status, local, runs = item
        holder = f"bench-{uuid.uuid4().hex[:8]}"
        started = runs.start(run_id, record.shard_key, record.message_digest, holder)
        if started.outcome != "STARTED":
            raise RuntimeError(f"shard {record.shard_key} did not start: {started.outcome}")
        if status == "RUNNING":
            return status
        if status == "FAILED":
            if not runs.fail(run_id, record.shard_key, local.choice(FAILED_REASONS), holder):
                raise RuntimeError(f"shard {record.shard_key} could not be failed")
            return status
        failures = []
        if status == "PARTIAL":
            for k in range(local.choice((1, 1, 2))):
                kind, reason = PARTIAL_REASONS[k % len(PARTIAL_REASONS)]
                granule = granule_id(local.randrange(1_000_000), True)
                failures.append(GranuleFailure(granule=granule, kind=FailureKind(kind), reason=f"{granule}: {reason}"))
        result = ShardResult(
            shard_key=record.shard_key,
            status=ShardStatus(status),
            granules_read=per_shard - len(failures),
            granules_failed=failures,
            observations=local.randrange(20_000, 1_500_000),
            cells_with_data=local.randrange(500, 4097),
            duration_s=local.uniform(15, 180),
        )
        if not runs.finish(run_id, result, holder):
            raise RuntimeError(f"shard {record.shard_key} could not be finished")
        return status

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = Counter(pool.map(one, work[:transactions]))
        between = time.perf_counter()
        done += Counter(pool.map(one, work[transactions:]))
    ended = time.perf_counter()
    sampled, rest = len(work[:transactions]), len(work[transactions:])
    return {
        "seconds": ended - began,
        "threads": threads,
        "through_transactions": sampled,
        "ms_per_shard_transactions": (between - began) / sampled * 1000 if sampled else None,
        "ms_per_shard_updates": (ended - between) / rest * 1000 if rest else None,
        "shards": n,
        "counts": {s: done.get(s, 0) for s in ("SUCCEEDED", "PARTIAL", "FAILED", "RUNNING")}
        | {"PENDING": n - len(work)},
    }


# -- status ------------------------------------------------------------------------------------
def counting_client():
    """A DynamoDB client whose response bodies are summed (bytes) and counted (calls)."""
    import boto3

    client = boto3.client("dynamodb")
    tally = {"bytes": 0, "calls": 0}

    def note(http_response=None, **_) -> None:
        tally["calls"] += 1
        tally["bytes"] += len(http_response.content or b"") if http_response is not None else 0

    client.meta.events.register("after-call.dynamodb", note)
    return client, tally


def status_command(run_id: str, env: dict[str, str]) -> tuple[float, str]:
    """``python -m producer status RUN --json``: wall time and what it printed."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "producer", "status", run_id, "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):  # 1: the run has FAILED shards
        raise SystemExit(f"status failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return wall, done.stdout


def status(
    table: str, run_id: str, env: dict[str, str], uncached: dict[str, str], repeats: int, emulator_pid: int
) -> dict:
    """The status command's time (and the emulator's CPU in it: the emulator's DynamoDB, unlike
    DynamoDB, reads every item of the table for a query on an index, so the time of a query that
    matches nothing is measured too) and bytes."""
    from producer.status import read_run, run_report
    from shared.results import ShardStatus
    from shared.runstatus import RunStatusStore

    status_command(run_id, env)  # whatever the bytecode cache still lacks
    cli, cold, cli_emulator = [], [], []
    for _ in range(repeats):
        served = process_cpu_s(emulator_pid)
        wall, printed = status_command(run_id, env)
        cli_emulator.append(process_cpu_s(emulator_pid) - served)
        cli.append(wall)
        cold.append(status_command(run_id, uncached)[0])
    printed = json.loads(printed)

    client, tally = counting_client()
    runs = RunStatusStore(table, client)
    began = time.perf_counter()
    report = run_report(runs, read_run(runs, run_id))
    first = time.perf_counter() - began
    received, calls = tally["bytes"], tally["calls"]
    nothing = []  # an index query that matches no item: what the emulator's scan of the table costs alone
    for _ in range(repeats):
        began = time.perf_counter()
        runs.count(run_id, ShardStatus.EMPTY)
        nothing.append(time.perf_counter() - began)
    timed, client_cpu, emulator_cpu = [], [], []
    for _ in range(repeats):
        served, cpu, began = process_cpu_s(emulator_pid), time.process_time(), time.perf_counter()
        run_report(runs, read_run(runs, run_id))
        timed.append(time.perf_counter() - began)
        client_cpu.append(time.process_time() - cpu)
        emulator_cpu.append(process_cpu_s(emulator_pid) - served)
    return {
        "cli_wall_s": statistics.median(cli),
        "cli_runs_s": cli,
        "cli_wall_dont_write_bytecode_s": statistics.median(cold),
        "cli_dont_write_bytecode_runs_s": cold,
        "cli_output_bytes": len(json.dumps(printed, indent=1).encode()),
        "cli_emulator_cpu_s": statistics.median(cli_emulator),
        "in_process_s": min(timed),
        "in_process_client_cpu_s": client_cpu[timed.index(min(timed))],
        "in_process_emulator_cpu_s": emulator_cpu[timed.index(min(timed))],
        "in_process_first_s": first,
        "index_query_matching_nothing_s": min(nothing),
        "dynamodb_bytes": received,
        "dynamodb_calls": calls,
        "problems": len(report["problems"]),
        "counts": report["counts"],
        "cli_counts_agree": printed["counts"] == report["counts"],
    }


# -- shard items -------------------------------------------------------------------------------
def attribute_size(value: dict) -> int:
    """DynamoDB's size of one attribute value (approximately, for numbers: 1 byte per 2 significant digits + 1)."""
    (kind, v), *_ = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v) if isinstance(v, bytes) else len(v) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(attribute_size(x) + 1 for x in v)
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(attribute_size({"N": s}) for s in v)
    return sum(len(b) for b in v)  # BS


def item_size(item: dict) -> int:
    """DynamoDB's item size rule: the UTF-8 lengths of the attribute names plus the sizes of the values."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def shard_items(table: str, run_id: str) -> dict:
    import boto3

    pages = (
        boto3.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": {"S": f"RUN#{run_id}"}, ":s": {"S": "SHARD#"}},
        )
    )
    items = [item for page in pages for item in page["Items"]]
    as_json = [len(json.dumps(item)) for item in items]
    by_rule = [item_size(item) for item in items]
    by_status: dict[str, list[int]] = {}
    for item, size in zip(items, by_rule):
        by_status.setdefault(item["status"]["S"], []).append(size)
    return {
        "items": len(items),
        "avg_json_bytes": sum(as_json) / len(items),
        "max_json_bytes": max(as_json),
        "avg_dynamodb_bytes": sum(by_rule) / len(items),
        "max_dynamodb_bytes": max(by_rule),
        "avg_dynamodb_bytes_by_status": {s: sum(v) / len(v) for s, v in sorted(by_status.items())},
    }


# -- one shard count ---------------------------------------------------------------------------
def measure(n: int, args, tmp: Path, env: dict[str, str], table: str, credentials: Path, emulator_pid: int) -> dict:
    """Every figure for one shard count; ``env`` is the stack's environment."""
    child = child_environment(env, tmp / "bytecode")
    uncached = child_environment(env, tmp / "no-bytecode", write=False)
    figures: dict = {"shards": n, "granules_per_shard": args.granules_per_shard}
    keys, latitude = shard_keys(n)
    for variant, segments in (("plain", False), ("segments", True)):
        print(f"  catalog ({variant}): building, saving, loading ...", flush=True)
        path = tmp / f"catalog-{n}-{variant}.json"
        figures[f"catalog_{variant}"] = measure_catalog(
            path, keys, latitude, args.granules_per_shard, segments, args.seed, child
        )
        if segments:
            path.unlink()
    run_id = f"scale-{n}-{uuid.uuid4().hex[:6]}"
    figures["run_id"] = run_id
    print(f"  submit {run_id} ...", flush=True)
    figures["submit"] = submit(tmp / f"catalog-{n}-plain.json", credentials, run_id, child, tmp / f"calls-{n}.json")
    print(f"  marking shards finished ({args.threads} threads) ...", flush=True)
    figures["marked"] = mark_shards(table, run_id, args.granules_per_shard, args.threads, args.transactions, args.seed)
    print("  status ...", flush=True)
    figures["status"] = status(table, run_id, child, uncached, args.repeats, emulator_pid)
    figures["shard_items"] = shard_items(table, run_id)
    return figures


# -- report ------------------------------------------------------------------------------------
def mb(v: float) -> str:
    return f"{v / MB:,.2f}"


def pair(a: str, b: str, fmt: str = "{:,.0f}"):
    return lambda d: "/".join("-" if d[k] is None else fmt.format(d[k]) for k in (a, b))


class Target:
    """A limit a figure must stay under, at the given shard counts (all of them when None)."""

    def __init__(self, limit: float, text: str, shards: tuple[int, ...] | None = None):
        self.limit, self.text, self.shards = limit, text, shards

    def applies(self, n: int) -> bool:
        return self.shards is None or n in self.shards


AT_1344 = (1344,)
# label, figure path, format, target
ROWS = [
    ("catalog, no segments: file (MB)", ("catalog_plain", "bytes"), mb, None),
    ("  granules / granule-shard pairs", ("catalog_plain",), pair("granules", "granule_shard_pairs"), None),
    ("  ShardMap.build / save (s)", ("catalog_plain",), pair("build_s", "save_s", "{:.1f}"), None),
    ("  load_catalog wall (s)", ("catalog_plain", "load_wall_s"), "{:.2f}", Target(10, "< 10 s at 1,344", AT_1344)),
    (
        "  load peak memory (MB, VmHWM)",
        ("catalog_plain", "load_peak_rss_mb"),
        "{:,.0f}",
        Target(1000, "< 1 GB at 1,344", AT_1344),
    ),
    ("    of which before the load (MB)", ("catalog_plain", "load_rss_before_mb"), "{:,.0f}", None),
    ("catalog, with segments: file (MB)", ("catalog_segments", "bytes"), mb, None),
    ("  ShardMap.build / save (s)", ("catalog_segments",), pair("build_s", "save_s", "{:.1f}"), None),
    (
        "  load_catalog wall (s)",
        ("catalog_segments", "load_wall_s"),
        "{:.2f}",
        Target(10, "< 10 s at 1,344", AT_1344),
    ),
    (
        "  load peak memory (MB, VmHWM)",
        ("catalog_segments", "load_peak_rss_mb"),
        "{:,.0f}",
        Target(1000, "< 1 GB at 1,344", AT_1344),
    ),
    ("submit wall (s)", ("submit", "wall_s"), "{:.1f}", Target(20, "< 20 s at 1,344", AT_1344)),
    ("  DynamoDB writes / all DynamoDB calls", ("submit",), pair("dynamodb_writes", "dynamodb_calls"), None),
    ("  SQS SendMessageBatch", ("submit", "sqs_send_batches"), "{:,}", None),
    (
        "  in DynamoDB / SQS / S3 calls (s)",
        ("submit", "seconds_in_calls"),
        lambda t: "/".join(f"{t.get(k, 0):.1f}" for k in ("dynamodb", "sqs", "s3")),
        None,
    ),
    ("shards marked finished (s)", ("marked", "seconds"), "{:.1f}", None),
    (
        "  ms a shard: transactions / updates",
        ("marked",),
        pair("ms_per_shard_transactions", "ms_per_shard_updates"),
        None,
    ),
    ("status --json, CLI wall (s)", ("status", "cli_wall_s"), "{:.2f}", Target(1, "< 1 s")),
    (
        "  the same, PYTHONDONTWRITEBYTECODE=1 (s)",
        ("status", "cli_wall_dont_write_bytecode_s"),
        "{:.2f}",
        Target(1, "< 1 s"),
    ),
    ("  emulator CPU in it (s)", ("status", "cli_emulator_cpu_s"), "{:.2f}", None),
    ("status, run_report in process (s)", ("status", "in_process_s"), "{:.3f}", Target(1, "< 1 s")),
    (
        "  CPU: this process / emulator (s)",
        ("status",),
        pair("in_process_client_cpu_s", "in_process_emulator_cpu_s", "{:.2f}"),
        None,
    ),
    (
        "  one index query matching nothing (ms)",
        ("status", "index_query_matching_nothing_s"),
        lambda v: f"{v * 1000:.0f}",
        None,
    ),
    ("status, DynamoDB response (MB)", ("status", "dynamodb_bytes"), mb, Target(MB, "< 1 MB")),
    ("  DynamoDB calls", ("status", "dynamodb_calls"), "{:,}", None),
    ("  problem shards listed", ("status", "problems"), "{:,}", None),
    ("shard item, JSON bytes avg/max", ("shard_items",), pair("avg_json_bytes", "max_json_bytes"), None),
    ("shard item, DynamoDB bytes avg/max", ("shard_items",), pair("avg_dynamodb_bytes", "max_dynamodb_bytes"), None),
]


def pick(figures: dict, path: tuple[str, ...]):
    for part in path:
        figures = figures[part]
    return figures


def table(results: dict[int, dict]) -> str:
    width, column = 40, 18
    heads = [f"{n:,} x {r['granules_per_shard']}" for n, r in results.items()]
    lines = [f"{'shards x granules per shard':{width}}" + "".join(f"{h:>{column}}" for h in heads) + "  target"]
    for label, path, fmt, target in ROWS:
        cells = []
        for n, r in results.items():
            value = pick(r, path)
            text = fmt(value) if callable(fmt) else fmt.format(value)
            if target and target.applies(n):
                text += " PASS" if value < target.limit else " FAIL"
            cells.append(text)
        lines.append(
            f"{label:{width}}" + "".join(f"{c:>{column}}" for c in cells) + (f"  {target.text}" if target else "")
        )
    return "\n".join(lines)


def verdicts(results: dict[int, dict]) -> list[dict]:
    return [
        {
            "figure": ".".join(path),
            "path": list(path),
            "shards": n,
            "value": pick(r, path),
            "limit": target.limit,
            "pass": pick(r, path) < target.limit,
        }
        for label, path, _, target in ROWS
        if target
        for n, r in results.items()
        if target.applies(n)
    ]


def main(argv: list[str] | None = None, stack_state=None) -> int:
    """``stack_state``: a running embedded stack to use (a test's); otherwise one is started and stopped."""
    args = parse_args(argv)
    from producer import stack
    from shared.deployed import load_stack

    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        state = stack_state or stack.up(tmp / "stack", f"scale-{uuid.uuid4().hex[:6]}")
        saved = {k: os.environ.get(k) for k in state.environment()}
        try:
            env = state.environment()
            os.environ.update(env)
            table_name = load_stack(state.stack_name).run_table
            print(f"emulator: {state.endpoint} (pid {state.pid}), stack ready in {time.perf_counter() - began:.1f} s")
            compiled = time.perf_counter()
            subprocess.run(  # the measured commands start with their modules' bytecode cached, as usual
                [
                    sys.executable,
                    "-c",
                    "import bench.scale_probe, mortie, producer.cli, producer.status, producer.submit, shared.store",
                ],
                cwd=PROJECT_ROOT,
                env=child_environment(env, tmp / "bytecode"),
                check=True,
            )
            print(f"bytecode of the commands' modules compiled in {time.perf_counter() - compiled:.1f} s")
            credentials = tmp / "creds.json"
            credentials.write_text(
                json.dumps(
                    {
                        "accessKeyId": "AKIABENCHSCALE",
                        "secretAccessKey": "bench-scale-secret",
                        "sessionToken": "bench-scale-token",
                        "expiration": "2099-01-01T00:00:00+00:00",
                    }
                )
            )
            for n in args.shards:
                print(f"{n:,} shards x {args.granules_per_shard} granules:", flush=True)
                results[n] = measure(n, args, tmp, env, table_name, credentials, state.pid)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            if stack_state is None:
                stack.down(tmp / "stack")

    print()
    print(
        "operator side at scale, on the embedded stack (moto on loopback), this machine; status after "
        + ", ".join(f"{v:.0%} {k}" for k, v in MIX.items())
        + ", the rest PENDING:"
    )
    print(table(results))
    checks = verdicts(results)
    failed = [c for c in checks if not c["pass"]]
    print(
        f"targets: {len(checks) - len(failed)} of {len(checks)} met"
        + ("; missed: " + "; ".join(f"{c['figure']} at {c['shards']:,} shards" for c in failed) if failed else "")
    )
    report = {
        "shards": args.shards,
        "granules_per_shard": args.granules_per_shard,
        "span": SPAN,
        "mix": MIX,
        "results": {str(n): r for n, r in results.items()},
        "targets": checks,
        "all_pass": all(c["pass"] for c in checks),
    }
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

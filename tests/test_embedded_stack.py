"""The embedded stack with real worker processes: ``python -m worker --local`` against the emulator over HTTP.

Every test here runs the local event-source-mapping runner as a subprocess (spawned worker
processes, the real Lambda handler), submits through the producer, and reads the outcome back from
DynamoDB, SQS and the Zarr store in S3. The module shares one emulator, one queue, one granule set
and one catalog; each test uses its own run id and leaves the queue and the DLQ empty.

A *gate* makes "a shard in flight" deterministic: one granule of a shard is given as a local path
that is a FIFO (named pipe). A worker that opens it blocks in ``open()`` until the test decides
what happens next, while the shard record says RUNNING and the message is in flight. The gate is
released by putting the real granule file at that path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import xarray as xr

from producer import stack
from producer.cli import main as producer_main
from producer.synthetic import generate
from shared.catalog import load_catalog
from shared.config import load_config
from shared.deployed import load_stack
from shared.errors import RunError
from shared.granules import choose_strategy
from shared.grid import shard_nested_id
from shared.results import FINISHED, ShardStatus
from shared.runstatus import RunStatusStore
from shared.settings import StackOutputs
from shared.store import open_store, prepare_store
from shared.windows import WindowSpec
from tests.independent import expected_cells, kept_points
from tests.pipeline import FINEST
from tests.queue_helpers import SECRET_PARTS, credentials_file, queue_counts, submit, upload
from tests.test_real_data import assert_matches_independent
from worker.runner import read_mapping

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
DONE = {ShardStatus.SUCCEEDED, ShardStatus.EMPTY}
RUNNER_EXIT_S = 150  # bounded waits: generous, so a slow machine is not mistaken for a bug
STATE_WAIT_S = 90
CHILDREN_PER_SHARD = 4096


# -- module state ----------------------------------------------------------------------------------
@dataclass
class World:
    outputs: StackOutputs
    catalog: Path
    granules: list[Path]
    expected: dict[int, dict[str, float]]  # every cell with data, computed without the project's code
    credentials: Path

    @property
    def doc(self) -> dict:
        return json.loads(self.catalog.read_text())

    @property
    def shard_keys(self) -> list[int]:
        return self.doc["shard_keys"]

    def expected_for(self, shard_keys: list[int]) -> dict[int, dict[str, float]]:
        """The independent values of the cells inside these shards (order-6 parents of order-12 cells)."""
        parents = {shard_nested_id(k) for k in shard_keys}
        return {cell: v for cell, v in self.expected.items() if cell // CHILDREN_PER_SHARD in parents}

    def runs(self) -> RunStatusStore:
        return RunStatusStore(self.outputs.run_table)


@pytest.fixture(scope="module")
def world(empty_queues, tmp_path_factory):
    """One granule set on the emulator's S3, one catalog of it; the stack's environment for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in empty_queues.environment().items():
            mp.setenv(key, value)
        folder = tmp_path_factory.mktemp("granules")
        granules = generate(folder, n_granules=3, n_segments=1000, spacing_m=400.0, seed=7)
        prefix = upload("nsidc-embedded", granules)
        catalog = folder.parent / "catalog.json"
        assert producer_main(["catalog", "--granules", prefix, "--output", str(catalog)]) == 0
        points = [kept_points(g) for g in granules]
        merged = {k: np.concatenate([p[k] for p in points]) for k in points[0]}
        world = World(load_stack(), catalog, granules, expected_cells(merged), credentials_file(folder.parent))
        assert len(world.shard_keys) >= 16, "the module needs a catalog with many shards"
        yield world


@pytest.fixture(autouse=True)
def clean_queues(world):
    """Each test must leave the queue and the DLQ empty; if one fails, do not let it spill into the next."""
    yield
    sqs = boto3.client("sqs")
    for url in (world.outputs.queue_url, world.outputs.dead_letter_queue_url):
        if queue_counts(url) != (0, 0):
            sqs.purge_queue(QueueUrl=url)


@pytest.fixture
def runners(tmp_path):
    """Start ``python -m worker --local ...`` subprocesses, each in its own process group; kill leftovers."""
    started: list[subprocess.Popen] = []

    def start(*args: str, name: str = "runner", function_log: bool = True) -> subprocess.Popen:
        """The function's log goes to NAME.jsonl (or, without ``function_log``, to the runner's stderr)."""
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        log_file = ["--log-file", str(tmp_path / f"{name}.jsonl") if function_log else "-"]
        cmd = [sys.executable, "-m", "worker", "--local", *log_file, *args]
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env={**os.environ}, stdout=stdout, stderr=stderr, start_new_session=True
            )
        proc.out_path = out  # type: ignore[attr-defined]
        proc.err_path = err  # type: ignore[attr-defined]
        proc.log_path = tmp_path / f"{name}.jsonl"  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:  # the group: the runner and any worker it left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# -- helpers ---------------------------------------------------------------------------------------
def output_of(proc: subprocess.Popen) -> str:
    """The runner's output and the last lines of its function log, for failure messages."""
    log = proc.log_path.read_text().splitlines()[-15:] if proc.log_path.exists() else []  # type: ignore[attr-defined]
    streams = proc.out_path.read_text() + proc.err_path.read_text()  # type: ignore[attr-defined]
    return streams + "\n--- function log (last lines) ---\n" + "\n".join(log)


def wait_exit(proc: subprocess.Popen, timeout: float, what: str) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{what} did not exit within {timeout:.0f} s; its output:\n{output_of(proc)}") from None


def run_until_empty(runners, *args: str, name: str = "runner") -> subprocess.Popen:
    proc = runners("--until-empty", *args, name=name)
    rc = wait_exit(proc, RUNNER_EXIT_S, f"runner {' '.join(args)} --until-empty")
    assert rc == 0, f"runner exited with {rc}:\n{output_of(proc)}"
    return proc


def wait_for(check: Callable[[], Any], timeout: float, what: Callable[[], str] | str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def worker_pids(runner_pid: int) -> list[int]:
    """The runner's spawned worker processes (not multiprocessing's resource tracker), from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == runner_pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(pids)


def blocked_at_gate(pid: int) -> bool:
    """True when a thread of ``pid`` waits in open() for a writer of a FIFO (kernel wait channel)."""
    try:
        return any(
            (task / "wchan").read_text().strip() == "wait_for_partner" for task in Path(f"/proc/{pid}/task").iterdir()
        )
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def gated_catalog(world: World, folder: Path, keys: list[int]) -> tuple[Path, dict[Path, Path]]:
    """A copy of the module catalog whose shards ``keys`` read their granule from a FIFO gate.

    Returns the catalog and, per gate, the real granule file that releases it.
    """
    doc = world.doc
    by_name = {g.name: g for g in world.granules}
    gates = {}
    for key in keys:
        (ref,) = doc["shards"][str(key)]
        gate_dir = folder / f"gate-{key}"
        gate_dir.mkdir(parents=True)
        gate = gate_dir / Path(ref["s3"]).name
        os.mkfifo(gate)
        gates[gate] = by_name[gate.name]
        doc["shards"][str(key)] = [{**{k: v for k, v in ref.items() if k != "s3"}, "path": str(gate)}]
    path = folder / "gated-catalog.json"
    path.write_text(json.dumps(doc))
    return path, gates


def release(gate: Path, granule: Path) -> None:
    """Put the real granule where the gate was (atomically): later opens read the file."""
    staged = gate.with_suffix(".staged")
    shutil.copyfile(granule, staged)
    os.replace(staged, gate)


def counts(outputs: StackOutputs, url: str | None = None) -> dict[str, int]:
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=url or outputs.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    return {k: int(attrs[f"ApproximateNumberOfMessages{k}"]) for k in ("", "NotVisible", "Delayed")}


def assert_queues_empty(outputs: StackOutputs) -> None:
    assert counts(outputs) == {"": 0, "NotVisible": 0, "Delayed": 0}, f"shard queue not empty: {counts(outputs)}"
    dlq = counts(outputs, outputs.dead_letter_queue_url)
    assert dlq == {"": 0, "NotVisible": 0, "Delayed": 0}, f"DLQ not empty: {dlq}"


def open_run_store(world: World, run_id: str) -> xr.Dataset:
    return xr.open_zarr(open_store(world.runs().get_run(run_id).store, read_only=True), group=FINEST)


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one instant (an interval ending when another starts does not overlap it)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])  # -1 sorts first at a tie
    depth = best = 0
    for _, step in events:
        depth += step
        best = max(best, depth)
    return best


def json_records(text: str) -> list[dict]:
    """The JSON objects in a log written by several processes (a print may land in two writes: tolerate "}{")."""
    decoder, records, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) >= 0:
        try:
            record, i = decoder.raw_decode(text, i)
            records.append(record)
        except json.JSONDecodeError:
            i = text.find("\n", i) + 1 or len(text)  # not JSON (a stray warning line): skip the line
    return records


def wait_mid_run(world: World, run_id: str, runner: subprocess.Popen) -> None:
    """Until some shards of the run finished and one is in flight."""

    def mid_run():
        records = list(world.runs().shards(run_id))
        return sum(r.status in FINISHED for r in records) >= 2 and any(r.status == ShardStatus.RUNNING for r in records)

    wait_for(
        mid_run, STATE_WAIT_S, lambda: f"the run to be under way; runner output:\n{output_of(runner)}", interval=0.2
    )


def status_json(run_id: str, capsys=None) -> tuple[int, dict]:
    """``python -m producer status RUN --json``: as a command, or (given capsys) its main in this process."""
    if capsys is None:
        got = subprocess.run(
            [sys.executable, "-m", "producer", "status", run_id, "--json"],
            cwd=ROOT,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert got.stdout.strip(), f"status printed nothing: {got.stderr}"
        return got.returncode, json.loads(got.stdout)
    capsys.readouterr()
    rc = producer_main(["status", run_id, "--json"])
    return rc, json.loads(capsys.readouterr().out)


# -- 1. end to end -----------------------------------------------------------------------------------
def test_end_to_end_with_worker_processes(world, runners):
    run_id = "e2e-processes"
    assert submit(world.catalog, world.credentials, run_id) == 0
    n = len(world.shard_keys)
    runner = run_until_empty(runners)

    shards = list(world.runs().shards(run_id))
    assert len(shards) == n
    assert {s.status for s in shards} <= DONE, {
        s.shard_key: (s.status, s.last_error) for s in shards if s.status not in DONE
    }
    assert all(s.attempts == 1 for s in shards)
    run = world.runs().get_run(run_id)
    assert sum(run.counts.values()) == n and run.counts[ShardStatus.FAILED] == 0

    ds = open_run_store(world, run_id)
    assert_matches_independent(ds, world.expected)
    assert run.observations == int(ds["count"].values.sum()) == sum(s.observations for s in shards)

    rc, report = status_json(run_id)
    assert rc == 0
    assert report["finished"] is True and report["shards"] == n and report["problems"] == []
    by_status = {str(s): sum(1 for x in shards if x.status == s) for s in ShardStatus}
    assert report["counts"] == by_status
    assert report["observations"] == run.observations

    # The function's log lines went to --log-file as JSON (one "shard finished" per shard), with no secret in them.
    records = json_records(runner.log_path.read_text())
    finished = [x for x in records if x.get("message") == "shard finished"]
    assert sorted(int(x["shard_key"]) for x in finished) == sorted(world.shard_keys)
    # and how many granules each read strategy read: the catalog recorded chunks, so by those
    shard_map, config = load_catalog(world.catalog), load_config()
    chosen = {
        str(k): dict(Counter(choose_strategy(g, config).name for g in shard_map.shards[k])) for k in world.shard_keys
    }
    assert {x["shard_key"]: x["strategies"] for x in finished} == chosen
    assert {name for by in chosen.values() for name in by} == {"recorded_chunks"}
    everything = runner.log_path.read_text() + output_of(runner)
    assert all(secret not in everything for secret in SECRET_PARTS)
    assert_queues_empty(world.outputs)


# -- 2. a worker killed mid-shard ----------------------------------------------------------------------
def test_worker_killed_mid_shard_is_redelivered_and_succeeds(world, runners, tmp_path):
    run_id = "killed-worker"
    key = max(world.shard_keys, key=lambda k: len(world.expected_for([k])))
    catalog, gates = gated_catalog(world, tmp_path, [key])
    assert submit(catalog, world.credentials, run_id, "--shard", str(key)) == 0
    runs = world.runs()

    runner = runners("--visibility-timeout", "5", "--until-empty")
    running = wait_for(
        lambda: (r := runs.get_shard(run_id, key)) and r.status == ShardStatus.RUNNING and r,
        STATE_WAIT_S,
        lambda: f"shard {key} to be RUNNING; runner output:\n{output_of(runner)}",
    )
    assert running.attempts == 1
    workers = wait_for(
        lambda: (p := worker_pids(runner.pid)) and len(p) == 2 and p, 30, "the runner's two worker processes"
    )
    # Mid-shard, provably: one worker waits inside the shard's granule read; it cannot finish without the gate.
    (victim,) = wait_for(
        lambda: [p for p in workers if blocked_at_gate(p)], 30, "a worker to block reading the gated granule"
    )
    # From now on the path holds the real granule (the victim stays blocked on the FIFO it is opening).
    for gate, granule in gates.items():
        release(gate, granule)
    assert counts(world.outputs)["NotVisible"] == 1
    assert runs.get_shard(run_id, key).status == ShardStatus.RUNNING and alive(victim)

    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not alive(victim), 30, f"worker {victim} to die")
    # The killed invocation deleted nothing: its message is still on the queue (in flight until the timeout).
    assert sum(counts(world.outputs).values()) == 1
    assert runs.get_shard(run_id, key).status == ShardStatus.RUNNING

    # After the visibility timeout the queue redelivers it, to the runner's other worker.
    shard = wait_for(
        lambda: (r := runs.get_shard(run_id, key)) and r.status in FINISHED and r,
        STATE_WAIT_S,
        lambda: f"the redelivered shard to finish; runner output:\n{output_of(runner)}",
    )
    assert shard.status == ShardStatus.SUCCEEDED, (shard.status, shard.last_error)
    assert shard.attempts == 2, "one killed attempt, one redelivery"
    assert shard.started_at > running.started_at
    # The runner replaced the dead worker, as Lambda replaces a crashed environment, and with
    # --until-empty it stops by itself once the queue is drained.
    assert wait_exit(runner, 60, "the runner to drain the queue and exit") == 0
    assert f"worker process {victim} died" in output_of(runner)

    run = runs.get_run(run_id)
    assert run.counts[ShardStatus.SUCCEEDED] == 1 and sum(run.counts.values()) == 1
    ds = open_run_store(world, run_id)
    expected = world.expected_for([key])
    assert expected, "the killed shard must hold data"
    assert_matches_independent(ds, expected)
    assert run.observations == shard.observations == int(ds["count"].values.sum())
    assert_queues_empty(world.outputs)


# -- 3. a message that always fails: DLQ after maxReceiveCount, redrive after the fix -----------------
def test_always_failing_message_reaches_the_dlq_and_redrive_brings_it_back(world, runners, capsys):
    run_id = "dead-lettered"
    assert submit(world.catalog, world.credentials, run_id, "--max-shards", "1") == 0
    runs = world.runs()
    run = runs.get_run(run_id)
    (shard,) = runs.shards(run_id)
    # The cause: the run's store vanished (its template is gone), so every write fails with a StoreError (retried).
    bucket, _, prefix = run.store.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        for o in page.get("Contents", [])
    ]
    assert keys, "submit created the store's template"
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    sqs = boto3.client("sqs")
    policy = sqs.get_queue_attributes(QueueUrl=world.outputs.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
        "RedrivePolicy"
    ]
    max_receive = json.loads(policy)["maxReceiveCount"]
    assert max_receive == 5

    runner = runners("--visibility-timeout", "1")
    dlq = world.outputs.dead_letter_queue_url
    wait_for(
        lambda: counts(world.outputs, dlq)[""] == 1,
        STATE_WAIT_S,
        lambda: (
            f"the message to reach the DLQ; shard {runs.get_shard(run_id, shard.shard_key)}; runner "
            f"output:\n{output_of(runner)}"
        ),
    )
    failed = runs.get_shard(run_id, shard.shard_key)
    assert failed.status == ShardStatus.FAILED
    assert failed.attempts == max_receive
    assert failed.last_error.startswith(f"gave up after {max_receive} attempts: store write failed"), failed.last_error
    assert runs.get_run(run_id).counts[ShardStatus.FAILED] == 1
    assert counts(world.outputs) == {"": 0, "NotVisible": 0, "Delayed": 0}
    (dead,) = sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert json.loads(dead["Body"])["shard_key"] == shard.shard_key
    # Dead-lettered by the worker on the queue's last receive, with its reason and the record's state.
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["failure_reason"] == failed.last_error and attributes["shard_record_failed"] == "yes"
    rc, report = status_json(run_id, capsys)
    assert rc == 1 and [(p["shard_key"], p["attempts"]) for p in report["problems"]] == [(shard.shard_key, max_receive)]

    # Fix the cause, then redrive; the runner is still polling.
    shard_map = load_catalog(world.catalog)
    prepare_store(run.store, shard_map, shard_map.shard_keys, load_config(), WindowSpec())
    assert producer_main(["redrive", "--run-id", run_id]) == 0
    assert "moved 1 messages" in capsys.readouterr().out
    assert counts(world.outputs, dlq)[""] == 0
    done = wait_for(
        lambda: (r := runs.get_shard(run_id, shard.shard_key)) and r.status in FINISHED and r,
        STATE_WAIT_S,
        lambda: f"the redriven shard to finish; runner output:\n{output_of(runner)}",
    )
    assert done.status in DONE, (done.status, done.last_error)
    assert done.attempts == max_receive + 1 and done.last_error is None
    os.killpg(runner.pid, signal.SIGINT)
    assert wait_exit(runner, 60, "the runner after Ctrl-C") == 0

    run = runs.get_run(run_id)
    assert run.counts[ShardStatus.FAILED] == 0 and sum(run.counts.values()) == 1
    assert_matches_independent(open_run_store(world, run_id), world.expected_for([shard.shard_key]))
    assert_queues_empty(world.outputs)


# -- 4. the template's concurrency limit holds --------------------------------------------------------
def test_concurrency_never_exceeds_the_template_limit(world, runners):
    run_id = "concurrency"
    mapping = read_mapping(world.outputs.function_name)
    lam = boto3.client("lambda")
    reserved = lam.get_function(FunctionName=world.outputs.function_name)["Concurrency"]["ReservedConcurrentExecutions"]
    (esm,) = lam.list_event_source_mappings(FunctionName=world.outputs.function_name)["EventSourceMappings"]
    maximum = esm["ScalingConfig"]["MaximumConcurrency"]
    limit = mapping.concurrency
    assert limit == reserved == maximum == 2, "the embedded stack deploys ReservedConcurrency 2 / MaximumConcurrency 2"
    n = 12
    assert submit(world.catalog, world.credentials, run_id, "--max-shards", str(n)) == 0
    runs = world.runs()

    runner = runners("--until-empty", "--workers", "8", name="eight")
    samples = []  # (worker processes, messages in flight, shard records RUNNING)
    while runner.poll() is None:
        samples.append(
            (
                len(worker_pids(runner.pid)),
                counts(world.outputs)["NotVisible"],
                sum(1 for _ in runs.shards(run_id, ShardStatus.RUNNING)),
            )
        )
        assert len(samples) < 5000, f"runner still going after {len(samples)} samples:\n{output_of(runner)}"
        time.sleep(0.2)
    assert runner.returncode == 0, output_of(runner)
    assert f"with {limit} worker process(es)" in output_of(runner)

    shards = list(runs.shards(run_id))
    assert len(shards) == n and {s.status for s in shards} <= DONE and all(s.attempts == 1 for s in shards)
    intervals = [(datetime.fromisoformat(s.started_at), datetime.fromisoformat(s.finished_at)) for s in shards]
    overlap = max_overlap(intervals)
    processes, in_flight, running = (max(column) for column in zip(*samples))
    measured = (
        f"max overlap of shard intervals {overlap}, worker processes {processes}, in flight "
        f"{in_flight}, RUNNING {running}"
    )
    assert overlap <= limit and processes <= limit and in_flight <= limit and running <= limit, measured
    # ... and the limit was reached: the measurement could have seen more.
    assert overlap == limit and processes == limit, measured
    assert_queues_empty(world.outputs)


# -- 5. Ctrl-C loses nothing ----------------------------------------------------------------------------
def test_interrupted_runner_loses_no_message(world, runners):
    run_id = "interrupted"
    n = len(world.shard_keys)
    assert submit(world.catalog, world.credentials, run_id) == 0
    runs = world.runs()

    first = runners(name="interrupted")
    wait_mid_run(world, run_id, first)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
    rc = wait_exit(first, 60, "the runner after Ctrl-C")
    assert rc == 0, output_of(first)
    assert "stopping" in output_of(first)

    # Nothing lost: every unfinished shard still has its message on the queue (records in flight finished or went back).
    records = {r.shard_key: r for r in runs.shards(run_id)}
    unfinished = [r for r in records.values() if r.status not in FINISHED]
    assert unfinished, "the interrupt came after the whole run: nothing was tested"
    assert {r.status for r in unfinished} <= {ShardStatus.PENDING, ShardStatus.RUNNING}
    queued = counts(world.outputs)
    assert queued[""] + queued["NotVisible"] == len(unfinished), (queued, len(unfinished))
    assert {r.status for r in records.values() if r.status in FINISHED} <= DONE

    run_until_empty(runners, name="resumed")
    shards = list(runs.shards(run_id))
    assert len(shards) == n and {s.status for s in shards} <= DONE
    for s in shards:  # what finished before the interrupt was not run again
        before = records[s.shard_key]
        if before.status in FINISHED:
            assert s.attempts == before.attempts == 1 and s.finished_at == before.finished_at
        else:
            assert s.attempts == before.attempts + 1
    run = runs.get_run(run_id)
    assert sum(run.counts.values()) == n, run.counts
    ds = open_run_store(world, run_id)
    assert run.observations == int(ds["count"].values.sum())
    assert_matches_independent(ds, world.expected)
    assert_queues_empty(world.outputs)


# -- 6. the workers stop with the runner, whatever stops it ----------------------------------------------
STOP_S = 20  # small shards: a record in flight finishes in a second or two
STOP_SHARDS = 16  # enough that many are left when the stop comes mid-run (2 finished, 1 running)


def handler_traces(world: World, run_id: str) -> tuple:
    """What any handler call would change: the shard records' statuses and attempts, the queue's counts."""
    return {r.shard_key: (r.status, r.attempts) for r in world.runs().shards(run_id)}, counts(world.outputs)


def assert_none_lost(world: World, run_id: str) -> None:
    """Every record in flight was finished and deleted; every unfinished shard still has its message queued."""
    records = list(world.runs().shards(run_id))
    unfinished = [r.shard_key for r in records if r.status not in FINISHED]
    assert unfinished, "the stop came after the whole run: nothing was tested"
    assert {r.status for r in records if r.status in FINISHED} <= DONE
    assert counts(world.outputs) == {"": len(unfinished), "NotVisible": 0, "Delayed": 0}, unfinished
    discard_queued(world)


def discard_queued(world: World) -> None:
    """Delete what is left on the queue (the queue allows one purge a minute: leave it to failed tests)."""
    sqs = boto3.client("sqs")
    while got := sqs.receive_message(QueueUrl=world.outputs.queue_url, MaxNumberOfMessages=10).get("Messages"):
        sqs.delete_message_batch(
            QueueUrl=world.outputs.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )


def assert_no_handler_call_after(world: World, run_id: str, workers: list[int], seconds: float = 3) -> None:
    assert not any(alive(p) for p in workers)
    before = handler_traces(world, run_id)
    time.sleep(seconds)  # a worker left polling would have received a message (in flight) or started a shard
    assert handler_traces(world, run_id) == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)  # SIGINT: test 5
def test_a_stop_signal_to_the_runner_stops_its_workers_and_loses_nothing(world, runners, signum):
    run_id = f"stopped-by-{signum.name.lower()}"
    assert submit(world.catalog, world.credentials, run_id, "--max-shards", str(STOP_SHARDS)) == 0
    runner = runners(name=run_id)
    wait_mid_run(world, run_id, runner)
    workers = worker_pids(runner.pid)
    assert len(workers) == 2
    sent = time.monotonic()
    os.kill(runner.pid, signum)  # the runner alone, as `kill PID` or a service manager would
    rc = wait_exit(runner, STOP_S, f"the runner after {signum.name}")
    wait_for(
        lambda: not any(alive(p) for p in workers),
        STOP_S - (time.monotonic() - sent),
        lambda: f"its workers {workers} to stop with the runner; runner output:\n{output_of(runner)}",
    )
    assert rc == 0 and "stopping" in output_of(runner), output_of(runner)
    assert_no_handler_call_after(world, run_id, workers)
    assert_none_lost(world, run_id)


def test_the_workers_of_a_killed_runner_notice_and_stop_losing_nothing(world, runners):
    run_id = "runner-killed"
    assert submit(world.catalog, world.credentials, run_id, "--max-shards", str(STOP_SHARDS)) == 0
    runner = runners(name=run_id)
    wait_mid_run(world, run_id, runner)
    workers = worker_pids(runner.pid)
    assert len(workers) == 2
    os.kill(runner.pid, signal.SIGKILL)  # no chance to tell its workers anything
    runner.wait()
    wait_for(
        lambda: not any(alive(p) for p in workers),
        STOP_S,
        lambda: f"the workers {workers} of the killed runner to stop; runner output:\n{output_of(runner)}",
    )
    assert_no_handler_call_after(world, run_id, workers)
    assert_none_lost(world, run_id)


@pytest.fixture
def own_stack(tmp_path, monkeypatch):
    """A stack of the test's own, to break (the module's stays up); the test's environment points at it."""
    root = tmp_path / "own-stack"
    state = stack.up(root, stack_name=f"own{uuid.uuid4().hex[:8]}")
    for key, value in state.environment().items():
        monkeypatch.setenv(key, value)
    try:
        yield root
    finally:
        stack.down(root)


@pytest.mark.parametrize("how, args", [("queue deleted", ["--until-empty"]), ("emulator stopped", [])])
def test_a_runner_whose_queue_goes_away_says_so_and_stops(own_stack, runners, how, args):
    outputs = load_stack()
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=outputs.queue_url, MessageBody="{}", DelaySeconds=900)  # --until-empty keeps polling
    # Without --log-file the workers' own output (tracebacks included) would land in the runner's stderr.
    runner = runners(*args, name="orphaned", function_log=False)
    workers = wait_for(lambda: len(p := worker_pids(runner.pid)) == 2 and p, 60, "the runner's two worker processes")
    wait_for(lambda: "polling" in runner.out_path.read_text(), 60, lambda: f"the runner to poll:\n{output_of(runner)}")
    if how == "queue deleted":
        sqs.delete_queue(QueueUrl=outputs.queue_url)
    else:
        stack.down(own_stack)
    rc = wait_exit(runner, 90, f"the runner after its {how}")
    out, err = runner.out_path.read_text(), runner.err_path.read_text()
    assert rc == RunError.exit_code and "Traceback" not in out + err, output_of(runner)
    assert "died" not in out, "workers that found the queue gone were restarted"
    (line,) = err.strip().splitlines()
    what = "no longer exists" if how == "queue deleted" else "refuses connections"
    assert line.startswith("error: ") and what in line and "run python -m producer stack up" in line, line
    assert not any(alive(p) for p in workers)


# -- the runner as an operator sees it ----------------------------------------------------------------
def test_runner_shows_progress_and_a_summary_and_keeps_the_function_log_in_a_file(world, tmp_path):
    run_id = "operator-view"
    assert submit(world.catalog, world.credentials, run_id, "--max-shards", "3") == 0
    boto3.client("sqs").send_message(QueueUrl=world.outputs.queue_url, MessageBody="{not json")

    def until_empty() -> subprocess.CompletedProcess:  # the default log file lands in the command's folder
        return subprocess.run(
            [sys.executable, "-m", "worker", "--local", "--until-empty"],
            cwd=tmp_path,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=300,
        )

    got = until_empty()
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert not [line for line in lines if line.startswith("{")], "the function's JSON log stays out of the terminal"
    assert any(re.search(r"\] 4/4 shards, [\d.]+/s, ETA -$", line) for line in lines), got.stdout
    assert f"run {run_id}: 3 shards: 3 SUCCEEDED" in lines, got.stdout
    assert "dead-lettered: 1 message (python -m producer redrive after fixing the cause)" in lines
    assert any("not a shard message: invalid shard message" in line for line in lines)
    log = (tmp_path / "worker.log").read_text().splitlines()
    assert sum('"shard finished"' in line for line in log) == 3
    # an empty queue: the runner exits within a few seconds of starting its workers
    began = time.monotonic()
    again = until_empty()
    assert again.returncode == 0 and time.monotonic() - began < 15, (time.monotonic() - began, again.stdout)

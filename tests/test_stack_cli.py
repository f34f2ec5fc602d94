"""python -m producer stack up|status|env|down: safe to repeat, stops cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def producer(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )


def test_up_twice_status_env_down(tmp_path):
    state_dir = str(tmp_path / "stack")
    latency = ("--s3-latency-ms", "5", "--s3-first-byte-ms", "10")  # a stack for a benchmark with S3's latency
    try:
        first = producer("stack", "up", "--state-dir", state_dir, "--stack", "cli-test", *latency)
        assert first.returncode == 0, first.stderr
        state = json.loads((tmp_path / "stack" / "state.json").read_text())
        assert state["s3_delays"] == {"latency_ms": 5, "first_byte_ms": 10, "bandwidth_mbps": 0}
        again = producer("stack", "up", "--state-dir", state_dir, "--stack", "cli-test", *latency)
        assert again.returncode == 0, again.stderr
        assert (
            json.loads((tmp_path / "stack" / "state.json").read_text())["endpoint"] == state["endpoint"]
        )  # the same emulator
        other = producer("stack", "up", "--state-dir", state_dir, "--stack", "cli-test")  # not what runs: said so
        assert other.returncode == 4 and "--s3-latency-ms=5" in other.stderr and "stack down" in other.stderr
        status = producer("stack", "status", "--state-dir", state_dir)
        assert status.returncode == 0 and state["endpoint"] in status.stdout and "ShardQueueUrl" in status.stdout
        assert "S3 delays: --s3-latency-ms=5 --s3-first-byte-ms=10" in status.stdout
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in producer("stack", "env", "--state-dir", state_dir).stdout.splitlines()
        )
        assert exports["AWS_ENDPOINT_URL"] == state["endpoint"] and exports["SHARD_QUEUE_STACK"] == "cli-test"
        runs = producer("status", env={**os.environ, **exports})
        assert runs.returncode == 0 and "no runs" in runs.stdout
    finally:
        down = producer("stack", "down", "--state-dir", state_dir)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert producer("stack", "status", "--state-dir", state_dir).returncode == 1
    with pytest.raises(ProcessLookupError):
        os.kill(state["pid"], 0)


def test_commands_without_a_stack_say_so(tmp_path):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = producer("status", env=env)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "cannot read stack" in result.stderr and "stack up" in result.stderr


def test_the_stack_is_found_from_any_directory(tmp_path):
    env = {**os.environ, "SHARD_QUEUE_STATE_DIR": str(tmp_path / "state")}
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "producer", "stack", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        assert run("up", "--stack", "anywhere").returncode == 0
        status = run("status")
        assert status.returncode == 0 and "anywhere: up" in status.stdout
        assert "AWS_ENDPOINT_URL" in run("env").stdout
    finally:
        assert run("down").returncode == 0
    assert not list(elsewhere.iterdir()), "nothing is written to the current directory"


def test_the_default_state_directory_is_the_project_root():
    from producer.stack import lifecycle

    assert lifecycle.STATE_DIR == ROOT / ".stack" or "SHARD_QUEUE_STATE_DIR" in os.environ

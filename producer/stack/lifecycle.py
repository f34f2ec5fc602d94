"""The embedded stack: moto server on loopback running the same ``template.yaml``, no AWS account.

``python -m producer stack up`` starts the emulator, deploys the template into it and writes the
state file (``.stack/state.json`` in the project root, or in ``$SHARD_QUEUE_STATE_DIR``), so
every command finds it from any directory; ``eval "$(python -m producer stack env)"`` points
every command (producer, worker, boto3, h5coro, the Zarr writer) at it through the standard
``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from producer.stack.deploy import PROJECT_ROOT
from producer.stack.emulator import S3Delays, s3_delays_of
from shared.errors import StackError
from shared.settings import DEFAULT_STACK_NAME, ENV_STACK_NAME, ENV_STATE_DIR, OUTPUT_FUNCTION, OUTPUT_INDEX_FUNCTION

# Where the running embedded stack is recorded: $SHARD_QUEUE_STATE_DIR, else .stack in the project
# root, so every command finds it from any directory.
STATE_DIR = Path(os.environ.get(ENV_STATE_DIR) or PROJECT_ROOT / ".stack")
CODE_BUCKET = "embedded-stack-code"
REGION = "us-west-2"
# A small stack for one machine: two workers, a 300 s function timeout (1,800 s visibility).
EMBEDDED_PARAMETERS = {  # concurrency: the local runner starts that many worker processes, on this machine
    "ReservedConcurrency": 2,
    "MaximumConcurrency": 2,
    "IndexConcurrency": 2,
    "WorkerTimeout": 300,
    "WorkerMemorySize": 2048,
}
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class EmbeddedStackError(StackError):
    pass


class StackState(BaseModel):
    endpoint: str
    pid: int
    stack_name: str
    outputs: dict[str, str] = {}
    s3_delays: S3Delays = S3Delays()  # what the emulator adds to S3 requests (nothing by default)

    def environment(self) -> dict[str, str]:
        return {**EMULATOR_ENV, "AWS_ENDPOINT_URL": self.endpoint, ENV_STACK_NAME: self.stack_name}


def state_path(root: Path = STATE_DIR) -> Path:
    return root / "state.json"


def read_state(root: Path = STATE_DIR) -> StackState | None:
    path = state_path(root)
    if not path.exists():
        return None
    return StackState.model_validate_json(path.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emulator_alive(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_emulator(
    root: Path, port: int | None = None, s3_delays: S3Delays = S3Delays(), without_fixes: Sequence[str] = ()
) -> tuple[str, int]:
    """Start ``python -m producer.stack.emulator`` (S3 requests delayed as ``s3_delays`` says; the
    emulator's fixes named in ``without_fixes`` left out, to measure them); returns its endpoint and pid."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / "moto.log", "ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producer.stack.emulator",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            *s3_delays.argv(),
            *(f"--without-fix={name}" for name in without_fixes),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives this command; `down` stops it
    )
    deadline = time.monotonic() + 60
    while not emulator_alive(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            raise EmbeddedStackError(f"the AWS emulator did not start on {endpoint}; see {root / 'moto.log'}")
        time.sleep(0.2)
    return endpoint, process.pid


def deploy(endpoint: str, stack_name: str) -> dict[str, str]:
    import boto3

    from producer.stack.deploy import deploy_stack, disable_emulated_event_sources, package_code, translate_template

    clients = dict(
        endpoint_url=endpoint, region_name=REGION, aws_access_key_id="embedded", aws_secret_access_key="embedded"
    )
    code_uri = package_code(boto3.client("s3", **clients), CODE_BUCKET)
    template = translate_template(parameters=EMBEDDED_PARAMETERS, code_uri=code_uri, region=REGION)
    outputs = deploy_stack(
        boto3.client("cloudformation", **clients), stack_name, template, EMBEDDED_PARAMETERS, poll_seconds=0.5
    )
    # moto would poll the queue itself and invoke the function in Docker; the local runner is the poller here.
    for function in (OUTPUT_FUNCTION, OUTPUT_INDEX_FUNCTION):
        disable_emulated_event_sources(boto3.client("lambda", **clients), outputs[function])
    return outputs


def upload_granules(files: list[Path], bucket: str, prefix: str = "ATL06/", s3=None) -> str:
    """Put granule files into a bucket of the emulator's S3 (created if needed); returns the s3:// prefix."""
    import boto3

    s3 = s3 or boto3.client("s3")
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda f: s3.upload_file(str(f), bucket, f"{prefix}{Path(f).name}"), files))
    return f"s3://{bucket}/{prefix}"


def up(
    root: Path = STATE_DIR,
    stack_name: str = DEFAULT_STACK_NAME,
    port: int | None = None,
    s3_delays: S3Delays = S3Delays(),
) -> StackState:
    """Start (or reuse) the emulator and deploy the template. Safe to repeat.

    ``s3_delays``: latency and bandwidth the emulator gives S3 requests (a benchmark with S3's
    latency); a running emulator is reused only if it was started with the same."""
    state = read_state(root)
    if state is None or not emulator_alive(state.endpoint):
        endpoint, pid = start_emulator(root, port, s3_delays)
        state = StackState(endpoint=endpoint, pid=pid, stack_name=stack_name, s3_delays=s3_delays)
    elif state.s3_delays != s3_delays:
        raise EmbeddedStackError(
            f"the embedded stack's emulator runs with S3 delays {' '.join(state.s3_delays.argv()) or '(none)'}, "
            f"not {' '.join(s3_delays.argv()) or '(none)'}: stop it first (python -m producer stack down)"
        )
    state.outputs = deploy(state.endpoint, state.stack_name)
    state_path(root).write_text(state.model_dump_json(indent=1))
    return state


def down(root: Path = STATE_DIR) -> bool:
    state = read_state(root)
    if state is None:
        return False
    try:
        os.killpg(state.pid, signal.SIGTERM)
        if not _exited(state.pid, seconds=5):
            os.killpg(state.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    state_path(root).unlink(missing_ok=True)
    return True


def _exited(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:  # our own child (tests, the demo): reap it
                return True
        except ChildProcessError:
            pass  # started by an earlier command: not ours to reap
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def stack_command(args) -> int:
    root = args.state_dir or STATE_DIR
    delays = s3_delays_of(args)
    if delays and args.action != "up":
        raise EmbeddedStackError("the --s3-* options are options of stack up")
    if args.action == "up":
        state = up(root, args.stack or DEFAULT_STACK_NAME, s3_delays=delays)
        print(
            f"embedded stack {state.stack_name} is up at {state.endpoint}"
            + (f" (S3 delays: {' '.join(delays.argv())})" if delays else "")
        )
        print('point commands at it:  eval "$(python -m producer stack env)"')
    elif args.action == "down":
        print("embedded stack stopped" if down(root) else "no embedded stack is running")
    elif args.action == "env":
        state = read_state(root)
        if state is None:
            raise EmbeddedStackError("no embedded stack: run python -m producer stack up")
        print("\n".join(f"export {k}={v}" for k, v in state.environment().items()))
    else:
        state = read_state(root)
        if state is None or not emulator_alive(state.endpoint):
            print("embedded stack: down")
            return 1
        print(
            f"embedded stack {state.stack_name}: up at {state.endpoint} (pid {state.pid})"
            + (f"; S3 delays: {' '.join(state.s3_delays.argv())}" if state.s3_delays else "")
        )
        print(json.dumps(state.outputs, indent=1))
    return 0

"""Bring failed shards back: DLQ redrive, resubmit from run records, credential refresh."""

from __future__ import annotations

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from producer.submit import build_messages, load_run_catalog, nasa_credentials, send_all
from shared.credentials import get_credentials, put_credentials
from shared.deadletters import DeadLetter, release, sweep
from shared.deployed import load_stack
from shared.errors import CredentialsError, InputError, RunError
from shared.results import ShardStatus
from shared.runstatus import RunStatusStore
from shared.settings import StackOutputs


def refresh_credentials(
    ssm, runs: RunStatusStore, run_ids: set[str], credentials_file: str | None, force: bool
) -> list[str]:
    """Re-put the credentials parameter of each run when asked or when it has expired. Returns the names refreshed."""
    refreshed, fresh = [], None
    for run_id in sorted(run_ids):
        run = runs.get_run(run_id)
        if run is None:
            continue
        name = run.credentials_parameter
        if not force:
            try:
                if not get_credentials(ssm, name).expired():
                    continue
            except CredentialsError:
                pass  # missing or unreadable: refresh it
        fresh = fresh or nasa_credentials(credentials_file)
        put_credentials(ssm, name, fresh)
        refreshed.append(name)
    return refreshed


def reset_shards(runs: RunStatusStore, letters: list[DeadLetter]) -> int:
    """FAILED shards of these messages -> PENDING (taken off the run's counters): whichever way a
    message goes back to the queue, its shard record says the same. Returns the shards reset."""
    return sum(runs.reset(d.run_id, d.shard_key) for d in letters if d.run_id is not None and d.shard_key is not None)


def move_messages(sqs, stack: StackOutputs, letters: list[DeadLetter]) -> int:
    """Send each held message to the shard queue, then delete it from the DLQ: never losing one.

    A crash between send and delete leaves a duplicate, which the worker's conditional start absorbs.
    """
    for d in letters:
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=d.body)
        sqs.delete_message(QueueUrl=stack.dead_letter_queue_url, ReceiptHandle=d.receipt_handle)
    return len(letters)


def start_move_task(stack: StackOutputs) -> bool:
    """SQS's own redrive (up to 500 msg/s). False where the service does not offer it (the emulator)."""
    try:
        once = boto3.client(
            "sqs", config=botocore.config.Config(retries={"max_attempts": 1})
        )  # an emulator's 500 is final
        once.start_message_move_task(SourceArn=stack.dead_letter_queue_arn, DestinationArn=stack.queue_arn)
        return True
    except (ClientError, BotoCoreError):
        return False


def redrive(args) -> int:
    """DLQ -> shard queue: every message of the selected runs (all runs by default); the others
    are made visible again at once. Shards of moved messages go back to PENDING first."""
    stack = load_stack(args.stack)
    sqs, ssm = boto3.client("sqs"), boto3.client("ssm")
    runs = RunStatusStore(stack.run_table)
    if args.run_id and runs.get_run(args.run_id) is None:
        raise InputError(f"no run {args.run_id} in table {stack.run_table}")
    letters = sweep(sqs, stack.dead_letter_queue_url)
    selected = [d for d in letters if args.run_id is None or d.run_id == args.run_id]
    release(
        sqs, stack.dead_letter_queue_url, [d for d in letters if args.run_id is not None and d.run_id != args.run_id]
    )
    try:
        run_ids = {args.run_id} if args.run_id else {d.run_id for d in selected if d.run_id}
        for name in refresh_credentials(ssm, runs, run_ids, args.credentials_file, args.refresh_credentials):
            print(f"refreshed credentials parameter {name}")
        reset = reset_shards(runs, selected)
    except BaseException:
        release(sqs, stack.dead_letter_queue_url, selected)
        raise
    if args.run_id is None and selected:
        # The move task takes every message of the DLQ, which is what was selected.
        release(sqs, stack.dead_letter_queue_url, selected)
        if start_move_task(stack):
            print(
                f"started an SQS message move task for {len(selected)} messages of runs {', '.join(sorted(run_ids))}; "
                f"{reset} shards back to PENDING"
            )
            return 0
        selected = sweep(sqs, stack.dead_letter_queue_url)  # no move task here (the emulator): by hand
        reset += reset_shards(runs, selected)
    moved = move_messages(sqs, stack, selected)
    print(
        f"moved {moved} messages from the dead-letter queue back to the shard queue; {reset} shards back to PENDING"
        + (f"; {len(letters) - moved} messages of other runs left in it" if args.run_id else "")
    )
    return 0


RESUBMITTABLE = (ShardStatus.FAILED, ShardStatus.PARTIAL, ShardStatus.PENDING)


def resubmittable(text: str) -> list[ShardStatus]:
    """The statuses named in ``--status``; finished-and-good ones never run again."""
    names = [s.strip().upper() for s in text.split(",") if s.strip()]
    allowed = ", ".join(RESUBMITTABLE)
    unknown = [n for n in names if n not in ShardStatus.__members__]
    if unknown or not names:
        raise InputError(f"--status {text!r}: not a shard status (choose from {allowed})")
    refused = [n for n in names if ShardStatus(n) not in RESUBMITTABLE]
    if refused:
        raise InputError(
            f"--status {', '.join(refused)}: such shards are finished and never run again (choose from {allowed})"
        )
    return [ShardStatus(n) for n in names]


def resubmit(args) -> int:
    """Re-enqueue shards of a run from their records (when their DLQ messages are gone)."""
    statuses = resubmittable(args.status)
    stack = load_stack(args.stack)
    runs = RunStatusStore(stack.run_table)
    run = runs.get_run(args.run_id)
    if run is None:
        raise InputError(f"no run {args.run_id} in table {stack.run_table}")
    for name in refresh_credentials(
        boto3.client("ssm"), runs, {args.run_id}, args.credentials_file, args.refresh_credentials
    ):
        print(f"refreshed credentials parameter {name}")
    s3 = boto3.client("s3")
    shard_map = load_run_catalog(s3, run)
    positions = {
        r.shard_key: r.shard_index
        for status in statuses
        for r in runs.shards(args.run_id, status)
        if status == ShardStatus.PENDING or runs.reset(args.run_id, r.shard_key)
    }
    messages = list(build_messages(shard_map, run, positions, s3, stack).values())
    unsent = send_all(boto3.client("sqs"), stack.queue_url, messages)
    print(f"resubmitted {len(messages) - len(unsent)} shards of run {args.run_id} ({', '.join(statuses)})")
    if unsent:
        raise RunError(f"{len(unsent)} messages could not be sent; their shards stay PENDING: run resubmit again")
    return 0

"""Bring failed shards back: DLQ redrive, resubmit from run records, credential refresh."""

from __future__ import annotations


import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from producer.aws import load_stack
from producer.submit import SubmitError, nasa_credentials, send_all
from shared.credentials import CredentialsError, get_credentials, put_credentials
from shared.messages import ShardMessage, peek_ids
from shared.results import ShardStatus
from shared.runstatus import RunStatusStore
from shared.settings import StackOutputs


def refresh_credentials(ssm, runs: RunStatusStore, run_ids: set[str], credentials_file: str | None, force: bool) -> list[str]:
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


def runs_in_dlq(sqs, dlq_url: str) -> set[str]:
    """Run ids of the messages in the DLQ (peeked: visibility set back at once)."""
    found, seen = set(), set()
    while True:
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0)
        batch = [m for m in got.get("Messages", []) if m["MessageId"] not in seen]
        if not batch:
            break
        for m in batch:
            seen.add(m["MessageId"])
            if (run := peek_ids(m["Body"])[0]) is not None:
                found.add(run)
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return found


def move_messages(sqs, runs: RunStatusStore, stack: StackOutputs, run_id: str | None) -> int:
    """Receive from the DLQ, put the shard back to PENDING, send to the queue, then delete: never losing one.

    A crash between send and delete leaves a duplicate, which the worker's conditional start absorbs.
    """
    moved, skipped = 0, set()
    while True:
        got = sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0)
        messages = [m for m in got.get("Messages", []) if m["MessageId"] not in skipped]
        if not messages:
            break
        for m in messages:
            body = m["Body"]
            if run_id is not None and peek_ids(body)[0] != run_id:
                skipped.add(m["MessageId"])
                sqs.change_message_visibility(QueueUrl=stack.dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
                continue
            try:
                message = ShardMessage.model_validate_json(body)
                runs.reset(message.run_id, message.shard_key)
            except ValueError:
                pass  # an invalid body goes back as it is: the worker records it again
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
            sqs.delete_message(QueueUrl=stack.dead_letter_queue_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    return moved


def start_move_task(stack: StackOutputs) -> bool:
    """SQS's own redrive (up to 500 msg/s). False where the service does not offer it (the emulator)."""
    try:
        once = boto3.client("sqs", config=botocore.config.Config(retries={"max_attempts": 1}))  # an emulator's 500 is final
        once.start_message_move_task(SourceArn=stack.dead_letter_queue_arn, DestinationArn=stack.queue_arn)
        return True
    except (ClientError, BotoCoreError):
        return False


def redrive(args) -> int:
    stack = load_stack(args.stack)
    sqs, ssm = boto3.client("sqs"), boto3.client("ssm")
    runs = RunStatusStore(stack.run_table)
    run_ids = {args.run_id} if args.run_id else runs_in_dlq(sqs, stack.dead_letter_queue_url)
    for name in refresh_credentials(ssm, runs, run_ids, args.credentials_file, args.refresh_credentials):
        print(f"refreshed credentials parameter {name}")
    if args.run_id is None:
        # FAILED shards of these runs start again when their message arrives (the worker's start accepts FAILED).
        if start_move_task(stack):
            print(f"started an SQS message move task from the dead-letter queue for runs {', '.join(sorted(run_ids)) or '(none)'}")
            return 0
    moved = move_messages(sqs, runs, stack, args.run_id)
    print(f"moved {moved} messages from the dead-letter queue back to the shard queue")
    return 0


def resubmit(args) -> int:
    """Re-enqueue shards of a run from their records (when their DLQ messages are gone)."""
    stack = load_stack(args.stack)
    runs = RunStatusStore(stack.run_table)
    if runs.get_run(args.run_id) is None:
        raise SubmitError(f"no run {args.run_id} in table {stack.run_table}")
    statuses = [ShardStatus(s.strip().upper()) for s in args.status.split(",") if s.strip()]
    for name in refresh_credentials(boto3.client("ssm"), runs, {args.run_id}, args.credentials_file, args.refresh_credentials):
        print(f"refreshed credentials parameter {name}")
    messages = []
    for status in statuses:
        for record in runs.shards(args.run_id, status):
            if record.message and (status == ShardStatus.PENDING or runs.reset(args.run_id, record.shard_key)):
                messages.append(ShardMessage.model_validate_json(record.message))
    unsent = send_all(boto3.client("sqs"), stack.queue_url, messages)
    print(f"resubmitted {len(messages) - len(unsent)} shards of run {args.run_id} ({', '.join(statuses)})")
    if unsent:
        raise SubmitError(f"{len(unsent)} messages could not be sent; their shards stay PENDING: run resubmit again")
    return 0

"""The deployed stack as every command finds it: its CloudFormation outputs (queue, DLQ, table,
bucket, function), whether it runs on AWS or in the embedded emulator."""

from __future__ import annotations

import os

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import StackError
from shared.settings import DEFAULT_STACK_NAME, ENV_STACK_NAME, StackOutputs


def stack_name(name: str | None = None) -> str:
    return name or os.environ.get(ENV_STACK_NAME, DEFAULT_STACK_NAME)


def stack_outputs(cloudformation_client, name: str) -> dict[str, str]:
    """The stack's Outputs as ``{OutputKey: OutputValue}``."""
    stacks = cloudformation_client.describe_stacks(StackName=name)["Stacks"]
    if not stacks:
        raise StackError(f"stack {name!r} not found")
    return {output["OutputKey"]: str(output["OutputValue"]) for output in stacks[0].get("Outputs", [])}


def load_stack(name: str | None = None) -> StackOutputs:
    name = stack_name(name)
    try:
        outputs = stack_outputs(boto3.client("cloudformation"), name)
    except (ClientError, BotoCoreError) as exc:
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        where = f" at {endpoint}" if endpoint else ""
        raise StackError(
            f"cannot read stack {name}{where}: {exc}. Deploy it (sam deploy) or start the embedded one "
            "(python -m producer stack up)"
        ) from None
    try:
        return StackOutputs.from_outputs(outputs)
    except KeyError as exc:
        raise StackError(f"stack {name} has no output {exc}: was it deployed from this template.yaml?") from None

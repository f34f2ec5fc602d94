"""Deploy ``template.yaml`` without the SAM CLI: translate offline, create or update the stack, read outputs.

The same functions serve the tests (moto in-process) and the embedded stack (moto server over HTTP),
so the emulator runs *the* template, not a copy of it:

    uri = package_code(s3, "local-code")                      # what `sam package` does for CodeUri
    template = translate_template("template.yaml", code_uri=uri)
    outputs = deploy_stack(cloudformation, "shards", template, {"ReservedConcurrency": 4,
                                                                 "MaximumConcurrency": 4})

Nothing here calls AWS except through the clients it is given; the SAM translation is offline.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.deployed import stack_outputs
from shared.errors import StackError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
# What the worker function's own code is (its dependencies come from the Lambda package build).
FUNCTION_PACKAGES = ("worker", "shared")
DEFAULT_CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
# CloudFormation's limit for an inline TemplateBody.
MAX_TEMPLATE_BODY_BYTES = 51_200

_NO_UPDATES = "No updates are to be performed"


class StackDeployError(StackError):
    """A stack did not reach CREATE_COMPLETE / UPDATE_COMPLETE; the message says why."""


# -- template loading -------------------------------------------------------------------------------


class _CfnYamlLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``...)."""


def _intrinsic(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":  # !GetAtt Resource.Attribute
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


# CloudFormation reads an unquoted 2012-10-17 as a string, not a date.
_CfnYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))

for _tag, _name in {
    "!Ref": "Ref",
    "!Condition": "Condition",
    **{
        f"!{short}": f"Fn::{short}"
        for short in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "Transform",
            "ToJsonString",
            "Length",
        )
    },
}.items():
    _CfnYamlLoader.add_constructor(_tag, _intrinsic(_name))


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML (or JSON) template into plain dicts and lists."""
    with open(_resolve(path), encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnYamlLoader)  # noqa: S506 - SafeLoader subclass


def _resolve(path: str | Path) -> Path:
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists() and (PROJECT_ROOT / candidate).exists():
        return PROJECT_ROOT / candidate
    return candidate


# -- SAM translation ----------------------------------------------------------------------------------


class _NoManagedPolicies:
    """Managed-policy loader for samtranslator that never calls IAM.

    The real loader lists every AWS managed policy through IAM. The template names no managed
    policy (the worker has an explicit role), so an empty map is the honest answer; if one is
    ever named, translation fails loudly instead of calling AWS.
    """

    def load(self) -> dict[str, str]:
        return {}


def _is_local_code_uri(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith("s3://")


def translate_template(
    path: str | Path = DEFAULT_TEMPLATE,
    parameters: Mapping[str, Any] | None = None,
    *,
    code_uri: str | None = None,
    region: str = "us-west-2",
) -> dict[str, Any]:
    """Translate the SAM template at ``path`` into a plain CloudFormation template dict, offline.

    ``code_uri`` (``s3://bucket/key``) replaces a local ``CodeUri`` of every serverless function,
    as ``sam package`` would after uploading the build; samtranslator accepts nothing else. Without
    it a local CodeUri becomes ``s3://local-code/<function>.zip`` (see :func:`package_code`).
    ``parameters`` only informs the translation (as with ``sam deploy``); pass the same values to
    :func:`deploy_stack`. ``region`` sets the partition SAM writes into ARNs; no AWS call is made.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    template = load_template(path)
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        if _is_local_code_uri(props.get("CodeUri")):
            props["CodeUri"] = code_uri or f"s3://local-code/{logical_id}.zip"

    # What samtranslator.translator.transform.transform does, except that the Translator gets a
    # boto3 session configured locally (samtranslator reads the region from it for the partition)
    # and the managed-policy map comes from the stub: no credentials, no network.
    params = {key: str(value) for key, value in (parameters or {}).items()}
    to_py27_compatible_template(template, params)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    translated = translator.translate(
        template, parameter_values=params, get_managed_policy_map=_NoManagedPolicies().load
    )
    return json.loads(json.dumps(undo_mark_unicode_str_in_template(translated)))


# -- function code ------------------------------------------------------------------------------------


def build_code_zip(root: str | Path = PROJECT_ROOT, packages: Iterable[str] = FUNCTION_PACKAGES) -> bytes:
    """Zip the function's own packages (``worker/``, ``shared/``; no caches, no dependencies)."""
    root = Path(root)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in packages:
            for file in sorted((root / package).rglob("*")):
                if file.is_dir() or "__pycache__" in file.parts or file.suffix in {".pyc", ".pyo"}:
                    continue
                archive.write(file, file.relative_to(root).as_posix())
    return buffer.getvalue()


def package_code(s3_client, bucket: str, key: str = "WorkerFunction.zip", *, root: str | Path = PROJECT_ROOT) -> str:
    """Upload the function code zip to ``s3://bucket/key`` (creating the bucket) and return that URI.

    This is the emulator's stand-in for ``sam build && sam package``: the embedded stack runs the
    handler in-process, so the zip carries the project's code but not its dependencies. moto's
    Lambda checks that the object a function's ``Code`` points at exists, so upload before
    :func:`deploy_stack`.
    """
    region = s3_client.meta.region_name
    try:
        s3_client.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any "not there / not mine" answer: try to create it
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3_client.create_bucket(**kwargs)
    s3_client.put_object(Bucket=bucket, Key=key, Body=build_code_zip(root))
    return f"s3://{bucket}/{key}"


# -- emulator compatibility ---------------------------------------------------------------------------


def resolve_parameter_mappings(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return a copy of ``template`` with every ``Fn::FindInMap`` keyed by parameters replaced by its value.

    Why: CloudFormation resolves ``Ref`` to a ``Number`` parameter as a *string*, so
    ``!FindInMap [QueueVisibilityBySeconds, !Ref WorkerTimeout, VisibilityTimeout]`` finds the key
    ``"720"``; moto 5.2.5 keeps the number (``720``) and fails the whole create with
    ``KeyError: 720``. Looking the value up here, from the same parameter values (or the
    template's defaults) that :func:`deploy_stack` sends, gives CloudFormation and moto the same
    literal, so the rewrite is harmless against real AWS too. Lookups whose keys are not literals
    or template parameters (pseudo parameters, nested functions) are left alone.
    """
    declared = template.get("Parameters", {})
    values = {name: spec.get("Default") for name, spec in declared.items()}
    values.update(parameters or {})
    mappings = template.get("Mappings", {})

    def key_of(part: Any) -> str | None:
        if isinstance(part, (str, int, float)) and not isinstance(part, bool):
            return str(part)
        if isinstance(part, dict) and set(part) == {"Ref"} and part["Ref"] in declared:
            value = values.get(part["Ref"])
            return None if value is None else str(value)
        return None

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if (
            set(node) == {"Fn::FindInMap"}
            and isinstance(node["Fn::FindInMap"], list)
            and len(node["Fn::FindInMap"]) == 3
        ):
            name, top, second = (key_of(part) for part in node["Fn::FindInMap"])
            try:
                return mappings[name][top][second] if None not in (name, top, second) else node
            except KeyError as error:
                raise StackDeployError(
                    f"Fn::FindInMap {node['Fn::FindInMap']!r}: no entry for {[name, top, second]!r}"
                ) from error
        return {key: walk(value) for key, value in node.items()}

    resolved = dict(template)
    for section in ("Resources", "Outputs"):
        if section in template:
            resolved[section] = walk(template[section])
    return resolved


def disable_emulated_event_sources(lambda_client, function_name: str) -> list[dict[str, Any]]:
    """Disable ``function_name``'s event source mappings **in the emulator**; return their settings.

    Why: moto runs an enabled SQS mapping itself, synchronously inside every SendMessage: it
    receives the message (ApproximateReceiveCount + 1) and invokes the function in Docker. Without
    Docker the invocation fails and the message is made visible again, so each shard would lose
    one of its ``maxReceiveCount`` attempts before any worker saw it (and every send logs a Docker
    error). The embedded stack's local poller plays Lambda's poller instead, with the settings
    returned here (BatchSize, FunctionResponseTypes, ScalingConfig, EventSourceArn), which a
    disabled mapping keeps. Never call this against AWS: it would stop the real worker.
    """
    mappings = []
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    for page in paginator.paginate(FunctionName=function_name):
        for mapping in page["EventSourceMappings"]:
            if mapping.get("State") not in ("Disabled", "Disabling"):
                mapping = lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
                mapping.pop("ResponseMetadata", None)
            mappings.append(mapping)
    return mappings


# -- stacks ---------------------------------------------------------------------------------------------


def _stack_status(cloudformation_client, stack_name: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation_client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def _failure_reasons(cloudformation_client, stack_name: str) -> list[str]:
    try:
        events = cloudformation_client.describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception:  # noqa: BLE001 - the reasons are a courtesy; the status is the error
        return []
    return [
        f"{event.get('LogicalResourceId')} ({event.get('ResourceType')}): "
        f"{event.get('ResourceStatus')} {event.get('ResourceStatusReason', '')}".strip()
        for event in events
        if str(event.get("ResourceStatus", "")).endswith("_FAILED")
    ][:10]


def _wait(cloudformation_client, stack_name: str, timeout_seconds: float, poll_seconds: float) -> str:
    deadline = time.monotonic() + timeout_seconds
    delay = min(0.2, poll_seconds)
    while True:
        status = _stack_status(cloudformation_client, stack_name)
        if status is None:
            raise StackDeployError(f"stack {stack_name!r} disappeared while waiting for it")
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise StackDeployError(f"stack {stack_name!r} still {status} after {timeout_seconds:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, poll_seconds)


def deploy_stack(
    cloudformation_client,
    stack_name: str,
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    *,
    capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
    timeout_seconds: float = 1800.0,
    poll_seconds: float = 5.0,
) -> dict[str, str]:
    """Create the stack, or update it if it exists (leave it if nothing changed); return its outputs.

    Waits for the operation to finish and raises :class:`StackDeployError` with the failing
    resources' reasons when it does not end in CREATE_COMPLETE / UPDATE_COMPLETE. A stack left in
    ROLLBACK_COMPLETE by an earlier failed create holds no resources and cannot be updated, so it
    is deleted and created again.
    """
    from botocore.exceptions import ClientError

    body = json.dumps(resolve_parameter_mappings(template, parameters), separators=(",", ":"))
    if len(body.encode()) > MAX_TEMPLATE_BODY_BYTES:
        raise StackDeployError(
            f"template is {len(body.encode())} bytes, over CloudFormation's inline limit of "
            f"{MAX_TEMPLATE_BODY_BYTES}; upload it to S3 and deploy with a TemplateURL"
        )
    request = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": str(value)} for key, value in (parameters or {}).items()
        ],
        "Capabilities": list(capabilities),
    }

    status = _stack_status(cloudformation_client, stack_name)
    if status is not None and status.endswith("_IN_PROGRESS"):
        status = _wait(cloudformation_client, stack_name, timeout_seconds, poll_seconds)
    if status == "ROLLBACK_COMPLETE":
        cloudformation_client.delete_stack(StackName=stack_name)
        _wait_deleted(cloudformation_client, stack_name, timeout_seconds, poll_seconds)
        status = None

    if status is None or status == "DELETE_COMPLETE":
        cloudformation_client.create_stack(**request)
        expected = "CREATE_COMPLETE"
    else:
        try:
            cloudformation_client.update_stack(**request)
        except ClientError as error:
            if _NO_UPDATES in str(error):
                return stack_outputs(cloudformation_client, stack_name)
            raise
        expected = "UPDATE_COMPLETE"

    final = _wait(cloudformation_client, stack_name, timeout_seconds, poll_seconds)
    if final != expected:
        reasons = _failure_reasons(cloudformation_client, stack_name)
        detail = "".join(f"\n  - {reason}" for reason in reasons) or " (no failure events reported)"
        raise StackDeployError(f"stack {stack_name!r} ended in {final}, expected {expected}:{detail}")
    return stack_outputs(cloudformation_client, stack_name)


def _wait_deleted(cloudformation_client, stack_name: str, timeout_seconds: float, poll_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while (status := _stack_status(cloudformation_client, stack_name)) not in (None, "DELETE_COMPLETE"):
        if status == "DELETE_FAILED" or time.monotonic() > deadline:
            raise StackDeployError(f"could not delete failed stack {stack_name!r}: {status}")
        time.sleep(min(poll_seconds, 0.5))
